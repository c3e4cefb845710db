package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/adapters/telemetry"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// observability is what `metachat serve` measures and reports: one Prometheus registry (never the
// client library's default one) with the series of every package, and the optional Sentry
// reporter. A nil *observability (the operator commands) measures nothing.
type observability struct {
	registry    *prometheus.Registry
	store       *eventstore.Metrics
	projections *projections.Metrics
	http        *httpapi.Metrics
	sentry      *telemetry.Sentry // nil without SENTRY_DSN
}

// newObservability creates the registry and the series the packages record as they work; Sentry
// is set up when cfg.SentryDSN is set.
func newObservability(cfg Config) (*observability, error) {
	o := &observability{registry: telemetry.NewRegistry(version)}
	var err error
	if o.store, err = eventstore.NewMetrics(o.registry); err != nil {
		return nil, err
	}
	if o.projections, err = projections.NewMetrics(o.registry); err != nil {
		return nil, err
	}
	if o.http, err = httpapi.NewMetrics(o.registry); err != nil {
		return nil, err
	}
	if cfg.SentryDSN != "" {
		o.sentry, err = telemetry.NewSentry(telemetry.SentryConfig{DSN: cfg.SentryDSN, Environment: cfg.Env, Release: version})
		if err != nil {
			return nil, fmt.Errorf("SENTRY_DSN: %w", err)
		}
	}
	return o, nil
}

func (o *observability) storeMetrics() *eventstore.Metrics {
	if o == nil {
		return nil
	}
	return o.store
}

func (o *observability) projectionMetrics() *projections.Metrics {
	if o == nil {
		return nil
	}
	return o.projections
}

// reportError is httpapi.Config.ReportError: Sentry when configured, else nil (nothing is sent
// anywhere).
func (o *observability) reportError() func(context.Context, error) {
	if o == nil || o.sentry == nil {
		return nil
	}
	return o.sentry.Report
}

// close sends what Sentry still has queued.
func (o *observability) close() {
	if o != nil && o.sentry != nil {
		o.sentry.Close(2 * time.Second)
	}
}

// opsListener is the metrics listener: its server and the dependency monitor feeding
// metachat_dependency_up.
type opsListener struct {
	srv     *http.Server
	ln      net.Listener
	monitor *telemetry.DependencyMonitor
}

// listen registers the state read at scrape time (the projections' status) and the dependency
// checks, and opens METACHAT_METRICS_ADDR. Nothing runs until serve starts srv and monitor.
func (o *observability) listen(cfg Config, logger *slog.Logger, a *app, nc *nats.Conn) (*opsListener, error) {
	if _, err := projections.NewStatusCollector(o.registry, projections.StatusCollectorConfig{
		Manager: a.manager,
		Logger:  logger.With("component", "metrics"),
	}); err != nil {
		return nil, err
	}
	monitor, err := telemetry.NewDependencyMonitor(o.registry, telemetry.DependencyMonitorConfig{
		Checks: a.dependencyChecks(nc),
		Logger: logger.With("component", "dependencies"),
	})
	if err != nil {
		return nil, err
	}
	h, err := telemetry.NewHandler(telemetry.HandlerConfig{Registry: o.registry, Logger: logger.With("component", "metrics")})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on METACHAT_METRICS_ADDR %s: %w", cfg.MetricsAddr, err)
	}
	return &opsListener{
		srv:     &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute},
		ln:      ln,
		monitor: monitor,
	}, nil
}

// dependencyChecks are the checks behind metachat_dependency_up: NATS answers for the event
// stream, Postgres answers a query through the API's pool.
func (a *app) dependencyChecks(nc *nats.Conn) []telemetry.DependencyCheck {
	return []telemetry.DependencyCheck{
		{Name: "nats", Check: func(ctx context.Context) error {
			if !nc.IsConnected() {
				return errors.New("not connected: " + nc.Status().String())
			}
			_, err := a.store.LastSequence(ctx)
			return err
		}},
		{Name: "postgres", Check: func(ctx context.Context) error {
			var one int
			return a.pools.App.QueryRow(ctx, "SELECT 1").Scan(&one)
		}},
	}
}
