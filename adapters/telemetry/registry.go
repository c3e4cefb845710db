package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns a new Prometheus registry holding the Go runtime collector (go_*), the
// process collector (process_*) and metachat_build_info{version} (always 1). The other packages
// register their own series on it (their NewMetrics constructors). It is not the client library's
// default registry, which Metachat never uses.
func NewRegistry(version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "metachat_build_info",
		Help:        "Always 1; the version label is the running build's version.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build,
	)
	return reg
}
