package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/adapters/natsserver"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// benchAppend compares eventstore appends with raw JetStream synchronous publishes of the same size,
// with 1 and 16 concurrent writers, under the default fsync policy and under sync-always.
func benchAppend(ctx context.Context, t *table, o options, logger *slog.Logger) error {
	t.header("append: event store vs raw JetStream synchronous publish (same connection, same message size)")
	t.row("fsync", "writers", "store ev/s", "raw msg/s", "ratio", "store P50", "store P99", "raw P50", "raw P99")
	for _, m := range []syncMode{
		{name: "periodic 2m (JetStream default)", interval: 2 * time.Minute},
		{name: "periodic 1s (Metachat default)", interval: time.Second},
		{name: "sync always", always: true},
	} {
		if err := appendScenario(ctx, t, o, logger, m); err != nil {
			return err
		}
	}
	return nil
}

// syncMode is a JetStream fsync policy.
type syncMode struct {
	name     string
	interval time.Duration
	always   bool
}

func appendScenario(ctx context.Context, t *table, o options, logger *slog.Logger, mode syncMode) error {
	dir, err := os.MkdirTemp("", "metachat-bench-nats-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := natsserver.Start(ctx, natsserver.Config{StoreDir: dir, SyncAlways: mode.always, SyncInterval: mode.interval, Logger: logger})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL(), srv.InProcessOption())
	if err != nil {
		return err
	}
	defer nc.Close()
	store, err := eventstore.Open(ctx, nc, eventstore.Config{Logger: logger})
	if err != nil {
		return err
	}
	js := store.JetStream()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}, Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("raw stream: %w", err)
	}
	sample := sampleEnvelope(o.payloadBytes)
	body, _ := json.Marshal(sample)
	n := o.appends
	if mode.always {
		n /= 4 // each write waits for the disk: keep the run short
	}
	for _, writers := range []int{1, 16} {
		raw, rawLat, err := runWriters(writers, n, func(w, i int) error {
			_, err := js.Publish(ctx, fmt.Sprintf("raw.w%d", w), body)
			return err
		})
		if err != nil {
			return fmt.Errorf("raw publish: %w", err)
		}
		versions := make([]uint64, writers)
		tenant := uuid.NewString()
		st, stLat, err := runWriters(writers, n, func(w, i int) error {
			agg := domain.AggregateRef{TenantID: tenant, Type: "bench", ID: fmt.Sprintf("w%d", w)}
			env := sample
			env.ID = uuid.Must(uuid.NewV7()).String()
			res, err := store.Append(ctx, agg, versions[w], env)
			if err != nil {
				return err
			}
			versions[w] = res.LastSequence
			return nil
		})
		if err != nil {
			return fmt.Errorf("store append: %w", err)
		}
		t.row(mode.name, fmt.Sprint(writers), fmt.Sprintf("%.0f", st), fmt.Sprintf("%.0f", raw), fmt.Sprintf("%.0f %%", 100*st/raw),
			ms(stLat.pct(50)), ms(stLat.pct(99)), ms(rawLat.pct(50)), ms(rawLat.pct(99)))
	}
	return nil
}

// runWriters runs total operations split over writers goroutines and returns operations per second
// and each operation's latency.
func runWriters(writers, total int, op func(writer, i int) error) (float64, latencies, error) {
	per := total / writers
	lat := make([]latencies, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make(latencies, 0, per)
			for i := 0; i < per; i++ {
				t0 := time.Now()
				if err := op(w, i); err != nil {
					errs[w] = err
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[w] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all latencies
	for w := range lat {
		if errs[w] != nil {
			return 0, nil, errs[w]
		}
		all = append(all, lat[w]...)
	}
	return rate(len(all), elapsed), all, nil
}

// sampleEnvelope returns an event envelope whose JSON is about size bytes.
func sampleEnvelope(size int) domain.Envelope {
	env := domain.Envelope{
		ID: uuid.Must(uuid.NewV7()).String(), Type: domain.EventTenantRenamed, SchemaVersion: 1,
		OccurredAt: time.Now().UTC(), Actor: domain.Actor{Type: "user", ID: uuid.NewString()},
		CorrelationID: uuid.NewString(),
	}
	b, _ := json.Marshal(env)
	pad := size - len(b) - 40
	if pad < 1 {
		pad = 1
	}
	payload, _ := json.Marshal(domain.TenantRenamed{Name: strings.Repeat("x", pad), RenamedAt: env.OccurredAt})
	env.Payload = payload
	return env
}
