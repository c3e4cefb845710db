package testkit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// Core is a running Metachat core for one test: a JetStream event store on an embedded server, a
// fresh Postgres database with its pools, the projections manager running the given projections,
// and a running read-your-writes waiter. Everything stops when the test ends.
type Core struct {
	Registry *domain.Registry
	Store    *eventstore.JetStream
	Pools    *projections.Pools
	Manager  *projections.Manager
	Waiter   *projections.Waiter
	Logger   *slog.Logger
	// NATS is the embedded server and Conn the store's connection to it.
	NATS *NATS
	Conn *nats.Conn
}

// StartCore starts a Core. makeProjections receives the registry and returns the projections to
// run.
func StartCore(tb testing.TB, makeProjections func(*domain.Registry) []projections.Projection) *Core {
	tb.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &Core{Registry: domain.NewDefaultRegistry(), Logger: logger}
	c.NATS = StartNATS(tb, "")
	nc := c.NATS.Connect(tb)
	c.Conn = nc
	var err error
	if c.Store, err = eventstore.Open(ctx, nc, eventstore.Config{Logger: logger}); err != nil {
		tb.Fatal(err)
	}
	if c.Pools, err = projections.OpenPools(ctx, projections.PoolsConfig{DatabaseURL: Postgres(tb)}); err != nil {
		tb.Fatal(err)
	}
	c.Manager, err = projections.NewManager(projections.ManagerConfig{
		Projections: makeProjections(c.Registry),
		Store:       c.Store, Owner: c.Pools.Owner, Projector: c.Pools.Projector, Logger: logger,
		Tuning: projections.Tuning{IdleWait: 100 * time.Millisecond},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Manager.Ensure(ctx); err != nil {
		tb.Fatal(err)
	}
	if c.Waiter, err = projections.NewWaiter(projections.WaiterConfig{Pool: c.Pools.App, Timeout: 5 * time.Second, Logger: logger}); err != nil {
		tb.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{c.Manager.Run, c.Waiter.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				tb.Errorf("background component: %v", err)
			}
		}()
	}
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
		c.Pools.Close()
	})
	return c
}
