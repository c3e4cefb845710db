package eventstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/metachat/metachat/domain"
)

// Metrics are the event store's Prometheus series. Create them once per registry with NewMetrics
// and pass them in Config.Metrics; a nil *Metrics records nothing.
type Metrics struct {
	appendDuration prometheus.Histogram
	appended       prometheus.Counter
	conflicts      prometheus.Counter
	duplicates     prometheus.Counter
	errors         *prometheus.CounterVec
}

// NewMetrics creates the event store's series and registers them on reg:
//
//   - metachat_eventstore_append_duration_seconds (histogram): every Append, whatever its outcome;
//   - metachat_eventstore_appended_events_total: events stored (duplicates are not stored again);
//   - metachat_eventstore_append_conflicts_total: appends refused because the aggregate was not at
//     the expected version (another writer got there first);
//   - metachat_eventstore_append_duplicates_total: appends answered as duplicates (a retry of an
//     append that was stored before);
//   - metachat_eventstore_append_errors_total{code}: appends that failed otherwise, by domain error
//     code (unavailable, too_large, invalid, conflict, internal).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("eventstore metrics: nil registerer")
	}
	m := &Metrics{
		appendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "metachat_eventstore_append_duration_seconds",
			Help: "Time an Append to the event store took, from the call to its answer, whatever the outcome.",
			// Appends take tens of microseconds with periodic fsync, milliseconds when every write
			// is fsynced, seconds only when something is wrong.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metachat_eventstore_appended_events_total",
			Help: "Events stored in the event stream (a duplicate append stores nothing).",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metachat_eventstore_append_conflicts_total",
			Help: "Appends refused because the aggregate was not at the expected version.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metachat_eventstore_append_duplicates_total",
			Help: "Appends answered as duplicates of events stored before (retries), not stored again.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metachat_eventstore_append_errors_total",
			Help: "Appends that failed for a reason other than a version conflict, by error code.",
		}, []string{"code"}),
	}
	for _, c := range []prometheus.Collector{m.appendDuration, m.appended, m.conflicts, m.duplicates, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("eventstore metrics: %w", err)
		}
	}
	// Show the usual codes at zero from the start, so rates and alerts have a series to work on.
	for _, code := range []string{domain.EUNAVAILABLE, domain.EINTERNAL} {
		m.errors.WithLabelValues(code)
	}
	return m, nil
}

// observeAppend records one Append that took d and stored events (unless it failed or was a
// duplicate).
func (m *Metrics) observeAppend(d time.Duration, events int, res domain.AppendResult, err error) {
	if m == nil {
		return
	}
	m.appendDuration.Observe(d.Seconds())
	var conflict *domain.ConcurrencyError
	switch {
	case errors.As(err, &conflict):
		m.conflicts.Inc()
	case err != nil:
		m.errors.WithLabelValues(domain.ErrorCode(err)).Inc()
	case res.Duplicate:
		m.duplicates.Inc()
	default:
		m.appended.Add(float64(events))
	}
}
