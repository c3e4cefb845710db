package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

func TestAPIKeyLifecycle(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	ctx := t.Context()
	res := h.signup(t, "owner@keys.example")
	owner := h.principal(t, res.Token.Token)
	other := h.identity(t, nil) // a second instance

	created, seq, err := h.id.CreateAPIKey(ctx, owner, app.CreateAPIKeyInput{Name: " CI deploys "})
	if err != nil {
		t.Fatal(err)
	}
	prefix, ok := app.ParseAPIKey(created.Key)
	if !ok || prefix != created.Prefix || !strings.HasPrefix(created.Key, "mck_") || created.Name != "CI deploys" || seq == 0 {
		t.Fatalf("created %+v (parsed prefix %q)", created, prefix)
	}
	want := domain.Principal{TenantID: res.TenantID, APIKeyID: created.ID, Role: domain.RoleAPIKey}
	if p := h.principal(t, created.Key); p != want {
		t.Fatalf("key authenticates as %+v, want %+v", p, want)
	}
	if p, err := other.Authenticate(ctx, created.Key); err != nil || p != want {
		t.Fatalf("other instance: %+v %v", p, err)
	}
	h.refused(t, created.Key[:len(created.Key)-1]+"x", "a key with a wrong secret")
	h.refused(t, created.Prefix+"_"+strings.Repeat("A", 40), "a key with the right prefix and another secret")
	h.refused(t, "mck_garbage", "a malformed key")

	// Uses are recorded at most once a minute: many requests, one api_key.used event.
	for range 5 {
		h.principal(t, created.Key)
	}
	events, _, err := h.Store.Load(ctx, domain.APIKeyRef(res.TenantID, created.ID), 0)
	if err != nil {
		t.Fatal(err)
	}
	used := 0
	for _, e := range events {
		if e.Type == domain.EventAPIKeyUsed {
			used++
		}
	}
	if used != 1 {
		t.Errorf("%d api_key.used events after 7 requests, want 1", used)
	}
	last, _ := h.Store.LastSequence(ctx)
	if err := h.Waiter.WaitFor(ctx, projections.APIKeysProjection, last); err != nil {
		t.Fatal(err)
	}
	page, err := h.id.ListAPIKeys(ctx, owner, app.ListAPIKeysInput{})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != created.ID || page.Items[0].LastUsedAt == nil || page.NextCursor != "" {
		t.Fatalf("list %+v %v", page, err)
	}

	// Another tenant can neither see nor revoke the key.
	stranger := h.principal(t, h.signup(t, "owner@strangers.example").Token.Token)
	if _, err := h.id.RevokeAPIKey(ctx, stranger, created.ID); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("another tenant revokes: %v, want not found", err)
	}
	if page, _ := h.id.ListAPIKeys(ctx, stranger, app.ListAPIKeysInput{}); len(page.Items) != 0 {
		t.Errorf("another tenant lists %+v", page.Items)
	}
	// An API key cannot manage keys.
	if _, err := h.id.RevokeAPIKey(ctx, want, created.ID); domain.ErrorCode(err) != domain.EFORBIDDEN {
		t.Errorf("a key revokes: %v, want forbidden", err)
	}

	// Revoked: the very next request fails, on both instances.
	if _, err := h.id.RevokeAPIKey(ctx, owner, created.ID); err != nil {
		t.Fatal(err)
	}
	h.refused(t, created.Key, "a revoked key")
	if _, err := other.Authenticate(ctx, created.Key); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
		t.Errorf("other instance accepts a revoked key: %v", err)
	}
	if _, err := h.id.RevokeAPIKey(ctx, owner, created.ID); err != nil {
		t.Errorf("revoke twice: %v", err)
	}
	if page, _ := h.id.ListAPIKeys(ctx, owner, app.ListAPIKeysInput{}); len(page.Items) != 0 {
		t.Errorf("revoked keys listed: %+v", page.Items)
	}
}

