package main

import (
	"context"
	"log/slog"
	"os"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/adapters/natsserver"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// benchStack is what every bench world stands on: an embedded NATS server in a directory of its
// own with a store on it, a bench database with its pools, and the manager of the given
// projections with their generations ensured. close undoes all of it, last first.
type benchStack struct {
	nc      *nats.Conn
	store   *eventstore.JetStream
	dbURL   string
	pools   *projections.Pools
	mgr     *projections.Manager
	closers []func()
}

// startBenchStack starts a stack for ps; appMaxConns sizes the app pool (0: the default). On an
// error it has closed what it started.
func startBenchStack(ctx context.Context, logger *slog.Logger, ps []projections.Projection, appMaxConns int32) (_ *benchStack, err error) {
	s := &benchStack{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	dir, err := os.MkdirTemp("", "metachat-bench-nats-")
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = os.RemoveAll(dir) })
	srv, err := natsserver.Start(ctx, natsserver.Config{StoreDir: dir, Logger: logger})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, srv.Shutdown)
	// In-process, as metachat serve connects to its embedded server: no loopback TCP.
	if s.nc, err = nats.Connect(srv.ClientURL(), srv.InProcessOption()); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.nc.Close)
	if s.store, err = eventstore.Open(ctx, s.nc, eventstore.Config{Logger: logger}); err != nil {
		return nil, err
	}
	dbURL, drop, err := benchDatabase(ctx)
	if err != nil {
		return nil, err
	}
	s.dbURL = dbURL
	s.closers = append(s.closers, drop)
	if s.pools, err = projections.OpenPools(ctx, projections.PoolsConfig{DatabaseURL: dbURL, AppMaxConns: appMaxConns}); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.pools.Close)
	if s.mgr, err = projections.NewManager(projections.ManagerConfig{Projections: ps, Store: s.store,
		Owner: s.pools.Owner, Projector: s.pools.Projector, Logger: logger}); err != nil {
		return nil, err
	}
	if err := s.mgr.Ensure(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// runInBackground runs each of fns until the stack closes.
func (s *benchStack) runInBackground(fns ...func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range fns {
		wg.Go(func() { _ = run(ctx) })
	}
	s.closers = append(s.closers, func() { cancel(); wg.Wait() })
}

func (s *benchStack) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}
