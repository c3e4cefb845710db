package projections_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
	"github.com/metachat/metachat/projections"
)

// TestMetricsShowAStoppedProjectionWithGrowingLag runs a manager with metrics over a projection
// that refuses an event, and follows it in scrapes: caught up, then stopped with a lag that grows
// in events and in seconds, then caught up again once fixed and resumed.
func TestMetricsShowAStoppedProjectionWithGrowingLag(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	reg := prometheus.NewRegistry()
	metrics, err := projections.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{reg: h.reg}
	c.broken.Store(true)
	m, err := projections.NewManager(projections.ManagerConfig{
		Projections: []projections.Projection{c},
		Store:       h.store,
		Owner:       h.pools.Owner,
		Projector:   h.pools.Projector,
		Tuning:      projections.Tuning{IdleWait: 100 * time.Millisecond},
		RetryDelay:  100 * time.Millisecond,
		Logger:      testLogger(t),
		Metrics:     metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := projections.NewStatusCollector(reg, projections.StatusCollectorConfig{Manager: m}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"projection": "counter", "generation": "1", "state": "active"}
	gauge := func(s *testkit.Scrape, name string) float64 {
		t.Helper()
		v, ok := s.Value(name, labels)
		if !ok {
			t.Fatalf("no %s%v in the scrape:\n%s", name, labels, s.Text)
		}
		return v
	}
	// waitScrape scrapes until cond holds, and returns that scrape.
	waitScrape := func(what string, cond func(s *testkit.Scrape) bool) *testkit.Scrape {
		t.Helper()
		var s *testkit.Scrape
		eventually(t, 20*time.Second, what, func() bool {
			s = testkit.ScrapeRegistry(t, reg)
			return cond(s)
		})
		return s
	}

	stop := start(t, m.Run)
	_, seq := h.createTenant(t, "fine")
	// The checkpoint is committed a moment before the runner counts the batch.
	one := map[string]string{"projection": "counter"}
	s := waitScrape("the checkpoint to reach the first event and the batch to be counted", func(s *testkit.Scrape) bool {
		v, _ := s.Value("metachat_projection_checkpoint_sequence", labels)
		n, _ := s.Value("metachat_projection_events_applied_total", one)
		return v == float64(seq) && n == 1
	})
	if gauge(s, "metachat_projection_lag_events") != 0 || gauge(s, "metachat_projection_lag_seconds") != 0 ||
		gauge(s, "metachat_projection_stopped") != 0 || gauge(s, "metachat_projection_running") != 1 {
		t.Fatalf("caught up, the scrape says otherwise:\n%s", s.Text)
	}
	if v, _ := s.Value("metachat_projection_batch_duration_seconds", one); v < 1 {
		t.Errorf("batches observed = %v, want at least 1", v)
	}

	// A poison event stops the projection: stopped, lagging by one event, and older every scrape.
	_, poisonSeq := h.createTenant(t, "poison pill")
	poisonErrors := map[string]string{"projection": "counter", "kind": "poison"}
	s1 := waitScrape("the projection to show as stopped and the poison event to be counted", func(s *testkit.Scrape) bool {
		v, _ := s.Value("metachat_projection_stopped", labels)
		n, _ := s.Value("metachat_projection_errors_total", poisonErrors)
		return v == 1 && n == 1
	})
	if got := gauge(s1, "metachat_projection_checkpoint_sequence"); got != float64(seq) {
		t.Errorf("checkpoint of the stopped projection = %v, want %d", got, seq)
	}
	if got := gauge(s1, "metachat_projection_lag_events"); got != 1 {
		t.Errorf("lag of the stopped projection = %v events, want 1", got)
	}
	lag1 := gauge(s1, "metachat_projection_lag_seconds")
	time.Sleep(300 * time.Millisecond)
	last := poisonSeq
	for i := range 3 {
		_, last = h.createTenant(t, "after "+strconv.Itoa(i))
	}
	s2 := testkit.ScrapeRegistry(t, reg)
	if got := gauge(s2, "metachat_projection_lag_events"); got != float64(last-seq) {
		t.Errorf("lag after 3 more events = %v events, want %d", got, last-seq)
	}
	if lag2 := gauge(s2, "metachat_projection_lag_seconds"); lag2 < lag1+0.25 {
		t.Errorf("lag in seconds went from %v to %v in 300ms; it must grow while the projection is stopped", lag1, lag2)
	}
	if gauge(s2, "metachat_projection_stopped") != 1 {
		t.Errorf("the projection no longer shows as stopped:\n%s", s2.Text)
	}

	// Fixed and resumed, it catches up.
	c.broken.Store(false)
	if err := m.Resume("counter"); err != nil {
		t.Fatal(err)
	}
	s3 := waitScrape("the resumed projection to catch up", func(s *testkit.Scrape) bool {
		v, _ := s.Value("metachat_projection_checkpoint_sequence", labels)
		return v == float64(last)
	})
	if gauge(s3, "metachat_projection_stopped") != 0 || gauge(s3, "metachat_projection_lag_events") != 0 ||
		gauge(s3, "metachat_projection_lag_seconds") != 0 {
		t.Errorf("resumed and caught up, the scrape says otherwise:\n%s", s3.Text)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer written by several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLine returns the first JSON log line with message msg whose attributes include attrs, or nil.
func logLine(logs, msg string, attrs map[string]string) map[string]any {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || line["msg"] != msg {
			continue
		}
		match := true
		for k, v := range attrs {
			if s, _ := line[k].(string); s != v {
				match = false
			}
		}
		if match {
			return line
		}
	}
	return nil
}

// TestRunnerLogsAppliedEventsWithCorrelationID appends events whose correlation id is a request
// id and finds the runner's debug line for each: event id, type, sequence and correlation id.
func TestRunnerLogsAppliedEventsWithCorrelationID(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	var logs syncBuffer
	tp := projections.NewTenantProjection(h.reg)
	m, err := projections.NewManager(projections.ManagerConfig{
		Projections: []projections.Projection{tp},
		Store:       h.store,
		Owner:       h.pools.Owner,
		Projector:   h.pools.Projector,
		Tuning:      projections.Tuning{IdleWait: 100 * time.Millisecond},
		Logger:      slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, m.Run)

	t.Run("metadata", func(t *testing.T) {
		// Metadata given explicitly, as a caller that knows its request id does.
		const requestID = "req-5f2a9c0b7d1e4a3c"
		id := uuid.NewString()
		res, err := h.tenants.Handle(ctx, tenantRef(id), domain.CreateTenant{TenantID: id, Name: "Traced", At: time.Now()},
			eventstore.Metadata{CorrelationID: requestID})
		if err != nil {
			t.Fatal(err)
		}
		ev := res.Events[0]
		var line map[string]any
		eventually(t, 20*time.Second, "the runner's line for the event", func() bool {
			line = logLine(logs.String(), "event applied", map[string]string{"event_id": ev.ID})
			return line != nil
		})
		if line["correlation_id"] != requestID || line["type"] != domain.EventTenantCreated ||
			line["seq"] != float64(ev.Sequence) || line["level"] != "DEBUG" || line["projection"] != "tenants" {
			t.Errorf("runner's line for event %s (seq %d) = %v, want its type, seq and correlation id %s at debug",
				ev.ID, ev.Sequence, line, requestID)
		}
		if logLine(logs.String(), "batch applied", map[string]string{"projection": "tenants"}) == nil {
			t.Errorf("no batch summary in:\n%s", logs.String())
		}

	})

	t.Run("context", func(t *testing.T) {
		// The id carried by the context alone, as an HTTP request's is.
		ctxID := "req-" + uuid.NewString()
		id2 := uuid.NewString()
		res, err := h.tenants.Handle(domain.WithCorrelationID(ctx, ctxID), tenantRef(id2),
			domain.CreateTenant{TenantID: id2, Name: "Traced by context", At: time.Now()}, eventstore.Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		stored, _, err := h.store.Load(ctx, tenantRef(id2), 0)
		if err != nil || len(stored) != 1 {
			t.Fatalf("load: %v, %d events", err, len(stored))
		}
		if stored[0].CorrelationID != ctxID {
			t.Fatalf("stored correlation id %q, want the context's %q", stored[0].CorrelationID, ctxID)
		}
		eventually(t, 20*time.Second, "the runner's line for the second event", func() bool {
			return logLine(logs.String(), "event applied", map[string]string{"event_id": res.Events[0].ID, "correlation_id": ctxID}) != nil
		})
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
