package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/adapters/socket"
	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// Sizes of the messages section. Every scenario is bounded in count and in time.
const (
	msgConversations = 200              // conversations the messages are spread over
	msgPerScenario   = 20000            // messages per throughput scenario
	msgScenarioLimit = 60 * time.Second // and at most this long
	msgFixedRate     = 2000             // offered messages per second
	msgFixedDuration = 5 * time.Second  // for this long
	msgMaxInFlight   = 512              // requests in flight at most in the fixed-rate scenario
	msgWaitSamples   = 2000             // sends whose read-your-writes wait is timed alone
	// msgProfileEnv names a file to write a CPU profile of the 64-client scenario to.
	msgProfileEnv = "METACHAT_BENCH_CPUPROFILE"
)

// benchMessages measures message sends through the real HTTP server on a loopback listener, over
// the whole stack (authentication, contract validation, the conversation's decided-state cache,
// the JetStream append, the read-your-writes wait on the conversations projection): throughput and
// latency with 16 and 64 clients, latency at a fixed offered rate, and the read-your-writes wait
// alone. Each authentication mode is measured: a real API key checked by the identity service, and
// a static token that leaves authentication out, to show the send path's own cost.
func benchMessages(ctx context.Context, t *table, _ options, logger *slog.Logger) error {
	t.header(fmt.Sprintf("messages: POST /api/v1/conversations/{id}/messages over loopback HTTP, %d conversations (targets: >= 10000 msg/s; P99 <= 25 ms at %d/s)",
		msgConversations, msgFixedRate))
	w, err := startMessageWorld(ctx, logger)
	if err != nil {
		return err
	}
	defer w.close()
	t.row("(load generator: a minimal keep-alive HTTP/1.1 client in this process, one connection per client, so that its own CPU stays small)")
	t.row("auth", "scenario", "messages", "msg/s", "P50", "P99", "errors", "CPU/msg: bench process", "CPU/msg: Postgres")
	row := func(auth, scenario string, r loadResult, before cpuUse) {
		self, pg := perMessage(before, w.cpu.read(), r.n)
		t.row(auth, scenario, fmt.Sprint(r.n), fmt.Sprintf("%.0f", r.rate), ms(r.lat.pct(50)), ms(r.lat.pct(99)),
			fmt.Sprint(r.errors), self, pg)
	}
	// The floor: the same clients against a bare net/http handler on this machine.
	before := w.cpu.read()
	r, err := bareHTTPFloor(ctx, 64)
	if err != nil {
		return err
	}
	row("-", "bare net/http JSON handler, 64 clients (floor)", r, before)
	for _, auth := range w.auths {
		for _, clients := range []int{16, 64} {
			profile := ""
			if clients == 64 {
				profile = os.Getenv(msgProfileEnv)
			}
			before := w.cpu.read()
			r, err := w.closedLoop(ctx, clients, profile, func(ctx context.Context, c *loadConn, i int) error {
				return w.send(ctx, c, auth.token, i)
			})
			if err != nil {
				return err
			}
			row(auth.name, fmt.Sprintf("%d clients", clients), r, before)
		}
		before := w.cpu.read()
		r, err := w.paced(ctx, auth.token, msgFixedRate, msgFixedDuration) // load.go
		if err != nil {
			return err
		}
		row(auth.name, fmt.Sprintf("fixed %d/s offered", msgFixedRate), r, before)
	}
	for _, writers := range []int{1, 16} {
		lat, err := w.waitAlone(ctx, writers)
		if err != nil {
			return err
		}
		t.row("-", fmt.Sprintf("read-your-writes wait alone, %d writers", writers), fmt.Sprint(len(lat)), "-",
			ms(lat.pct(50)), ms(lat.pct(99)), "0", "-", "-")
	}
	return nil
}

