package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// benchReplay appends tenant events, then rebuilds the tenants projection from sequence 1 into a
// new generation and reports the replay rate.
func benchReplay(ctx context.Context, t *table, o options, logger *slog.Logger) error {
	t.header("replay: the whole stream into a new generation of the tenants projection")
	t.row("events", "replay time", "events/s")
	reg := domain.NewDefaultRegistry()
	s, err := startBenchStack(ctx, logger, []projections.Projection{projections.NewTenantProjection(reg)}, 0)
	if err != nil {
		return err
	}
	defer s.close()
	store, mgr := s.store, s.mgr
	if err := appendTenantEvents(ctx, store, reg, o.replayEvents); err != nil {
		return err
	}
	start := time.Now()
	if _, err := mgr.Rebuild(ctx, "tenants", nil); err != nil {
		return err
	}
	d := time.Since(start)
	t.row(fmt.Sprint(o.replayEvents), d.Round(time.Millisecond).String(), fmt.Sprintf("%.0f", rate(o.replayEvents, d)))
	return nil
}

// appendTenantEvents appends n events: tenants created, each then renamed 4 times.
func appendTenantEvents(ctx context.Context, store *eventstore.JetStream, reg *domain.Registry, n int) error {
	const writers = 16
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var agg domain.AggregateRef
			var version uint64
			for i := w; i < n; i += writers {
				var ev domain.Event
				if i/writers%5 == 0 {
					id := uuid.NewString()
					agg, version = domain.AggregateRef{TenantID: id, Type: domain.TenantAggregate, ID: id}, 0
					ev = &domain.TenantCreated{TenantID: id, Name: "tenant " + id[:8], Plan: domain.DefaultPlan, CreatedAt: time.Now().UTC()}
				} else {
					ev = &domain.TenantRenamed{Name: fmt.Sprintf("tenant %d", i), RenamedAt: time.Now().UTC()}
				}
				typ, v, payload, err := reg.Encode(ev)
				if err != nil {
					errs[w] = err
					return
				}
				res, err := store.Append(ctx, agg, version, domain.Envelope{
					ID: uuid.Must(uuid.NewV7()).String(), Type: typ, SchemaVersion: v, Payload: payload, Actor: domain.SystemActor,
				})
				if err != nil {
					errs[w] = err
					return
				}
				version = res.LastSequence
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// benchDatabase creates a database for the bench on METACHAT_TEST_DATABASE_URL (default: the
// machine's Postgres) and returns its URL and a function that drops it.
func benchDatabase(ctx context.Context) (string, func(), error) {
	admin := os.Getenv("METACHAT_TEST_DATABASE_URL")
	if admin == "" {
		admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connect to Postgres for the bench: %w", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "metachat_bench_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}
