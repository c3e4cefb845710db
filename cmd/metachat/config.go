package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/metachat/metachat/adapters/httpapi"
)

// Config is everything `metachat` reads from its environment and flags. Environment variables use
// the METACHAT_ prefix, plus the conventional DATABASE_URL and NATS_URL; flags override them.
type Config struct {
	// Env is "development" (readable text logs) or "production" (JSON logs). METACHAT_ENV.
	Env string
	// LogLevel is debug, info, warn or error. METACHAT_LOG_LEVEL.
	LogLevel string
	// DataDir holds the embedded NATS store, the managed Postgres and discovery files. METACHAT_DATA_DIR.
	DataDir string
	// HTTPAddr is the API's listen address. METACHAT_HTTP_ADDR.
	HTTPAddr string
	// MetricsAddr is the metrics listener's address: GET /metrics and /debug/pprof/, never on the
	// API's listener. Loopback by default. METACHAT_METRICS_ADDR.
	MetricsAddr string
	// SentryDSN, when set, sends unexpected errors (5xx answers, panics) to Sentry; empty sends
	// nothing anywhere. SENTRY_DSN (no flag: it is a credential).
	SentryDSN string
	// DatabaseURL is an external Postgres; empty starts a managed local one. DATABASE_URL.
	DatabaseURL string
	// NATSURL is an external NATS server (2.12+); empty starts an embedded one. NATS_URL.
	NATSURL string
	// NATSReplicas is the event stream's replica count. METACHAT_NATS_REPLICAS.
	NATSReplicas int
	// NATSSyncAlways makes the embedded server fsync every write before acknowledging it.
	// METACHAT_NATS_SYNC_ALWAYS.
	NATSSyncAlways bool
	// NATSSyncInterval is how often the embedded server fsyncs when not syncing always: it bounds
	// what a power failure can lose on a single node. METACHAT_NATS_SYNC_INTERVAL.
	NATSSyncInterval time.Duration
	// SigningKeyFile holds the Ed25519 key that signs access tokens (PEM); generated on first start
	// in development. METACHAT_JWT_SIGNING_KEY_FILE.
	SigningKeyFile string
	// APIKeyPepperFile holds the server secret API keys are hashed with; generated on first start
	// in development. METACHAT_API_KEY_PEPPER_FILE.
	APIKeyPepperFile string
	// ShutdownTimeout bounds graceful shutdown. METACHAT_SHUTDOWN_TIMEOUT.
	ShutdownTimeout time.Duration
	// ReadYourWritesTimeout bounds how long a read waits for its projection. METACHAT_RYW_TIMEOUT.
	ReadYourWritesTimeout time.Duration
	// Demo sets up a demo tenant with a widget and serves it at /demo, in development only (never
	// in production). Default true. METACHAT_DEMO.
	Demo bool
	// TLSCertFile and TLSKeyFile, given together, make serve answer HTTPS itself with that
	// certificate chain and private key (PEM files, re-read when they change).
	// METACHAT_TLS_CERT_FILE, METACHAT_TLS_KEY_FILE.
	TLSCertFile string
	TLSKeyFile  string
	// TrustedProxies are the networks of the reverse proxies in front of serve: only their
	// X-Forwarded-For and X-Forwarded-Proto are believed. METACHAT_TRUSTED_PROXIES, a
	// comma-separated list of CIDR networks or addresses.
	TrustedProxies []netip.Prefix
	// RateLimits are the request budgets: METACHAT_RATE_LIMITS=off switches them all off;
	// METACHAT_RATE_LIMIT_API, _LOGIN, _SIGNUP, _WIDGET_SESSION and _SEND set one each
	// ("600/1m", or "off").
	RateLimits httpapi.RateLimits
	// Embeddings is an OpenAI-compatible embeddings API for the knowledge base: base URL, model,
	// key (no flag: it is a credential) and the model's dimensions. Without a base URL the local
	// lexical embedder is used. METACHAT_EMBEDDINGS_BASE_URL, _MODEL, _API_KEY, _DIMENSIONS.
	// Changing the embedder needs `metachat projections rebuild knowledge`.
	EmbeddingsBaseURL    string
	EmbeddingsModel      string
	EmbeddingsAPIKey     string
	EmbeddingsDimensions int
	// LLM is an OpenAI-compatible chat-completions API the assistant answers with: base URL, model
	// and key (no flag). Without a base URL the assistant answers with the local extractive
	// answerer. METACHAT_LLM_BASE_URL, _MODEL, _API_KEY.
	LLMBaseURL string
	LLMModel   string
	LLMAPIKey  string
	// LLMTimeout bounds one assistant answer, retrieval and model call (with its retries)
	// together; beyond it the customer gets the fallback reply. METACHAT_LLM_TIMEOUT.
	LLMTimeout time.Duration
}

