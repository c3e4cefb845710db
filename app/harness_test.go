package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
	"github.com/metachat/metachat/projections"
)

// env is a running Metachat core for one test: a JetStream event store on an embedded server, a
// fresh Postgres database with its pools, the projections manager running the given projections,
// and a running read-your-writes waiter. Everything stops when the test ends.
type env struct {
	Registry *domain.Registry
	Store    *eventstore.JetStream
	Pools    *projections.Pools
	Manager  *projections.Manager
	Waiter   *projections.Waiter
	Logger   *slog.Logger
}

// newEnv starts an env. makeProjections receives the registry and returns the projections to run.
func newEnv(t *testing.T, makeProjections func(*domain.Registry) []projections.Projection) *env {
	t.Helper()
	ctx := t.Context()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := &env{Registry: domain.NewDefaultRegistry(), Logger: logger}
	nc := testkit.StartNATS(t, "").Connect(t)
	var err error
	e.Store, err = eventstore.Open(ctx, nc, eventstore.Config{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.Pools, err = projections.OpenPools(ctx, projections.PoolsConfig{DatabaseURL: testkit.Postgres(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.Manager, err = projections.NewManager(projections.ManagerConfig{
		Projections: makeProjections(e.Registry),
		Store:       e.Store, Owner: e.Pools.Owner, Projector: e.Pools.Projector, Logger: logger,
		Tuning: projections.Tuning{IdleWait: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Manager.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	e.Waiter, err = projections.NewWaiter(projections.WaiterConfig{Pool: e.Pools.App, Timeout: 5 * time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{e.Manager.Run, e.Waiter.Run} {
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
		e.Pools.Close()
	})
	return e
}
