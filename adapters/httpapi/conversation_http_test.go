package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
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

// convTokens authenticates fixed test tokens; the identity service is tested on its own.
type convTokens map[string]domain.Principal

func (a convTokens) Authenticate(_ context.Context, bearer string) (domain.Principal, error) {
	p, ok := a[bearer]
	if !ok {
		return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "Invalid credential.")
	}
	return p, nil
}

// convAPI is the HTTP API with a real conversations service (JetStream, Postgres, projector,
// waiter) and two tenants: tokens "a" (an API key of tenant A), "a-agent" (a user of A) and "b"
// (an API key of tenant B).
type convAPI struct {
	t      *testing.T
	server *httpapi.Server
	tokens convTokens
}

func newConvAPI(t *testing.T) *convAPI {
	t.Helper()
	ctx := t.Context()
	logger := slog.New(slog.DiscardHandler)
	reg := domain.NewDefaultRegistry()
	store, err := eventstore.Open(ctx, testkit.StartNATS(t, "").Connect(t), eventstore.Config{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	pools, err := projections.OpenPools(ctx, projections.PoolsConfig{DatabaseURL: testkit.Postgres(t)})
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := projections.NewManager(projections.ManagerConfig{
		Projections: []projections.Projection{projections.NewConversationProjection(reg)},
		Store:       store, Owner: pools.Owner, Projector: pools.Projector, Logger: logger,
		Tuning: projections.Tuning{IdleWait: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	waiter, err := projections.NewWaiter(projections.WaiterConfig{Pool: pools.App, Timeout: 5 * time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{mgr.Run, waiter.Run} {
		wg.Go(func() {
			if err := run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("background component: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		pools.Close()
	})
	conv, err := app.NewConversations(app.ConversationsConfig{Store: store, Registry: reg, DB: pools.App, Waiter: waiter,
		Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	a, b := uuid.NewString(), uuid.NewString()
	tokens := convTokens{
		"a":       {TenantID: a, APIKeyID: uuid.NewString(), Role: domain.RoleAPIKey},
		"a-agent": {TenantID: a, UserID: uuid.NewString(), Role: domain.RoleAgent},
		"b":       {TenantID: b, APIKeyID: uuid.NewString(), Role: domain.RoleAPIKey},
	}
	s, err := httpapi.NewServer(httpapi.Config{Logger: logger, Auth: tokens, Conversations: conv})
	if err != nil {
		t.Fatal(err)
	}
	return &convAPI{t: t, server: s, tokens: tokens}
}

// do sends one request and returns the recorder; body is encoded as JSON unless nil.
func (c *convAPI) do(method, path, token string, body any, header ...string) *httptest.ResponseRecorder {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req := httptest.NewRequestWithContext(c.t.Context(), method, path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	c.server.ServeHTTP(rec, req)
	return rec
}

// expect checks the status and decodes the body.
func (c *convAPI) expect(rec *httptest.ResponseRecorder, status int, what string) map[string]any {
	c.t.Helper()
	if rec.Code != status {
		c.t.Fatalf("%s: status %d, want %d: %s", what, rec.Code, status, rec.Body)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		c.t.Fatalf("%s: body %q: %v", what, rec.Body, err)
	}
	return m
}

func streamSeq(t *testing.T, rec *httptest.ResponseRecorder) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(rec.Header().Get("X-Stream-Sequence"), 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("X-Stream-Sequence %q", rec.Header().Get("X-Stream-Sequence"))
	}
	return n
}

func TestConversationRoutes(t *testing.T) {
	t.Parallel()
	api := newConvAPI(t)
	const base = "/api/v1/conversations"

	// Create, with an Idempotency-Key: a retry answers 201 with the same conversation.
	create := map[string]any{"channel": "api", "contact": map[string]any{"external_id": "crm-1", "name": "Ada", "email": "ada@example.com"}, "assistant_enabled": true}
	rec := api.do("POST", base, "a", create, "Idempotency-Key", "create-1")
	conv := api.expect(rec, 201, "create")
	id, _ := conv["id"].(string)
	if !domain.IsUUID(id) || conv["status"] != "open" || conv["assignee_id"] != nil || conv["last_message_at"] != nil ||
		rec.Header().Get("Location") != base+"/"+id {
		t.Fatalf("created %v (Location %q)", conv, rec.Header().Get("Location"))
	}
	streamSeq(t, rec)
	if again := api.expect(api.do("POST", base, "a", create, "Idempotency-Key", "create-1"), 201, "create again"); again["id"] != id {
		t.Fatalf("retried create made %v, want %s", again["id"], id)
	}

	// Get and list.
	if got := api.expect(api.do("GET", base+"/"+id, "a-agent", nil), 200, "get"); got["id"] != id || got["contact"].(map[string]any)["name"] != "Ada" {
		t.Fatalf("get %v", got)
	}
	list := api.expect(api.do("GET", base+"?q=ADA&status=open&limit=1", "a", nil), 200, "list")
	if items := list["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != id || list["next_cursor"] != nil {
		t.Fatalf("list %v", list)
	}

	// Messages: 201 new, 200 repeat (by client_message_id or Idempotency-Key), 409 when closed.
	msgs := base + "/" + id + "/messages"
	rec = api.do("POST", msgs, "a", map[string]any{"text": "hello", "client_message_id": "m-1"})
	m1 := api.expect(rec, 201, "send")
	if m1["seq"] != 1.0 || m1["conversation_id"] != id || m1["author"].(map[string]any)["type"] != "api_key" || m1["client_message_id"] != "m-1" {
		t.Fatalf("sent %v", m1)
	}
	seq := streamSeq(t, rec)
	rec = api.do("POST", msgs, "a", map[string]any{"text": "hello", "client_message_id": "m-1"})
	if again := api.expect(rec, 200, "resend"); again["id"] != m1["id"] || again["seq"] != 1.0 || again["created_at"] != m1["created_at"] {
		t.Fatalf("resent %v, want %v", again, m1)
	}
	if streamSeq(t, rec) < seq {
		t.Fatal("a repeat answers an older stream sequence")
	}
	m2 := api.expect(api.do("POST", msgs, "a-agent", map[string]any{"text": "by key"}, "Idempotency-Key", "k-2"), 201, "send with a key")
	if m2["seq"] != 2.0 || m2["author"].(map[string]any)["type"] != "user" {
		t.Fatalf("second message %v", m2)
	}
	api.expect(api.do("POST", msgs, "a-agent", map[string]any{"text": "by key"}, "Idempotency-Key", "k-2"), 200, "resend with a key")
	page := api.expect(api.do("GET", msgs+"?after_seq=1&limit=5", "a", nil), 200, "messages")
	if items := page["items"].([]any); len(items) != 1 || items[0].(map[string]any)["seq"] != 2.0 {
		t.Fatalf("messages after 1: %v", page)
	}

	// Update: assign, close, then unassign with null; a closed conversation refuses messages.
	assignee := uuid.NewString()
	rec = api.do("PATCH", base+"/"+id, "a", map[string]any{"status": "closed", "assignee_id": assignee, "assistant_enabled": false})
	upd := api.expect(rec, 200, "update")
	if upd["status"] != "closed" || upd["assignee_id"] != assignee || upd["assistant_enabled"] != false || upd["last_message_at"] == nil {
		t.Fatalf("updated %v", upd)
	}
	streamSeq(t, rec)
	api.expect(api.do("POST", msgs, "a", map[string]any{"text": "late"}), 409, "send to a closed conversation")
	if un := api.expect(api.do("PATCH", base+"/"+id, "a", map[string]any{"assignee_id": nil}), 200, "unassign"); un["assignee_id"] != nil || un["status"] != "closed" {
		t.Fatalf("unassigned %v", un)
	}

	// Tenant B: 404 everywhere, as for a missing conversation; an empty list.
	for _, path := range []string{base + "/" + id, base + "/" + uuid.NewString()} {
		api.expect(api.do("GET", path, "b", nil), 404, "B gets")
		api.expect(api.do("PATCH", path, "b", map[string]any{"status": "open"}), 404, "B updates")
		api.expect(api.do("GET", path+"/messages", "b", nil), 404, "B lists messages")
		api.expect(api.do("POST", path+"/messages", "b", map[string]any{"text": "x"}), 404, "B sends")
	}
	if l := api.expect(api.do("GET", base, "b", nil), 200, "B lists"); len(l["items"].([]any)) != 0 {
		t.Fatalf("B lists %v", l)
	}

	// Validation and authentication happen before the handlers.
	api.expect(api.do("POST", msgs, "a", map[string]any{"text": ""}), 400, "empty text")
	api.expect(api.do("GET", base+"?cursor=nope", "a", nil), 400, "bad cursor")
	api.expect(api.do("GET", base, "nobody", nil), 401, "unknown token")
}