// bareHTTPFloor runs the closed loop of clients against a net/http server on loopback whose
// handler only decodes the JSON body and answers a small JSON document: what HTTP alone costs on
// this machine, the ceiling every figure above is under. The clients are the same loadConns.
func bareHTTPFloor(ctx context.Context, clients int) (loadResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return loadResult{}, err
	}
	hs := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var in struct {
			Text            string `json:"text"`
			ClientMessageID string `json:"client_message_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(rw).Encode(map[string]any{"id": uuid.NewString(), "seq": 1, "text": in.Text})
	})}
	go func() { _ = hs.Serve(ln) }()
	defer func() { _ = hs.Close() }()
	floor := &messageWorld{addr: ln.Addr().String()}
	return floor.closedLoop(ctx, clients, "", func(ctx context.Context, c *loadConn, i int) error {
		c.scratch = appendMessageBody(c.scratch[:0], "floor-", int64(i))
		status, _, err := c.post(ctx, "/floor", "token", c.scratch)
		if err == nil && status != http.StatusCreated {
			err = fmt.Errorf("floor: status %d", status)
		}
		return err
	})
}

// benchAuth is one way the bench authenticates: a name and the bearer token to send.
type benchAuth struct {
	name  string
	token string
}

// staticAuthenticator answers one fixed token with one principal and hands every other token to
// next (the identity service): the bench's way to leave authentication out of a measurement.
type staticAuthenticator struct {
	token string
	p     domain.Principal
	next  httpapi.Authenticator
}

// Authenticate implements httpapi.Authenticator.
func (a staticAuthenticator) Authenticate(ctx context.Context, bearer string) (domain.Principal, error) {
	if bearer == a.token {
		return a.p, nil
	}
	return a.next.Authenticate(ctx, bearer)
}

// messageWorld is a running Metachat for the bench: embedded NATS, a bench database, the
// projections and the waiter running, the identity and conversations services and the HTTP
// server on 127.0.0.1.
type messageWorld struct {
	*benchStack
	reg     *domain.Registry
	waiter  *projections.Waiter
	base    string // the server's URL, for net/http (setup calls)
	addr    string // the server's host:port, for the load generator's loadConns
	client  *http.Client
	auths   []benchAuth
	tenant  domain.Principal
	owner   domain.Principal
	widgets *app.Widgets
	live    *app.Live
	gateway *socket.Gateway
	convIDs []string
	// msgPaths are the send paths of convIDs, one each.
	msgPaths []string
	bodySeed atomic.Int64
	// cpu reads the CPU time of this process and of the bench database's backends.
	cpu cpuMeter
}

func startMessageWorld(ctx context.Context, logger *slog.Logger) (_ *messageWorld, err error) {
	reg := domain.NewDefaultRegistry()
	s, err := startBenchStack(ctx, logger, projections.All(reg), 32)
	if err != nil {
		return nil, err
	}
	w := &messageWorld{benchStack: s, reg: reg, cpu: newCPUMeter(s.dbURL)}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	pools, nc := s.pools, s.nc
	if w.waiter, err = projections.NewWaiter(projections.WaiterConfig{Pool: pools.App, Logger: logger}); err != nil {
		return nil, err
	}
	s.runInBackground(s.mgr.Run, w.waiter.Run)

	identity, err := benchIdentity(w, pools.App, logger)
	if err != nil {
		return nil, err
	}
	conv, err := app.NewConversations(app.ConversationsConfig{Store: w.store, Registry: w.reg, DB: pools.App,
		Waiter: w.waiter, Logger: logger})
	if err != nil {
		return nil, err
	}
	apiKey, err := benchTenant(ctx, w, identity)
	if err != nil {
		return nil, err
	}
	static := staticAuthenticator{token: "bench-static-" + uuid.NewString(), p: w.tenant, next: identity}
	w.auths = []benchAuth{{"API key (identity)", apiKey}, {"static token", static.token}}
	if err := w.startWidgets(ctx, conv, nc, pools.App, logger); err != nil { // sockets.go
		return nil, err
	}
	api, err := httpapi.NewServer(httpapi.Config{Logger: logger, Auth: static, Identity: identity, Conversations: conv,
		Widgets: w.widgets, Mounts: []httpapi.Mount{{Pattern: "/api/v1/widget/ws", Methods: []string{http.MethodGet}, Func: w.gateway.Serve}},
		RateLimits: httpapi.RateLimits{Disabled: true}}) // one API key sends thousands of messages a second
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: api, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	w.closers = append(w.closers, func() { _ = hs.Close() })
	w.addr = ln.Addr().String()
	w.base = "http://" + w.addr
	w.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute,
	}}
	w.closers = append(w.closers, w.client.CloseIdleConnections)
	return w, w.createConversations(ctx, static.token)
}

// benchIdentity returns the identity service with fresh keys.
func benchIdentity(w *messageWorld, db projections.Beginner, logger *slog.Logger) (*app.Identity, error) {
	signingKey, err := app.GenerateSigningKey()
	if err != nil {
		return nil, err
	}
	pepper, err := app.GenerateAPIKeyPepper()
	if err != nil {
		return nil, err
	}
	return app.NewIdentity(app.IdentityConfig{Store: w.store, Registry: w.reg, DB: db, Waiter: w.waiter,
		SigningKey: signingKey, APIKeyPepper: pepper, Logger: logger})
}

// benchTenant signs a tenant up, creates an API key and returns it; w.tenant becomes the key's
// principal.
func benchTenant(ctx context.Context, w *messageWorld, identity *app.Identity) (string, error) {
	su, err := identity.Signup(ctx, app.SignupInput{TenantName: "Bench", Email: "bench-" + uuid.NewString()[:8] + "@example.com",
		Password: "bench-password-" + uuid.NewString()})
	if err != nil {
		return "", fmt.Errorf("signup: %w", err)
	}
	owner := domain.Principal{TenantID: su.TenantID, UserID: su.UserID, Role: domain.RoleOwner}
	w.owner = owner
	key, _, err := identity.CreateAPIKey(ctx, owner, app.CreateAPIKeyInput{Name: "bench"})
	if err != nil {
		return "", fmt.Errorf("create API key: %w", err)
	}
	if w.tenant, err = identity.Authenticate(ctx, key.Key); err != nil {
		return "", fmt.Errorf("authenticate the API key: %w", err)
	}
	return key.Key, nil
}

// createConversations starts the bench's conversations through the API.
func (w *messageWorld) createConversations(ctx context.Context, token string) error {
	for i := range msgConversations {
		body := fmt.Sprintf(`{"channel":"api","contact":{"external_id":"bench-%d","name":"Bench Contact %d"}}`, i, i)
		var out struct {
			ID string `json:"id"`
		}
		status, err := w.post(ctx, "/api/v1/conversations", token, []byte(body), &out)
		if err != nil || status != http.StatusCreated {
			return fmt.Errorf("create conversation: status %d: %w", status, err)
		}
		w.convIDs = append(w.convIDs, out.ID)
		w.msgPaths = append(w.msgPaths, "/api/v1/conversations/"+out.ID+"/messages")
	}
	return nil
}

// post sends a JSON body and decodes the answer into out when it is not nil.
func (w *messageWorld) post(ctx context.Context, path, token string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("answer %q: %w", b, err)
		}
	}
	return resp.StatusCode, nil
}

// send posts one message over c to the conversation number i (mod the conversations) and checks
// that it was created.
func (w *messageWorld) send(ctx context.Context, c *loadConn, token string, i int) error {
	c.scratch = appendMessageBody(c.scratch[:0], "bench-", w.bodySeed.Add(1))
	status, body, err := c.post(ctx, w.msgPaths[i%len(w.msgPaths)], token, c.scratch)
	if err != nil {
		return err
	}
	if status != http.StatusCreated {
		return fmt.Errorf("send message: status %d: %q", status, clip(body))
	}
	return nil
}

// appendMessageBody appends the JSON body of the bench message number n, whose client message id
// is idPrefix and n, to dst.
func appendMessageBody(dst []byte, idPrefix string, n int64) []byte {
	dst = append(dst, `{"text":"Hello, this is bench message `...)
	dst = strconv.AppendInt(dst, n, 10)
	dst = append(dst, `. How can I help you today?","client_message_id":"`...)
	dst = append(dst, idPrefix...)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, `"}`...)
}