func TestAPIKeyIdempotencyAndPages(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	ctx := t.Context()
	owner := h.principal(t, h.signup(t, "owner@keypages.example").Token.Token)
	first, _, err := h.id.CreateAPIKey(ctx, owner, app.CreateAPIKeyInput{Name: "one", IdempotencyKey: "k-1"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = h.id.CreateAPIKey(ctx, owner, app.CreateAPIKeyInput{Name: "one", IdempotencyKey: "k-1"})
	if domain.ErrorCode(err) != domain.ECONFLICT || !strings.Contains(domain.ErrorMessage(err), first.ID) {
		t.Errorf("retry with the same Idempotency-Key: %v, want a conflict naming %s", err, first.ID)
	}
	var ids []string
	ids = append(ids, first.ID)
	for _, name := range []string{"two", "three"} {
		k, _, err := h.id.CreateAPIKey(ctx, owner, app.CreateAPIKeyInput{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
	}
	var got []string
	cursor := ""
	for {
		page, err := h.id.ListAPIKeys(ctx, owner, app.ListAPIKeysInput{Limit: 1, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range page.Items {
			got = append(got, k.ID)
		}
		if page.NextCursor == "" || len(got) > 3 {
			break
		}
		cursor = page.NextCursor
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("pages %v, want %v", got, ids)
	}
	if _, _, err := h.id.CreateAPIKey(ctx, owner, app.CreateAPIKeyInput{Name: "  "}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("empty name: %v", err)
	}
}

func TestAPIKeySecretIsNeverStored(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	ctx := t.Context()
	owner := h.principal(t, h.signup(t, "owner@secret.example").Token.Token)
	created, _, err := h.id.CreateAPIKey(ctx, owner, app.CreateAPIKeyInput{Name: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	h.principal(t, created.Key) // records a use
	if _, err := h.id.RevokeAPIKey(ctx, owner, created.ID); err != nil {
		t.Fatal(err)
	}
	secret := created.Key[strings.LastIndex(created.Key, "_")+1:]

	events, err := h.Store.Read(ctx, 1, domain.Filter{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		body, _ := json.Marshal(e)
		if strings.Contains(string(body), secret) {
			t.Errorf("event %s (%s) holds the secret: %s", e.ID, e.Type, body)
		}
		if strings.Contains(string(body), identityTestPassword) {
			t.Errorf("event %s (%s) holds a password", e.ID, e.Type)
		}
	}
	rows, err := h.Pools.Owner.Query(ctx, `SELECT row_to_json(k)::text FROM public.api_keys k
		UNION ALL SELECT row_to_json(l)::text FROM public.user_logins l
		UNION ALL SELECT row_to_json(u)::text FROM public.users u`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var row string
		if err := rows.Scan(&row); err != nil {
			t.Fatal(err)
		}
		n++
		if strings.Contains(row, secret) || strings.Contains(row, identityTestPassword) {
			t.Errorf("read model row holds a secret: %s", row)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Errorf("only %d read model rows checked", n)
	}
}

// TestRevocationStoredIsRefusedBeforeItsProjection: an API key verified (and remembered) by an
// instance is refused on every instance from the moment its revocation is stored, even while the
// api_keys read model has not applied it yet (here held back by a row lock).
func TestRevocationStoredIsRefusedBeforeItsProjection(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	ctx := t.Context()
	res := h.signup(t, "owner@lag.example")
	owner := h.principal(t, res.Token.Token)
	other := h.identity(t, nil)
	created, _, err := h.id.CreateAPIKey(ctx, owner, app.CreateAPIKeyInput{Name: "lagging"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // verified, and remembered, on both instances
		h.principal(t, created.Key)
		if _, err := other.Authenticate(ctx, created.Key); err != nil {
			t.Fatal(err)
		}
	}
	// Hold the key's read-model row so the projector cannot apply the revocation.
	tx, err := h.Pools.Owner.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1, true)", res.TenantID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT key_id FROM api_keys WHERE key_id = $1 FOR UPDATE", created.ID); err != nil {
		t.Fatal(err)
	}
	// Store the revocation without waiting for the read model.
	keys := eventstore.NewHandler(h.Store, h.Registry, domain.APIKeyDecider())
	if _, err := keys.Handle(ctx, domain.APIKeyRef(res.TenantID, created.ID), domain.RevokeAPIKey{At: time.Now()}, eventstore.Metadata{}); err != nil {
		t.Fatal(err)
	}
	h.refused(t, created.Key, "a remembered key whose revocation is stored")
	if _, err := other.Authenticate(ctx, created.Key); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
		t.Errorf("the other instance accepts a key whose revocation is stored: %v", err)
	}
	// A fresh instance (nothing remembered) reads the stale row and still refuses.
	if _, err := h.identity(t, nil).Authenticate(ctx, created.Key); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
		t.Errorf("a fresh instance accepts a key whose revocation is stored: %v", err)
	}
	// The read model really was behind: the row still shows the key live.
	live, err := projections.NewAPIKeys(h.Pools.App).Lookup(ctx, created.Prefix)
	if err != nil || len(live) != 1 {
		t.Errorf("the read model already applied the revocation (%v, %v): the test proved nothing", live, err)
	}
}
