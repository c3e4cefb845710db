package eventstore_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
)

// TestAppendMetrics appends, conflicts, repeats and fails appends on an instrumented store and
// sees each in a scrape.
func TestAppendMetrics(t *testing.T) {
	t.Parallel()
	nc := testkit.StartNATS(t, "").Connect(t)
	reg := prometheus.NewRegistry()
	metrics, err := eventstore.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := uniqueConfig()
	cfg.Metrics = metrics
	s, err := eventstore.Open(t.Context(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	agg := domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: "t-1"}

	first := []domain.Envelope{event("ticket.opened"), event("ticket.noted")}
	res, err := s.Append(ctx, agg, 0, first...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, agg, res.LastSequence, event("ticket.noted")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, agg, 0, event("ticket.noted")); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Fatalf("stale append: %v, want a conflict", err)
	}
	if dup, err := s.Append(ctx, agg, 0, first...); err != nil || !dup.Duplicate {
		t.Fatalf("repeated append: %+v, %v; want a duplicate", dup, err)
	}
	if _, err := s.Append(ctx, agg, 0, domain.Envelope{ID: "x", Type: "", SchemaVersion: 1}); err == nil {
		t.Fatal("an invalid event was appended")
	}

	sc := testkit.ScrapeRegistry(t, reg)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"metachat_eventstore_append_duration_seconds", nil, 5},
		{"metachat_eventstore_appended_events_total", nil, 3},
		{"metachat_eventstore_append_conflicts_total", nil, 1},
		{"metachat_eventstore_append_duplicates_total", nil, 1},
		{"metachat_eventstore_append_errors_total", map[string]string{"code": domain.EINVALID}, 1},
		{"metachat_eventstore_append_errors_total", map[string]string{"code": domain.EUNAVAILABLE}, 0},
	} {
		if got, ok := sc.Value(tc.name, tc.labels); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
}
