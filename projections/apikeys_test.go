package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

func TestAPIKeyProjection(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	m := h.manager(t, projections.NewAPIKeyProjection(h.reg))
	start(t, m.Run)
	w := newWaiter(t, h, 10*time.Second)
	keys := eventstore.NewHandler(h.store, h.reg, domain.APIKeyDecider())
	do := func(tenantID, keyID string, cmd domain.APIKeyCommand) uint64 {
		t.Helper()
		res, err := keys.Handle(context.Background(), domain.APIKeyRef(tenantID, keyID), cmd, eventstore.Metadata{})
		if err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
		return res.Version
	}
	const (
		hash1 = "1111111111111111111111111111111111111111111111111111111111111111"
		hash2 = "2222222222222222222222222222222222222222222222222222222222222222"
	)
	tenantA, tenantB := uuid.NewString(), uuid.NewString()
	k1, k2, k3 := uuid.NewString(), uuid.NewString(), uuid.NewString()
	at := time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC)
	do(tenantA, k1, domain.CreateAPIKey{KeyID: k1, Name: "one", Prefix: "mck_aaaaaaaa", KeyHash: hash1, At: at})
	do(tenantA, k2, domain.CreateAPIKey{KeyID: k2, Name: "two", Prefix: "mck_bbbbbbbb", KeyHash: hash2, At: at.Add(time.Second)})
	// The same prefix in another tenant: lookups must tell them apart by hash.
	do(tenantB, k3, domain.CreateAPIKey{KeyID: k3, Name: "three", Prefix: "mck_aaaaaaaa", KeyHash: hash2, At: at})
	do(tenantA, k1, domain.RecordAPIKeyUse{At: at.Add(time.Minute), MinInterval: time.Minute})
	seq := do(tenantA, k2, domain.RevokeAPIKey{At: at.Add(time.Hour)})
	if err := w.WaitFor(ctx, projections.APIKeysProjection, seq); err != nil {
		t.Fatal(err)
	}
	r := projections.NewAPIKeys(h.pools.App)

	t.Run("get and list", func(t *testing.T) {
		k, err := r.Get(ctx, tenantA, k1)
		if err != nil || k.Name != "one" || k.Prefix != "mck_aaaaaaaa" || k.LastUsedAt == nil ||
			!k.LastUsedAt.Equal(at.Add(time.Minute)) || k.RevokedAt != nil {
			t.Fatalf("key %+v, %v", k, err)
		}
		k, err = r.Get(ctx, tenantA, k2)
		if err != nil || k.RevokedAt == nil || k.Version != seq {
			t.Fatalf("revoked key %+v, %v", k, err)
		}
		if _, err := r.Get(ctx, tenantB, k1); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("another tenant's key: %v", err)
		}
		list, err := r.List(ctx, tenantA, time.Time{}, "", 10)
		if err != nil || len(list) != 1 || list[0].ID != k1 {
			t.Fatalf("list %+v, %v (revoked keys are not listed)", list, err)
		}
		list, err = r.List(ctx, tenantA, list[0].CreatedAt, list[0].ID, 10)
		if err != nil || len(list) != 0 {
			t.Fatalf("second page %+v, %v", list, err)
		}
	})

	t.Run("lookup by prefix", func(t *testing.T) {
		got, err := r.Lookup(ctx, "mck_aaaaaaaa")
		if err != nil || len(got) != 2 {
			t.Fatalf("lookup %+v, %v", got, err)
		}
		if got, err := r.Lookup(ctx, "mck_bbbbbbbb"); err != nil || len(got) != 0 {
			t.Errorf("a revoked key is found: %+v, %v", got, err)
		}
		if got, err := r.Lookup(ctx, ""); err != nil || len(got) != 0 {
			t.Errorf("empty prefix: %+v, %v", got, err)
		}
	})

	t.Run("row-level security", func(t *testing.T) {
		app := h.pools.App
		if c := queryInt(t, app, "SELECT count(*) FROM api_keys"); c != 0 {
			t.Errorf("app without settings sees %d keys", c)
		}
		err := projections.WithTenant(ctx, app, tenantB, func(tx pgx.Tx) error {
			if c := queryInt(t, tx, "SELECT count(*) FROM api_keys"); c != 1 {
				t.Errorf("tenant B sees %d keys, want 1", c)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := app.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, "SELECT set_config('app.api_key_prefix', 'mck_bbbbbbbb', true)"); err != nil {
			t.Fatal(err)
		}
		if c := queryInt(t, tx, "SELECT count(*) FROM api_keys"); c != 0 {
			t.Errorf("a lookup of a revoked prefix sees %d rows", c)
		}
	})
}