// envVars names the environment variable of each setting, in the order help lists them.
var envVars = []struct{ name, flag, help string }{
	{"METACHAT_ENV", "env", "development (text logs) or production (JSON logs)"},
	{"METACHAT_LOG_LEVEL", "log-level", "debug, info, warn or error"},
	{"METACHAT_DATA_DIR", "data-dir", "directory for the embedded NATS store and managed Postgres"},
	{"METACHAT_HTTP_ADDR", "http-addr", "HTTP listen address"},
	{"METACHAT_METRICS_ADDR", "metrics-addr", "metrics and pprof listen address (keep it private)"},
	{"SENTRY_DSN", "", "Sentry DSN; unexpected errors are sent there when set"},
	{"DATABASE_URL", "database-url", "external Postgres URL; empty starts a managed local Postgres"},
	{"NATS_URL", "nats-url", "external NATS URL (2.12+); empty starts an embedded NATS"},
	{"METACHAT_NATS_REPLICAS", "nats-replicas", "replicas of the event stream"},
	{"METACHAT_NATS_SYNC_ALWAYS", "nats-sync-always", "embedded NATS fsyncs every write before acknowledging"},
	{"METACHAT_NATS_SYNC_INTERVAL", "nats-sync-interval", "embedded NATS background fsync interval (bounds power-loss exposure)"},
	{"METACHAT_JWT_SIGNING_KEY_FILE", "jwt-signing-key-file", "Ed25519 PEM key signing access tokens (default <data-dir>/secrets/jwt-signing-key.pem)"},
	{"METACHAT_API_KEY_PEPPER_FILE", "api-key-pepper-file", "server secret API keys are hashed with (default <data-dir>/secrets/api-key-pepper)"},
	{"METACHAT_SHUTDOWN_TIMEOUT", "shutdown-timeout", "graceful shutdown bound"},
	{"METACHAT_RYW_TIMEOUT", "ryw-timeout", "read-your-writes wait bound"},
	{"METACHAT_DEMO", "", "set up a demo tenant and serve its widget at /demo (development only; default true)"},
	{"METACHAT_TLS_CERT_FILE", "", "certificate chain (PEM): serve HTTPS itself, with METACHAT_TLS_KEY_FILE"},
	{"METACHAT_TLS_KEY_FILE", "", "private key (PEM) of METACHAT_TLS_CERT_FILE"},
	{"METACHAT_TRUSTED_PROXIES", "", "CIDR networks of the reverse proxies whose X-Forwarded-For/-Proto are believed (comma-separated)"},
	{"METACHAT_RATE_LIMITS", "", "off switches every request budget off (default on)"},
	{"METACHAT_RATE_LIMIT_API", "", "general budget per API key, user or client address (default 1200/1m; off)"},
	{"METACHAT_RATE_LIMIT_LOGIN", "", "sign-in budget per client address (default 20/1m; off)"},
	{"METACHAT_RATE_LIMIT_SIGNUP", "", "sign-up budget per client address (default 20/1h; off)"},
	{"METACHAT_RATE_LIMIT_WIDGET_SESSION", "", "widget session budget per client address (default 120/1m; off)"},
	{"METACHAT_RATE_LIMIT_SEND", "", "message send budget per API key or user (default 600/1m; off)"},
	{"METACHAT_EMBEDDINGS_BASE_URL", "", "OpenAI-compatible embeddings API, such as https://api.openai.com/v1 (default: the local lexical embedder)"},
	{"METACHAT_EMBEDDINGS_MODEL", "", "embedding model, such as text-embedding-3-small"},
	{"METACHAT_EMBEDDINGS_API_KEY", "", "API key of the embeddings API"},
	{"METACHAT_EMBEDDINGS_DIMENSIONS", "", "length of the embedding model's vectors (1-2000)"},
	{"METACHAT_LLM_BASE_URL", "", "OpenAI-compatible chat-completions API the assistant answers with (default: the local extractive answerer)"},
	{"METACHAT_LLM_MODEL", "", "chat model, such as gpt-4o-mini"},
	{"METACHAT_LLM_API_KEY", "", "API key of the chat-completions API"},
	{"METACHAT_LLM_TIMEOUT", "", "bound of one assistant answer; beyond it the fallback reply is sent (default 30s)"},
}

// defaultConfig returns the configuration with every default filled in.
func defaultConfig() Config {
	return Config{
		Env:                   "development",
		LogLevel:              "info",
		DataDir:               ".data",
		HTTPAddr:              "127.0.0.1:8080",
		MetricsAddr:           "127.0.0.1:9464",
		NATSReplicas:          1,
		NATSSyncInterval:      time.Second,
		ShutdownTimeout:       15 * time.Second,
		ReadYourWritesTimeout: 2 * time.Second,
		Demo:                  true,
		LLMTimeout:            30 * time.Second,
	}
}

