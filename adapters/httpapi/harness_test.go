package httpapi_test

import (
	"net/http/httptest"
	"testing"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/internal/teststack"
)

// harness is a running Metachat for one test: the application stack (teststack: a JetStream event
// store on an embedded server, a fresh Postgres database, every read model, the services) and the
// HTTP server on a real loopback listener. Everything stops when the test ends.
type harness struct {
	*teststack.Stack

	Server *httpapi.Server
	HTTP   *httptest.Server
}

// newHarness starts a harness.
func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{Stack: teststack.Start(t)}
	var err error
	h.Server, err = httpapi.NewServer(httpapi.Config{
		Logger: h.Logger, Auth: h.Identity, Identity: h.Identity, Conversations: h.Conversations, Widgets: h.Widgets, Knowledge: h.Knowledge,
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
