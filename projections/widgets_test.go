package projections_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

func TestWidgetProjection(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	m := h.manager(t, projections.NewWidgetProjection(h.reg))
	start(t, m.Run)
	w := newWaiter(t, h, 10*time.Second)
	widgets := eventstore.NewHandler(h.store, h.reg, domain.WidgetDecider())
	do := func(tenantID, id string, cmd domain.WidgetCommand) uint64 {
		t.Helper()
		res, err := widgets.Handle(context.Background(), domain.WidgetRef(tenantID, id), cmd, eventstore.Metadata{})
		if err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
		return res.Version
	}
	tenantA, tenantB := uuid.NewString(), uuid.NewString()
	w1, w2, w3 := uuid.NewString(), uuid.NewString(), uuid.NewString()
	at := time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC)
	s := domain.WidgetSettings{Name: "One", AllowedOrigins: []string{"https://a.example.com"}}
	do(tenantA, w1, domain.CreateWidget{WidgetID: w1, Settings: s, At: at})
	s2 := s
	s2.Name = "Two"
	do(tenantA, w2, domain.CreateWidget{WidgetID: w2, Settings: s2, At: at.Add(time.Second)})
	do(tenantB, w3, domain.CreateWidget{WidgetID: w3, Settings: s, At: at})
	s1 := s
	s1.Greeting, s1.Colors.Primary = "Hello", "#00ff00"
	seq := do(tenantA, w1, domain.UpdateWidget{Settings: s1, At: at.Add(time.Hour)})
	if err := w.WaitFor(ctx, projections.WidgetsProjection, seq); err != nil {
		t.Fatal(err)
	}
	r := projections.NewWidgets(h.pools.App)

	got, err := r.Get(ctx, tenantA, w1)
	if err != nil || got.Settings.Greeting != "Hello" || got.Settings.Colors.Primary != "#00ff00" ||
		got.Version != seq || !got.UpdatedAt.Equal(at.Add(time.Hour)) || !got.CreatedAt.Equal(at) {
		t.Fatalf("widget %+v, %v", got, err)
	}
	if _, err := r.Get(ctx, tenantB, w1); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("another tenant's widget: %v", err)
	}
	list, err := r.List(ctx, tenantA, time.Time{}, "", 1)
	if err != nil || len(list) != 1 || list[0].ID != w1 {
		t.Fatalf("first page %+v, %v", list, err)
	}
	list, err = r.List(ctx, tenantA, list[0].CreatedAt, list[0].ID, 10)
	if err != nil || len(list) != 1 || list[0].ID != w2 || list[0].Settings.Name != "Two" {
		t.Fatalf("second page %+v, %v", list, err)
	}
	found, err := r.Lookup(ctx, w3)
	if err != nil || found.TenantID != tenantB || !slices.Equal(found.Settings.AllowedOrigins, []string{"https://a.example.com"}) {
		t.Fatalf("lookup %+v, %v", found, err)
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid", ""} {
		if _, err := r.Lookup(ctx, id); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("lookup %q: %v", id, err)
		}
	}
	// Row-level security: nothing without a setting, one row with the lookup setting.
	if c := queryInt(t, h.pools.App, "SELECT count(*) FROM widgets"); c != 0 {
		t.Errorf("app without settings sees %d widgets", c)
	}
	tx, err := h.pools.App.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT set_config('app.widget_id', $1, true)", w1); err != nil {
		t.Fatal(err)
	}
	if c := queryInt(t, tx, "SELECT count(*) FROM widgets"); c != 1 {
		t.Errorf("a widget lookup sees %d rows, want 1", c)
	}
	err = projections.WithTenant(ctx, h.pools.App, tenantA, func(tx pgx.Tx) error {
		if c := queryInt(t, tx, "SELECT count(*) FROM widgets"); c != 2 {
			t.Errorf("tenant A sees %d widgets, want 2", c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
