package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/domain"
)

func newServer(t *testing.T, checks ...httpapi.HealthCheck) (*httpapi.Server, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	s, err := httpapi.NewServer(httpapi.Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Health: checks})
	if err != nil {
		t.Fatal(err)
	}
	return s, &logs
}

func decodeProblem(t *testing.T, rec *httptest.ResponseRecorder) httpapi.Problem {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json", ct)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", rec.Body.String(), err)
	}
	if p.Status != rec.Code || p.Type == "" || p.Title == "" || p.RequestID == "" {
		t.Fatalf("incomplete problem %+v (status %d)", p, rec.Code)
	}
	return p
}

func TestUnknownRouteIsProblemJSON(t *testing.T) {
	s, _ := newServer(t)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status %d", rec.Code)
	}
	p := decodeProblem(t, rec)
	if p.RequestID != rec.Header().Get("X-Request-ID") {
		t.Errorf("problem request id %q != header %q", p.RequestID, rec.Header().Get("X-Request-ID"))
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("DELETE", "/api/health", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("status %d", rec.Code)
	}
	decodeProblem(t, rec)
}

func TestHealth(t *testing.T) {
	ok := httpapi.HealthCheck{Name: "nats", Check: func(context.Context) (any, error) { return map[string]int{"lag": 0}, nil }}
	down := httpapi.HealthCheck{Name: "postgres", Check: func(context.Context) (any, error) { return nil, errors.New("connection refused") }}

	s, _ := newServer(t, ok)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/api/health", nil))
	var h httpapi.HealthResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil || rec.Code != 200 || h.Status != "ok" || h.Components["nats"].Status != "ok" {
		t.Fatalf("healthy: %d %s %v", rec.Code, rec.Body, err)
	}

	s, _ = newServer(t, ok, down)
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/api/health", nil))
	h = httpapi.HealthResponse{}
	if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil || rec.Code != 503 || h.Status != "degraded" || h.Components["postgres"].Status != "down" {
		t.Fatalf("unhealthy: %d %s %v", rec.Code, rec.Body, err)
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err    error
		status int
		detail string
	}{
		{domain.Errorf(domain.ENOTFOUND, "Tenant not found."), 404, "Tenant not found."},
		{domain.Invalid("Invalid input.", domain.FieldError{Field: "name", Message: "required"}), 400, "Invalid input."},
		{&domain.ConcurrencyError{}, 409, "The resource was changed concurrently; retry the request."},
		{domain.Errorf(domain.EUNAVAILABLE, "Try again."), 503, "Try again."},
		{errors.New("pq: password=hunter2 connection failed"), 500, "An internal error has occurred."},
	}
	for _, tt := range tests {
		var logs bytes.Buffer
		rec := httptest.NewRecorder()
		httpapi.WriteErrorForTest(slog.New(slog.NewJSONHandler(&logs, nil)), rec, httptest.NewRequest("GET", "/", nil), tt.err)
		p := decodeProblemNoID(t, rec)
		if rec.Code != tt.status || p.Detail != tt.detail {
			t.Errorf("%v: %d %q, want %d %q", tt.err, rec.Code, p.Detail, tt.status, tt.detail)
		}
		if strings.Contains(rec.Body.String(), "hunter2") {
			t.Errorf("internal detail leaked: %s", rec.Body)
		}
		if (tt.status >= 500) != (logs.Len() > 0) {
			t.Errorf("%v: logged %q; only 5xx are logged", tt.err, logs.String())
		}
	}
}

func decodeProblemNoID(t *testing.T, rec *httptest.ResponseRecorder) httpapi.Problem {
	t.Helper()
	var p httpapi.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRequestIDHonouredOnlyWhenTrusted(t *testing.T) {
	for _, trust := range []bool{false, true} {
		s, err := httpapi.NewServer(httpapi.Config{TrustRequestID: trust})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/api/health", nil)
		req.Header.Set("X-Request-ID", "caller-supplied-id-1")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if got := rec.Header().Get("X-Request-ID"); (got == "caller-supplied-id-1") != trust {
			t.Errorf("trust=%v: request id %q", trust, got)
		}
	}
}
