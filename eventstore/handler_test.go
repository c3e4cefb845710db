package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
)

// storeKind names a store implementation and opens a fresh one.
type storeKind struct {
	name string
	open func(t *testing.T) domain.EventStore
}

// storeKinds returns both stores; the JetStream ones share one server started for t.
func storeKinds(t *testing.T) []storeKind {
	nc := testkit.StartNATS(t, "").Connect(t)
	return []storeKind{
		{"memory", func(*testing.T) domain.EventStore { return eventstore.NewMemory(eventstore.MemoryConfig{}) }},
		{"jetstream", func(t *testing.T) domain.EventStore { return openStore(t, nc) }},
	}
}

// tenantHandler is the tenant aggregate's command handler.
type tenantHandler = eventstore.Handler[domain.Tenant, domain.TenantCommand]

func newTenantHandler(store domain.EventStore, opts ...eventstore.HandlerOption) *tenantHandler {
	return eventstore.NewHandler(store, domain.NewDefaultRegistry(), domain.TenantDecider(), opts...)
}

// tenantRef returns the reference of a tenant; tenant ids are UUIDs.
func tenantRef(id string) domain.AggregateRef {
	return domain.AggregateRef{TenantID: id, Type: domain.TenantAggregate, ID: id}
}

// newTenantRef returns the reference of a new tenant with a random id.
func newTenantRef() domain.AggregateRef { return tenantRef(uuid.NewString()) }

func TestHandlerTenantLifecycle(t *testing.T) {
	t.Parallel()
	for _, kind := range storeKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			store := kind.open(t)
			at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
			h := newTenantHandler(store, eventstore.WithClock(func() time.Time { return at }))
			ctx := t.Context()
			agg := newTenantRef()
			md := eventstore.Metadata{Actor: domain.Actor{Type: "user", ID: "u-1"}, CorrelationID: "corr", CausationID: "cause"}

			created, err := h.Handle(ctx, agg, domain.CreateTenant{TenantID: agg.ID, Name: " Acme ", At: at}, md)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			if !created.State.Exists || created.State.Name != "Acme" || created.State.Plan != domain.DefaultPlan {
				t.Fatalf("state after create: %+v", created.State)
			}
			if len(created.Events) != 1 || created.Version != created.Events[0].Sequence || created.Version == 0 {
				t.Fatalf("create result: version %d, events %+v", created.Version, created.Events)
			}
			e := created.Events[0]
			id, err := uuid.Parse(e.ID)
			switch {
			case err != nil || id.Version() != 7:
				t.Fatalf("event id %q is not a UUIDv7", e.ID)
			case e.Type != domain.EventTenantCreated || e.SchemaVersion != 2:
				t.Fatalf("event %s v%d", e.Type, e.SchemaVersion)
			case e.Aggregate() != agg || !e.OccurredAt.Equal(at):
				t.Fatalf("event on %s at %v", e.Aggregate(), e.OccurredAt)
			case e.Actor != md.Actor || e.CorrelationID != "corr" || e.CausationID != "cause":
				t.Fatalf("event metadata %+v %q %q", e.Actor, e.CorrelationID, e.CausationID)
			}

			renamed, err := h.Handle(ctx, agg, domain.RenameTenant{Name: "Acme Inc", At: at}, eventstore.Metadata{})
			if err != nil {
				t.Fatalf("rename: %v", err)
			}
			if renamed.State.Name != "Acme Inc" || renamed.Version <= created.Version || len(renamed.Events) != 1 {
				t.Fatalf("rename result: %+v", renamed)
			}
			if renamed.Events[0].Actor != domain.SystemActor {
				t.Fatalf("event without an actor: got %+v, want the system actor", renamed.Events[0].Actor)
			}

			same, err := h.Handle(ctx, agg, domain.RenameTenant{Name: "Acme Inc", At: at}, md)
			if err != nil || len(same.Events) != 0 || same.Version != renamed.Version || same.State.Name != "Acme Inc" {
				t.Fatalf("rename to the same name: %+v, %v; want no events at version %d", same, err, renamed.Version)
			}

			_, err = h.Handle(ctx, agg, domain.CreateTenant{TenantID: agg.ID, Name: "Again", At: at}, md)
			var ce *domain.ConcurrencyError
			if domain.ErrorCode(err) != domain.ECONFLICT || errors.As(err, &ce) {
				t.Fatalf("create twice: %v, want the decider's ECONFLICT", err)
			}
			_, err = h.Handle(ctx, newTenantRef(), domain.RenameTenant{Name: "X", At: at}, md)
			if domain.ErrorCode(err) != domain.ENOTFOUND {
				t.Fatalf("rename an unknown tenant: %v, want ENOTFOUND", err)
			}
			_, err = h.Handle(ctx, domain.AggregateRef{TenantID: agg.ID, Type: "ticket", ID: agg.ID}, domain.RenameTenant{Name: "X"}, md)
			if domain.ErrorCode(err) != domain.EINVALID {
				t.Fatalf("command on another aggregate type: %v, want EINVALID", err)
			}
			_, err = h.Handle(ctx, tenantRef("a.b"), domain.RenameTenant{Name: "X"}, md)
			if domain.ErrorCode(err) != domain.EINVALID {
				t.Fatalf("command on an invalid reference: %v, want EINVALID", err)
			}

			events, version, err := store.Load(ctx, agg, 0)
			if err != nil || len(events) != 2 || version != renamed.Version {
				t.Fatalf("Load: %d events at %d, %v; want 2 at %d", len(events), version, err, renamed.Version)
			}
		})
	}
}

