package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/metachat/metachat/app"
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
	// MaxBodyBytes bounds request bodies (default 1 MiB); larger ones answer 413.
	MaxBodyBytes int64
	// Auth authenticates bearer credentials.
	Auth Authenticator
	// Identity and Conversations are the application services behind the routes.
	Identity      *app.Identity
	Conversations *app.Conversations
	// Widgets serves widget configuration and the public widget routes (config, sessions).
	Widgets *app.Widgets
	// Knowledge serves the knowledge base: documents and search.
	Knowledge *app.Knowledge
	// Metrics, when set (NewMetrics), record every request's duration by route pattern, method
	// and status, and the requests in flight. Nil records no metrics.
	Metrics *Metrics
	// ReportError, when set, is called with every unexpected error: each one answered with a 5xx
	// by writeError, and each panic the recoverer catches (an error tracker such as Sentry). The
	// context is the request's (its request id is domain.CorrelationID). Nil reports nothing.
	ReportError func(ctx context.Context, err error)
	// Mounts are handlers outside the OpenAPI contract (the widget script, the demo page, the
	// widget socket) served behind the same middleware as every route: request id, access log,
	// metrics, error reporting and panic recovery.
	Mounts []Mount
	// TrustedProxies are the networks of the reverse proxies in front of the server. Only a
	// connection from one of them has its X-Forwarded-For (the client address, for rate limits
	// and sign-in backoff) and X-Forwarded-Proto (https: HSTS) believed; from anyone else they
	// are ignored. Empty: the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// HSTSMaxAge is the max-age of Strict-Transport-Security, sent when the client reached us over
	// HTTPS. Default DefaultHSTSMaxAge; negative sends none.
	HSTSMaxAge time.Duration
	// RateLimits are the request budgets (see RateLimits); zero values take the defaults.
	RateLimits RateLimits
}

// Mount is a handler served at Pattern (a chi pattern such as "/widget.js" or "/demo/*") for
// every method; the handler answers the methods it does not serve itself. Set Handler, or Func:
// an error Func returns before it wrote anything is answered as problem+json, with the one mapping
// of error codes to statuses every route uses.
type Mount struct {
	Pattern string
	// Methods, when set, are the only methods served; others answer 405 problem+json.
	Methods []string
	Handler http.Handler
	Func    func(w http.ResponseWriter, r *http.Request) error
	// CrossOrigin marks a resource other sites load (the widget script): it is answered with
	// Cross-Origin-Resource-Policy: cross-origin instead of same-origin. It grants no CORS access.
	CrossOrigin bool
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
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.HSTSMaxAge == 0 {
		c.HSTSMaxAge = DefaultHSTSMaxAge
	}
	c.RateLimits.setDefaults()
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	for i, h := range c.Health {
		if h.Name == "" || h.Check == nil {
			errs = append(errs, fmt.Errorf("httpapi: health check %d needs a name and a function", i))
		}
	}
	for i, m := range c.Mounts {
		if m.Pattern == "" || m.Pattern[0] != '/' || (m.Handler == nil) == (m.Func == nil) {
			errs = append(errs, fmt.Errorf("httpapi: mount %d needs a pattern starting with / and a Handler or a Func", i))
		}
	}
	if c.HealthTimeout < 0 {
		errs = append(errs, errors.New("httpapi: HealthTimeout must not be negative"))
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			errs = append(errs, errors.New("httpapi: a trusted proxy network is invalid"))
		}
	}
	errs = append(errs, c.RateLimits.validate())
	return errors.Join(errs...)
}

// Server is the HTTP API.
type Server struct {
	cfg        Config
	logger     *slog.Logger
	router     chi.Router
	contract   *contract
	registered map[string]bool
	budgets    map[string]*budget // ratelimit.go; nil: no limits
}

// NewServer builds the router with its middleware and routes.
func NewServer(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := loadContract()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, contract: c, registered: map[string]bool{}, budgets: newBudgets(cfg.RateLimits, cfg.Now)}
	r := chi.NewRouter()
	// The client (clientip.go) and the security headers (security_headers.go) come first, so
	// every answer — 404, 405 and panics included — has them.
	r.Use(clientMiddleware(cfg.TrustedProxies), securityHeaders(cfg.HSTSMaxAge))
	r.Use(requestID(cfg.TrustRequestID), accessLog(cfg.Logger, cfg.Now, cfg.Metrics))
	if cfg.ReportError != nil {
		r.Use(withErrorReporter(cfg.ReportError))
	}
	r.Use(recoverer(cfg.Logger))
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)
	s.registerHealthRoutes(r)
	s.handle(r, http.MethodGet, "/api/v1/openapi.json", s.handleOpenAPI)
	if cfg.Identity != nil {
		s.registerIdentityRoutes(r)
	}
	if cfg.Conversations != nil {
		s.registerConversationRoutes(r)
	}
	if cfg.Widgets != nil {
		s.registerWidgetRoutes(r)
	}
	if cfg.Knowledge != nil {
		s.registerKnowledgeRoutes(r)
	}
	for _, m := range cfg.Mounts {
		h := m.Handler
		if m.Func != nil {
			h = s.mountFunc(m.Func)
		}
		if m.CrossOrigin {
			h = crossOriginResource(h)
		}
		if len(m.Methods) == 0 {
			r.Handle(m.Pattern, h)
		}
		for _, method := range m.Methods {
			r.Method(method, m.Pattern, h)
		}
	}
	s.router = r
	return s, nil
}

// mountFunc adapts a Mount's Func: its error is answered as problem+json.
func (s *Server) mountFunc(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// handleOpenAPI serves the contract.
func (s *Server) handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.contract.json)
}

// Unregistered lists the operations of the OpenAPI document that have no handler (a test keeps
// it empty once every service is configured).
func (s *Server) Unregistered() []string {
	var out []string
	for _, k := range s.contract.keys() {
		if !s.registered[k] {
			out = append(out, k)
		}
	}
	return out
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
