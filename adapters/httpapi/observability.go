package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the HTTP API's Prometheus series. Create them once per registry with NewMetrics and
// pass them in Config.Metrics; a nil *Metrics records nothing.
type Metrics struct {
	duration *prometheus.HistogramVec
	serving  prometheus.Gauge
	limited  *prometheus.CounterVec
}

// NewMetrics creates the HTTP series and registers them on reg:
//
//   - metachat_http_request_duration_seconds{route, method, status} (histogram): route is the
//     matched route pattern such as /api/v1/conversations/{id} (never the raw path; "unmatched"
//     when no route matched), method one of the standard methods or OTHER, status the response
//     code, so every label is bounded;
//   - metachat_http_requests_in_flight: requests being served;
//   - metachat_http_rate_limited_total{budget}: requests refused with 429 by a rate limit, by
//     budget (api, login, signup, widget_session, send).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("httpapi metrics: nil registerer")
	}
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "metachat_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern, method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		serving: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "metachat_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metachat_http_rate_limited_total",
			Help: "Requests refused with 429 by a rate limit, by budget.",
		}, []string{"budget"}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.serving, m.limited} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("httpapi metrics: %w", err)
		}
	}
	return m, nil
}

// inFlight counts a request in flight and returns the function that ends it.
func (m *Metrics) inFlight() (done func()) {
	if m == nil {
		return func() {}
	}
	m.serving.Inc()
	return m.serving.Dec
}

// observe records a served request: r after routing (so its route pattern is known), the status
// answered and the time it took.
func (m *Metrics) observe(r *http.Request, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(routePattern(r), methodLabel(r.Method), strconv.Itoa(status)).Observe(d.Seconds())
}

// rateLimited counts a request refused by budget.
func (m *Metrics) rateLimited(budget string) {
	if m == nil {
		return
	}
	m.limited.WithLabelValues(budget).Inc()
}

// methodLabel bounds the method label: Go's server accepts any token as a method.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// errorReporterKey is the context key of Config.ReportError.
const errorReporterKey ctxKey = iota + 200

// withErrorReporter puts report into every request's context, for writeError (and so the
// recoverer) to call on unexpected errors.
func withErrorReporter(report func(ctx context.Context, err error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), errorReporterKey, report)))
		})
	}
}

// reportError hands an unexpected error (a 5xx or a panic) to Config.ReportError, if any.
func reportError(ctx context.Context, err error) {
	if report, ok := ctx.Value(errorReporterKey).(func(context.Context, error)); ok && report != nil {
		report(ctx, err)
	}
}
