package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
)

// Config configures the HTTP adapter.
type Config struct {
	// Logger receives access and error logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TrustRequestID accepts a caller's X-Request-ID (only behind a trusted proxy).
	TrustRequestID bool
	// Health lists the dependency checks of GET /api/health.
	Health []HealthCheck
	// HealthTimeout bounds each health check (default 2s).
	HealthTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HealthTimeout == 0 {
		c.HealthTimeout = 2 * time.Second
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	for i, h := range c.Health {
		if h.Name == "" || h.Check == nil {
			errs = append(errs, fmt.Errorf("httpapi: health check %d needs a name and a function", i))
		}
	}
	if c.HealthTimeout < 0 {
		errs = append(errs, errors.New("httpapi: HealthTimeout must not be negative"))
	}
	return errors.Join(errs...)
}

// Server is the HTTP API.
type Server struct {
	cfg    Config
	logger *slog.Logger
	router chi.Router
}

// NewServer builds the router with its middleware and routes.
func NewServer(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: cfg.Logger}
	r := chi.NewRouter()
	r.Use(requestID(cfg.TrustRequestID), accessLog(cfg.Logger, cfg.Now), recoverer(cfg.Logger))
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)
	s.registerHealthRoutes(r)
	s.router = r
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// routePattern returns the matched chi route pattern (never the raw path), or "unmatched".
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
}

// contextWithTimeout is a small helper so handlers bound their calls.
func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}
