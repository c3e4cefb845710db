package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
	"github.com/metachat/metachat/projections"
)

// lockedBuffer is a log sink written by the HTTP server and the projection runners at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRequestIDFollowsTheRequestIntoEventsAndProjectors follows one request id from the HTTP
// access log line, to the correlation id of the event the request appended, to the projector's
// debug line for that event — with one log, as `METACHAT_LOG_LEVEL=debug` gives an operator. The
// routes are test routes that create a tenant through the command handler (the identity and
// conversation routes do the same through the app layer).
func TestRequestIDFollowsTheRequestIntoEventsAndProjectors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	nc := testkit.StartNATS(t, "").Connect(t)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pools, err := projections.OpenPools(ctx, projections.PoolsConfig{DatabaseURL: testkit.Postgres(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer pools.Close()
	reg := domain.NewDefaultRegistry()

	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	manager, err := projections.NewManager(projections.ManagerConfig{
		Projections: []projections.Projection{projections.NewTenantProjection(reg)},
		Store:       store,
		Owner:       pools.Owner,
		Projector:   pools.Projector,
		Tuning:      projections.Tuning{IdleWait: 100 * time.Millisecond},
		Logger:      logger.With("component", "projections"),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- manager.Run(runCtx) }()
	defer func() { cancelRun(); <-done }()

	tenants := eventstore.NewHandler(store, reg, domain.TenantDecider())
	api, err := httpapi.NewServer(httpapi.Config{Logger: logger.With("component", "http")})
	if err != nil {
		t.Fatal(err)
	}
	// createTenant is a write handler; explicit says whether it copies the request id into the
	// command's metadata itself or leaves it to the command handler, which takes it from the context.
	createTenant := func(explicit bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id := uuid.NewString()
			md := eventstore.Metadata{}
			if explicit {
				md.CorrelationID = httpapi.RequestID(r.Context())
			}
			res, err := tenants.Handle(r.Context(), domain.AggregateRef{TenantID: id, Type: domain.TenantAggregate, ID: id},
				domain.CreateTenant{TenantID: id, Name: "Traced", At: time.Now()}, md)
			if err != nil {
				httpapi.WriteErrorForTest(logger, w, r, err)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"tenant_id": id, "event_id": res.Events[0].ID})
		}
	}
	api.RouteForTest(http.MethodPost, "/t/tenants/explicit", createTenant(true))
	api.RouteForTest(http.MethodPost, "/t/tenants", createTenant(false))

	for _, tc := range []struct{ name, path string }{
		{"metadata from the request id", "/t/tenants/explicit"},
		{"correlation id from the context", "/t/tenants"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, tc.path, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var body struct {
				TenantID string `json:"tenant_id"`
				EventID  string `json:"event_id"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			requestID := rec.Header().Get("X-Request-ID")

			// 1. The access log line carries the request id.
			accessLogLine(t, logs.String(), requestID)

			// 2. The stored event carries it as its correlation id.
			ref := domain.AggregateRef{TenantID: body.TenantID, Type: domain.TenantAggregate, ID: body.TenantID}
			stored, _, err := store.Load(ctx, ref, 0)
			if err != nil || len(stored) != 1 || stored[0].ID != body.EventID {
				t.Fatalf("load the appended event: %v, %+v", err, stored)
			}
			if stored[0].CorrelationID != requestID {
				t.Fatalf("event correlation id %q, want the request id %q", stored[0].CorrelationID, requestID)
			}

			// 3. The projector's line for that event carries it too.
			deadline := time.Now().Add(20 * time.Second)
			for {
				line := logLineWith(logs.String(), "event applied", map[string]string{"event_id": body.EventID})
				if line != nil {
					if line["correlation_id"] != requestID || line["projection"] != "tenants" {
						t.Fatalf("projector line %v, want correlation_id %s", line, requestID)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no projector line for event %s in:\n%s", body.EventID, logs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestSignupRequestIDFollowsIntoEventsAndProjectors is the same trace through a real route: one
// POST /api/v1/signup, its request id in the access log, as the correlation id of the
// tenant.created and user.registered events it appended, and in the tenants and users
// projectors' debug lines for those events.
func TestSignupRequestIDFollowsIntoEventsAndProjectors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := domain.NewDefaultRegistry()
	nc := testkit.StartNATS(t, "").Connect(t)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pools, err := projections.OpenPools(ctx, projections.PoolsConfig{DatabaseURL: testkit.Postgres(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer pools.Close()
	manager, err := projections.NewManager(projections.ManagerConfig{
		Projections: []projections.Projection{projections.NewTenantProjection(reg), projections.NewUserProjection(reg)},
		Store:       store, Owner: pools.Owner, Projector: pools.Projector,
		Tuning: projections.Tuning{IdleWait: 100 * time.Millisecond},
		Logger: logger.With("component", "projections"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := manager.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	waiter, err := projections.NewWaiter(projections.WaiterConfig{Pool: pools.App, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{manager.Run, waiter.Run} {
		wg.Go(func() { _ = run(runCtx) })
	}
	defer func() { cancelRun(); wg.Wait() }()

	signingKey, err := app.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	pepper, err := app.GenerateAPIKeyPepper()
	if err != nil {
		t.Fatal(err)
	}
	identity, err := app.NewIdentity(app.IdentityConfig{
		Store: store, Registry: reg, DB: pools.App, Waiter: waiter,
		SigningKey: signingKey, APIKeyPepper: pepper,
	})
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.NewServer(httpapi.Config{Logger: logger.With("component", "http"), Auth: identity, Identity: identity})
	if err != nil {
		t.Fatal(err)
	}

	body := `{"tenant_name": "Traced", "email": "trace-` + uuid.NewString()[:8] + `@example.com", "password": "correct horse battery staple"}`
	req := httptest.NewRequest(http.MethodPost, "/api/v1/signup", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("signup: %d %s", rec.Code, rec.Body)
	}
	var signup struct {
		TenantID string `json:"tenant_id"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &signup); err != nil || signup.TenantID == "" {
		t.Fatalf("signup answer %s: %v", rec.Body, err)
	}
	requestID := rec.Header().Get("X-Request-ID")
	if line := accessLogLine(t, logs.String(), requestID); line["route"] != "/api/v1/signup" || line["status"] != float64(201) {
		t.Errorf("access log line %v", line)
	}

	events, err := store.Read(ctx, 1, domain.Filter{TenantID: signup.TenantID}, 100)
	if err != nil {
		t.Fatal(err)
	}
	projectorOf := map[string]string{domain.EventTenantCreated: "tenants", domain.EventUserRegistered: "users"}
	seen := 0
	for _, ev := range events {
		projection, ok := projectorOf[ev.Type]
		if !ok {
			continue
		}
		seen++
		if ev.CorrelationID != requestID {
			t.Errorf("%s correlation id %q, want the request id %q", ev.Type, ev.CorrelationID, requestID)
		}
		deadline := time.Now().Add(20 * time.Second)
		for logLineWith(logs.String(), "event applied",
			map[string]string{"event_id": ev.ID, "projection": projection, "correlation_id": requestID}) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("no %s projector line for %s %s with correlation_id %s in:\n%s", projection, ev.Type, ev.ID, requestID, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if seen != 2 {
		t.Fatalf("signup appended %d of tenant.created and user.registered for tenant %s: %+v", seen, signup.TenantID, events)
	}
}