// loadEnv overlays environment variables on c; getenv is os.Getenv in production. Parse errors are
// reported together.
func (c *Config) loadEnv(getenv func(string) string) error {
	var errs []error
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	str("METACHAT_ENV", &c.Env)
	str("METACHAT_LOG_LEVEL", &c.LogLevel)
	str("METACHAT_DATA_DIR", &c.DataDir)
	str("METACHAT_HTTP_ADDR", &c.HTTPAddr)
	str("METACHAT_METRICS_ADDR", &c.MetricsAddr)
	str("SENTRY_DSN", &c.SentryDSN)
	str("DATABASE_URL", &c.DatabaseURL)
	str("METACHAT_JWT_SIGNING_KEY_FILE", &c.SigningKeyFile)
	str("METACHAT_API_KEY_PEPPER_FILE", &c.APIKeyPepperFile)
	str("NATS_URL", &c.NATSURL)
	str("METACHAT_TLS_CERT_FILE", &c.TLSCertFile)
	str("METACHAT_TLS_KEY_FILE", &c.TLSKeyFile)
	str("METACHAT_EMBEDDINGS_BASE_URL", &c.EmbeddingsBaseURL)
	str("METACHAT_EMBEDDINGS_MODEL", &c.EmbeddingsModel)
	str("METACHAT_EMBEDDINGS_API_KEY", &c.EmbeddingsAPIKey)
	str("METACHAT_LLM_BASE_URL", &c.LLMBaseURL)
	str("METACHAT_LLM_MODEL", &c.LLMModel)
	str("METACHAT_LLM_API_KEY", &c.LLMAPIKey)
	if v := getenv("METACHAT_EMBEDDINGS_DIMENSIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("METACHAT_EMBEDDINGS_DIMENSIONS=%q: not a whole number", v))
		}
		c.EmbeddingsDimensions = n
	}
	if v := getenv("METACHAT_TRUSTED_PROXIES"); v != "" {
		p, err := httpapi.ParseTrustedProxies(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("METACHAT_TRUSTED_PROXIES: %w", err))
		}
		c.TrustedProxies = p
	}
	if v := getenv("METACHAT_RATE_LIMITS"); v != "" {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "off":
			c.RateLimits.Disabled = true
		case "on":
		default:
			errs = append(errs, fmt.Errorf("METACHAT_RATE_LIMITS=%q: on or off", v))
		}
	}
	for _, b := range []struct {
		name string
		dst  *httpapi.Rate
	}{{"METACHAT_RATE_LIMIT_API", &c.RateLimits.API}, {"METACHAT_RATE_LIMIT_LOGIN", &c.RateLimits.Login},
		{"METACHAT_RATE_LIMIT_SIGNUP", &c.RateLimits.Signup}, {"METACHAT_RATE_LIMIT_WIDGET_SESSION", &c.RateLimits.WidgetSession},
		{"METACHAT_RATE_LIMIT_SEND", &c.RateLimits.Send}} {
		if v := getenv(b.name); v != "" {
			r, err := httpapi.ParseRate(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", b.name, err))
			}
			*b.dst = r
		}
	}
	if v := getenv("METACHAT_NATS_REPLICAS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("METACHAT_NATS_REPLICAS=%q: not a whole number", v))
		}
		c.NATSReplicas = n
	}
	if v := getenv("METACHAT_DEMO"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("METACHAT_DEMO=%q: not true or false", v))
		}
		c.Demo = b
	}
	if v := getenv("METACHAT_NATS_SYNC_ALWAYS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("METACHAT_NATS_SYNC_ALWAYS=%q: not true or false", v))
		}
		c.NATSSyncAlways = b
	}
	dur := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a duration such as 10s", name, v))
			}
			*dst = d
		}
	}
	dur("METACHAT_NATS_SYNC_INTERVAL", &c.NATSSyncInterval)
	dur("METACHAT_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	dur("METACHAT_RYW_TIMEOUT", &c.ReadYourWritesTimeout)
	dur("METACHAT_LLM_TIMEOUT", &c.LLMTimeout)
	return errors.Join(errs...)
}

