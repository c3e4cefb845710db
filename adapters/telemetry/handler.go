package telemetry

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HandlerConfig configures the metrics listener's handler.
type HandlerConfig struct {
	// Registry is gathered by GET /metrics; scrape failures are counted on it
	// (promhttp_metric_handler_errors_total).
	Registry *prometheus.Registry
	// Logger receives errors met while serving a scrape. Nil discards them.
	Logger *slog.Logger
	// DisableProfiling leaves the /debug/pprof/ handlers out.
	DisableProfiling bool
}

func (c *HandlerConfig) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with the configuration.
func (c HandlerConfig) Validate() error {
	if c.Registry == nil {
		return errors.New("telemetry handler: no registry")
	}
	return nil
}

// NewHandler returns the handler of the metrics listener:
//
//   - GET /metrics: the registry in the Prometheus text format (or OpenMetrics when asked);
//   - /debug/pprof/…: the runtime profiles of net/http/pprof (index, cmdline, profile, symbol,
//     trace and the named profiles such as heap and goroutine), registered here explicitly;
//   - GET /: a short index of the above.
//
// Only this handler serves the profiles: http.DefaultServeMux, on which importing net/http/pprof
// also registers them, is never served by Metachat. Serve it on a loopback or otherwise private
// address only: profiles reveal the program's internals and cost CPU.
func NewHandler(cfg HandlerConfig) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{
		ErrorLog:          slogPrintln{cfg.Logger},
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          cfg.Registry,
		EnableOpenMetrics: true,
	}))
	if !cfg.DisableProfiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "Metachat operations listener\n\n/metrics       Prometheus metrics\n")
		if !cfg.DisableProfiling {
			_, _ = io.WriteString(w, "/debug/pprof/  runtime profiles\n")
		}
	})
	return mux, nil
}

// slogPrintln adapts a slog.Logger to promhttp.Logger.
type slogPrintln struct{ log *slog.Logger }

// Println implements promhttp.Logger.
func (l slogPrintln) Println(v ...any) {
	l.log.Error("serve metrics", "error", fmt.Sprint(v...))
}