// loadResult is what a scenario measured.
type loadResult struct {
	n      int
	rate   float64
	lat    latencies
	errors int64
}

// closedLoop runs clients that each send (with send, over a keep-alive connection of the client's
// own) their next message when the previous one is answered, msgPerScenario in all (or until
// msgScenarioLimit), and writes a CPU profile to profile when set.
func (w *messageWorld) closedLoop(ctx context.Context, clients int, profile string, send func(context.Context, *loadConn, int) error) (loadResult, error) {
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return loadResult{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return loadResult{}, err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithTimeout(ctx, msgScenarioLimit)
	defer cancel()
	var next, errs atomic.Int64
	lat := make([]latencies, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			conn := newLoadConn(w.addr)
			defer conn.close()
			for {
				i := int(next.Add(1)) - 1
				if i >= msgPerScenario || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				if err := send(ctx, conn, i); err != nil {
					errs.Add(1)
					continue
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all latencies
	for _, l := range lat {
		all = append(all, l...)
	}
	return loadResult{n: len(all), rate: rate(len(all), elapsed), lat: all, errors: errs.Load()}, nil
}

// waitAlone appends messages with a command handler of its own (no HTTP, no wait) from writers
// goroutines, and times only the read-your-writes wait of each: from the append's answer until
// the conversations projection has applied it.
func (w *messageWorld) waitAlone(ctx context.Context, writers int) (latencies, error) {
	cache, err := eventstore.NewStateCache[domain.Conversation](eventstore.CacheConfig{})
	if err != nil {
		return nil, err
	}
	h := eventstore.NewHandler(w.store, w.reg, domain.ConversationDecider(), eventstore.WithStateCache(cache),
		eventstore.WithMaxRetries(10))
	per := msgWaitSamples / writers
	lat := make([]latencies, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range per {
				id := w.convIDs[(g*per+i)%len(w.convIDs)]
				agg := domain.AggregateRef{TenantID: w.tenant.TenantID, Type: domain.ConversationAggregate, ID: id}
				res, err := h.Handle(ctx, agg, domain.SendMessage{MessageID: uuid.Must(uuid.NewV7()).String(),
					Text: "wait probe", Author: domain.Author{Type: domain.AuthorSystem}, At: time.Now()}, eventstore.Metadata{})
				if err != nil {
					errs[g] = err
					return
				}
				t0 := time.Now()
				if err := w.waiter.WaitFor(ctx, projections.ConversationsProjection, res.Version); err != nil {
					errs[g] = err
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		})
	}
	wg.Wait()
	var all latencies
	for g := range writers {
		if errs[g] != nil {
			return nil, errors.Join(errs...)
		}
		all = append(all, lat[g]...)
	}
	return all, nil
}