// Validate reports every problem with the configuration at once, each naming its variable.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.Env {
	case "development", "production":
	default:
		bad("METACHAT_ENV=%q: must be development or production", c.Env)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("METACHAT_LOG_LEVEL=%q: must be debug, info, warn or error", c.LogLevel)
	}
	if c.DataDir == "" {
		bad("METACHAT_DATA_DIR: must not be empty")
	}
	for _, a := range []struct{ name, addr string }{{"METACHAT_HTTP_ADDR", c.HTTPAddr}, {"METACHAT_METRICS_ADDR", c.MetricsAddr}} {
		if _, port, err := net.SplitHostPort(a.addr); err != nil {
			bad("%s=%q: must be host:port (%v)", a.name, a.addr, err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad("%s=%q: bad port", a.name, a.addr)
		}
	}
	if c.SentryDSN != "" {
		if u, err := url.Parse(c.SentryDSN); err != nil || u.Host == "" || u.User == nil {
			bad("SENTRY_DSN: must be a DSN such as https://key@o0.ingest.sentry.io/0")
		}
	}
	if c.DatabaseURL != "" {
		if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("DATABASE_URL: must be a postgres:// URL")
		}
	}
	if c.NATSURL != "" {
		for _, part := range strings.Split(c.NATSURL, ",") {
			if u, err := url.Parse(strings.TrimSpace(part)); err != nil || u.Host == "" {
				bad("NATS_URL: %q is not a URL such as nats://host:4222", part)
			}
		}
	}
	if c.NATSReplicas < 1 || c.NATSReplicas > 5 {
		bad("METACHAT_NATS_REPLICAS=%d: must be between 1 and 5", c.NATSReplicas)
	}
	if !c.NATSSyncAlways && (c.NATSSyncInterval < 10*time.Millisecond || c.NATSSyncInterval > 10*time.Minute) {
		bad("METACHAT_NATS_SYNC_INTERVAL=%s: must be between 10ms and 10m", c.NATSSyncInterval)
	}
	if c.ShutdownTimeout <= 0 {
		bad("METACHAT_SHUTDOWN_TIMEOUT=%s: must be positive", c.ShutdownTimeout)
	}
	if c.ReadYourWritesTimeout <= 0 || c.ReadYourWritesTimeout > time.Minute {
		bad("METACHAT_RYW_TIMEOUT=%s: must be between 0 and 1m", c.ReadYourWritesTimeout)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("METACHAT_TLS_CERT_FILE and METACHAT_TLS_KEY_FILE: give both or neither")
	}
	errs = append(errs, c.validateModels()...)
	return errors.Join(errs...)
}

// validateModels checks the model services' settings: each is all or nothing around its base URL.
func (c Config) validateModels() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	httpURL := func(name, v string) {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("%s=%q: must be an http(s) URL such as https://api.openai.com/v1", name, v)
		}
	}
	if c.EmbeddingsBaseURL != "" {
		httpURL("METACHAT_EMBEDDINGS_BASE_URL", c.EmbeddingsBaseURL)
		if strings.TrimSpace(c.EmbeddingsModel) == "" {
			bad("METACHAT_EMBEDDINGS_MODEL: must be set with METACHAT_EMBEDDINGS_BASE_URL")
		}
		if c.EmbeddingsDimensions < 1 || c.EmbeddingsDimensions > 2000 {
			bad("METACHAT_EMBEDDINGS_DIMENSIONS=%d: must be between 1 and 2000 with METACHAT_EMBEDDINGS_BASE_URL", c.EmbeddingsDimensions)
		}
	} else if c.EmbeddingsModel != "" || c.EmbeddingsAPIKey != "" || c.EmbeddingsDimensions != 0 {
		bad("METACHAT_EMBEDDINGS_MODEL, _API_KEY and _DIMENSIONS need METACHAT_EMBEDDINGS_BASE_URL")
	}
	if c.LLMBaseURL != "" {
		httpURL("METACHAT_LLM_BASE_URL", c.LLMBaseURL)
		if m := strings.TrimSpace(c.LLMModel); m == "" || len(m) > 150 {
			bad("METACHAT_LLM_MODEL: must be set (at most 150 characters) with METACHAT_LLM_BASE_URL")
		}
	} else if c.LLMModel != "" || c.LLMAPIKey != "" {
		bad("METACHAT_LLM_MODEL and _API_KEY need METACHAT_LLM_BASE_URL")
	}
	if c.LLMTimeout < time.Second || c.LLMTimeout > 90*time.Second {
		bad("METACHAT_LLM_TIMEOUT=%s: must be between 1s and 90s", c.LLMTimeout)
	}
	return errs
}

// resolvePaths fills the paths that default to places inside the data directory, once the data
// directory itself is known (after flags).
func (c *Config) resolvePaths() {
	if c.SigningKeyFile == "" {
		c.SigningKeyFile = c.path("secrets", "jwt-signing-key.pem")
	}
	if c.APIKeyPepperFile == "" {
		c.APIKeyPepperFile = c.path("secrets", "api-key-pepper")
	}
}

// path returns a path inside the data directory.
func (c Config) path(elem ...string) string {
	return filepath.Join(append([]string{c.DataDir}, elem...)...)
}
