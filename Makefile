# Metachat. `make run` starts the whole platform on embedded defaults; `make test` is what CI runs.
SHELL := /bin/bash
GO ?= go
GOLANGCI_VERSION := v2.15.0
BIN := $(CURDIR)/bin
LINT := $(BIN)/golangci-lint
FUZZTIME ?= 3s

.PHONY: run build test vet lint gotest fuzz-short fuzz bench clean web web-check

## run: start the whole platform (embedded NATS, managed Postgres) on http://127.0.0.1:8080
run: build
	exec $(BIN)/metachat serve

## build: build bin/metachat
build:
	$(GO) build -o $(BIN)/metachat ./cmd/metachat

## test: the widget rebuilt identically, gofmt, vet, lint, the race-enabled test suite and a short fuzz of every fuzz target
test: web-check fmtcheck vet lint fuzz-short gotest

## web: build the chat widget (web/widget, pinned npm packages) into adapters/webui/assets/widget.js
web:
	cd web/widget && npm ci --no-audit --no-fund && npm run build

## web-check: rebuild the widget and fail when the committed adapters/webui/assets/widget.js differs
web-check: web
	git diff --exit-code adapters/webui/assets/widget.js

fmtcheck:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

$(LINT):
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

lint: $(LINT)
	$(LINT) run ./...

gotest:
	$(GO) test -race -count=1 -timeout 20m ./...

## fuzz-short: every fuzz target for $(FUZZTIME) each (CI); `make fuzz FUZZTIME=2m` for longer runs
fuzz-short:
	@./scripts/fuzz.sh $(FUZZTIME)

fuzz:
	@./scripts/fuzz.sh $(if $(filter 3s,$(FUZZTIME)),60s,$(FUZZTIME))

## bench: every speed and memory figure, printed as a table
bench:
	$(GO) run ./cmd/metachat-bench

clean:
	rm -rf $(BIN)
