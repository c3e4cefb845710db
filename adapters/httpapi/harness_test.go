package httpapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
	"github.com/metachat/metachat/projections"
)

// harness is a running Metachat for one test: a JetStream event store on an embedded server, a
// fresh Postgres database with its pools, the projections manager and the read-your-writes waiter
// running, the application services, and the HTTP server on a real loopback listener.
// Everything stops when the test ends.
type harness struct {
	Registry *domain.Registry
	Store    *eventstore.JetStream
	Pools    *projections.Pools
	Manager  *projections.Manager
	Waiter   *projections.Waiter
	Logger   *slog.Logger

	Identity      *app.Identity
	Conversations *app.Conversations

	Server *httpapi.Server
	HTTP   *httptest.Server
}

// newHarness starts a harness.
func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := t.Context()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &harness{Registry: domain.NewDefaultRegistry(), Logger: logger}
	nc := testkit.StartNATS(t, "").Connect(t)
	var err error
	if h.Store, err = eventstore.Open(ctx, nc, eventstore.Config{Logger: logger}); err != nil {
		t.Fatal(err)
	}
	if h.Pools, err = projections.OpenPools(ctx, projections.PoolsConfig{DatabaseURL: testkit.Postgres(t)}); err != nil {
		t.Fatal(err)
	}
	h.Manager, err = projections.NewManager(projections.ManagerConfig{
		Projections: []projections.Projection{
			projections.NewTenantProjection(h.Registry),
			projections.NewUserProjection(h.Registry),
			projections.NewAPIKeyProjection(h.Registry),
			projections.NewConversationProjection(h.Registry),
		},
		Store: h.Store, Owner: h.Pools.Owner, Projector: h.Pools.Projector, Logger: logger,
		Tuning: projections.Tuning{IdleWait: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Manager.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if h.Waiter, err = projections.NewWaiter(projections.WaiterConfig{Pool: h.Pools.App, Timeout: 5 * time.Second, Logger: logger}); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{h.Manager.Run, h.Waiter.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("background component: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		h.Pools.Close()
	})

	signingKey, err := app.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	pepper, err := app.GenerateAPIKeyPepper()
	if err != nil {
		t.Fatal(err)
	}
	h.Identity, err = app.NewIdentity(app.IdentityConfig{
		Store: h.Store, Registry: h.Registry, DB: h.Pools.App, Waiter: h.Waiter,
		SigningKey: signingKey, APIKeyPepper: pepper, RequestID: httpapi.RequestID, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Conversations, err = app.NewConversations(app.ConversationsConfig{
		Store: h.Store, Registry: h.Registry, DB: h.Pools.App, Waiter: h.Waiter,
		RequestID: httpapi.RequestID, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Server, err = httpapi.NewServer(httpapi.Config{
		Logger: logger, Auth: h.Identity, Identity: h.Identity, Conversations: h.Conversations,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.HTTP = httptest.NewServer(h.Server)
	t.Cleanup(h.HTTP.Close)
	return h
}

// client returns an HTTP client of the harness's server.
func (h *harness) client(t *testing.T) *client {
	return &client{t: t, base: h.HTTP.URL, http: h.HTTP.Client()}
}

// startAPI starts a harness and returns a client of its server.
func startAPI(t *testing.T) *client {
	t.Helper()
	return newHarness(t).client(t)
}