func TestHandlerUpcastsStoredEvents(t *testing.T) {
	t.Parallel()
	for _, kind := range storeKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			store := kind.open(t)
			agg := newTenantRef()
			v1 := domain.Envelope{
				ID: uuid.NewString(), Type: domain.EventTenantCreated, SchemaVersion: 1,
				Payload: json.RawMessage(`{"tenant_id":"` + agg.ID + `","name":"Old Co","created_at":"2020-01-01T00:00:00Z"}`),
			}
			if _, err := store.Append(t.Context(), agg, 0, v1); err != nil {
				t.Fatal(err)
			}
			res, err := newTenantHandler(store).Handle(t.Context(), agg, domain.RenameTenant{Name: "New Co"}, eventstore.Metadata{})
			if err != nil {
				t.Fatal(err)
			}
			if res.State.Plan != domain.DefaultPlan || res.State.Name != "New Co" || res.State.ID != agg.ID {
				t.Fatalf("state %+v: want the v1 event upcast with the default plan", res.State)
			}
		})
	}
}

func TestHandlerConcurrentCommandsRetry(t *testing.T) {
	t.Parallel()
	const renamers = 10
	for _, kind := range storeKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			store := kind.open(t)
			h := newTenantHandler(store, eventstore.WithMaxRetries(20))
			agg := newTenantRef()
			if _, err := h.Handle(t.Context(), agg, domain.CreateTenant{TenantID: agg.ID, Name: "Acme"}, eventstore.Metadata{}); err != nil {
				t.Fatal(err)
			}
			start := make(chan struct{})
			errs := make([]error, renamers)
			results := make([]eventstore.Result[domain.Tenant], renamers)
			var wg sync.WaitGroup
			for i := range renamers {
				wg.Go(func() {
					<-start
					results[i], errs[i] = h.Handle(context.Background(), agg, domain.RenameTenant{Name: fmt.Sprintf("Name %d", i)}, eventstore.Metadata{})
				})
			}
			close(start)
			wg.Wait()
			versions := map[uint64]bool{}
			for i, err := range errs {
				if err != nil {
					t.Fatalf("renamer %d: %v", i, err)
				}
				if len(results[i].Events) != 1 || versions[results[i].Version] {
					t.Fatalf("renamer %d: %+v", i, results[i])
				}
				versions[results[i].Version] = true
			}
			events, _, err := store.Load(t.Context(), agg, 0)
			if err != nil || len(events) != renamers+1 {
				t.Fatalf("Load: %d events, %v; want %d", len(events), err, renamers+1)
			}
		})
	}
}

// interferingStore is a real store with another writer that always appends to the aggregate just
// before the handler does, so every append of the handler conflicts.
type interferingStore struct {
	domain.EventStore
	reg     *domain.Registry
	appends atomic.Int32
}

func (s *interferingStore) Append(ctx context.Context, agg domain.AggregateRef, expected uint64, events ...domain.Envelope) (domain.AppendResult, error) {
	n := s.appends.Add(1)
	typ, ver, payload, err := s.reg.Encode(&domain.TenantRenamed{Name: fmt.Sprintf("Other %d", n)})
	if err != nil {
		return domain.AppendResult{}, err
	}
	_, version, err := s.Load(ctx, agg, 0)
	if err != nil {
		return domain.AppendResult{}, err
	}
	other := domain.Envelope{ID: uuid.NewString(), Type: typ, SchemaVersion: ver, Payload: payload}
	if _, err := s.EventStore.Append(ctx, agg, version, other); err != nil {
		return domain.AppendResult{}, err
	}
	return s.EventStore.Append(ctx, agg, expected, events...)
}

func TestHandlerGivesUpAfterRetries(t *testing.T) {
	t.Parallel()
	for _, kind := range storeKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			base := kind.open(t)
			agg := newTenantRef()
			if _, err := newTenantHandler(base).Handle(t.Context(), agg, domain.CreateTenant{TenantID: agg.ID, Name: "Acme"}, eventstore.Metadata{}); err != nil {
				t.Fatal(err)
			}
			store := &interferingStore{EventStore: base, reg: domain.NewDefaultRegistry()}
			_, err := newTenantHandler(store, eventstore.WithMaxRetries(2)).Handle(t.Context(), agg, domain.RenameTenant{Name: "Mine"}, eventstore.Metadata{})
			var ce *domain.ConcurrencyError
			if !errors.As(err, &ce) || domain.ErrorCode(err) != domain.ECONFLICT {
				t.Fatalf("Handle: %v, want a *domain.ConcurrencyError", err)
			}
			if got := store.appends.Load(); got != 3 {
				t.Fatalf("%d append attempts, want 3 (1 + 2 retries)", got)
			}
		})
	}
}

func TestHandlerIDGeneratorFailure(t *testing.T) {
	t.Parallel()
	store := eventstore.NewMemory(eventstore.MemoryConfig{})
	boom := errors.New("no entropy")
	h := newTenantHandler(store, eventstore.WithIDGenerator(func() (string, error) { return "", boom }))
	agg := newTenantRef()
	_, err := h.Handle(t.Context(), agg, domain.CreateTenant{TenantID: agg.ID, Name: "Acme"}, eventstore.Metadata{})
	if !errors.Is(err, boom) {
		t.Fatalf("Handle: %v, want the generator's error", err)
	}
	if last, _ := store.LastSequence(t.Context()); last != 0 {
		t.Fatalf("last sequence %d, want nothing stored", last)
	}
}
