package httpapi_test

import (
	"net/http/httptest"
	"testing"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/internal/testkit"
	"github.com/metachat/metachat/projections"
)

// harness is a running Metachat for one test: a JetStream event store on an embedded server, a
// fresh Postgres database with its pools, the projections manager and the read-your-writes waiter
// running, the application services, and the HTTP server on a real loopback listener.
// Everything stops when the test ends.
type harness struct {
	*testkit.Core

	Identity      *app.Identity
	Conversations *app.Conversations

	Server *httpapi.Server
	HTTP   *httptest.Server
}

// newHarness starts a harness.
func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{Core: testkit.StartCore(t, func(reg *domain.Registry) []projections.Projection {
		return []projections.Projection{
			projections.NewTenantProjection(reg),
			projections.NewUserProjection(reg),
			projections.NewAPIKeyProjection(reg),
			projections.NewConversationProjection(reg),
		}
	})}
	logger := h.Logger
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
		SigningKey: signingKey, APIKeyPepper: pepper, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Conversations, err = app.NewConversations(app.ConversationsConfig{
		Store: h.Store, Registry: h.Registry, DB: h.Pools.App, Waiter: h.Waiter,
		Logger: logger,
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
