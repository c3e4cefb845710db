// Package openai is a client for OpenAI-compatible HTTP APIs (OpenAI itself, Azure-style
// gateways, vLLM, Ollama, LiteLLM, …): embeddings (Client, a projections.Embedder) and chat
// completions (Chat, an app.ChatModel). Every call has a timeout; 429 and 5xx answers and network
// failures are retried with exponential backoff, honouring Retry-After (but never waiting past the
// caller's deadline); what still fails is a domain EUNAVAILABLE error, so the knowledge projection
// retries it later instead of stopping and the assistant sends its fallback reply.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// Defaults of Config.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultMaxRetries = 4
	DefaultBatchSize  = 64
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 20 * time.Second
)

// Config configures a Client.
type Config struct {
	// BaseURL is the API's base, such as "https://api.openai.com/v1" (required).
	BaseURL string
	// Model is the embedding model, such as "text-embedding-3-small" (required).
	Model string
	// APIKey is sent as a bearer token when not empty.
	APIKey string
	// Dimensions is the length of the model's vectors (required: the read model's column needs
	// it before the first call).
	Dimensions int
	// Timeout bounds each HTTP attempt. Default DefaultTimeout.
	Timeout time.Duration
	// MaxRetries is how many times a retryable failure is retried. Default DefaultMaxRetries.
	MaxRetries int
	// BatchSize is the most texts sent in one request. Default DefaultBatchSize.
	BatchSize int
	// MinBackoff and MaxBackoff bound the delay between attempts (doubling, with jitter) when the
	// server sends no Retry-After; a Retry-After is honoured up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient is the transport; default a new http.Client.
	HTTPClient *http.Client
	// Logger receives retries; nil discards them.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("base URL %q must be an http(s) URL", c.BaseURL))
	}
	if c.Model == "" {
		errs = append(errs, errors.New("no model"))
	}
	if c.Dimensions <= 0 || c.Dimensions > 2000 {
		errs = append(errs, fmt.Errorf("dimensions %d must be 1-2000 (pgvector HNSW)", c.Dimensions))
	}
	if c.Timeout < 0 || c.MaxRetries < 0 || c.BatchSize < 0 || c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff {
		errs = append(errs, errors.New("timeouts, retries, batch size and backoffs must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid OpenAI-compatible client config: %w", err)
	}
	return nil
}

// Client calls an OpenAI-compatible embeddings API. It is safe for concurrent use.
type Client struct {
	cfg  Config
	call *caller
}

var _ projections.Embedder = (*Client)(nil)

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	return &Client{cfg: cfg, call: &caller{baseURL: cfg.BaseURL, apiKey: cfg.APIKey, timeout: cfg.Timeout,
		maxRetries: cfg.MaxRetries, minBackoff: cfg.MinBackoff, maxBackoff: cfg.MaxBackoff, http: cfg.HTTPClient,
		log: cfg.Logger}}, nil
}

// Name implements projections.Embedder: "openai:<model>@<dimensions>".
func (c *Client) Name() string { return "openai:" + c.cfg.Model + "@" + strconv.Itoa(c.cfg.Dimensions) }

// Dimensions implements projections.Embedder.
func (c *Client) Dimensions() int { return c.cfg.Dimensions }

type embeddingsRequest struct {
	Model      string   `json:"model"`
	Input      []string `json:"input"`
	Dimensions int      `json:"dimensions,omitempty"`
}

type embeddingsResponse struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
}

// Embed implements projections.Embedder: texts are sent in batches of BatchSize to
// POST {BaseURL}/embeddings.
func (c *Client) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += c.cfg.BatchSize {
		batch := texts[start:min(start+c.cfg.BatchSize, len(texts))]
		var resp embeddingsResponse
		if err := c.call.post(ctx, "/embeddings", embeddingsRequest{Model: c.cfg.Model, Input: batch}, jsonInto(&resp)); err != nil {
			return nil, err
		}
		vecs := make([][]float32, len(batch))
		for _, d := range resp.Data {
			if d.Index < 0 || d.Index >= len(batch) || len(d.Embedding) != c.cfg.Dimensions {
				return nil, unavailable(fmt.Errorf("embeddings: item %d of %d with %d dimensions, want %d",
					d.Index, len(batch), len(d.Embedding), c.cfg.Dimensions))
			}
			vecs[d.Index] = d.Embedding
		}
		for i, v := range vecs {
			if v == nil {
				return nil, unavailable(fmt.Errorf("embeddings: no vector for input %d", i))
			}
		}
		out = append(out, vecs...)
	}
	return out, nil
}

func unavailable(err error) error {
	return &domain.Error{Code: domain.EUNAVAILABLE, Message: "The model service is unavailable.", Err: err}
}

// statusError is a non-2xx answer.
type statusError struct {
	status     int
	retryAfter time.Duration
	body       string
}

func (e *statusError) Error() string { return fmt.Sprintf("status %d: %s", e.status, e.body) }

// caller sends requests to an OpenAI-compatible API: a timeout per attempt, and retries of 429,
// 5xx and network failures with exponential backoff and jitter, honouring Retry-After.
type caller struct {
	baseURL, apiKey        string
	timeout                time.Duration
	maxRetries             int
	minBackoff, maxBackoff time.Duration
	http                   *http.Client
	log                    *slog.Logger
}

// jsonInto decodes an answer's JSON body into out.
func jsonInto(out any) func([]byte) error {
	return func(b []byte) error { return json.Unmarshal(b, out) }
}

// post sends one JSON request with retries and decodes a successful answer's body with decode; an
// answer decode refuses counts as a failed attempt (502).
func (c *caller) post(ctx context.Context, path string, in any, decode func([]byte) error) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	var last error
	for attempt := 0; ; attempt++ {
		err := c.attempt(ctx, path, body, decode)
		if err == nil {
			return nil
		}
		last = err
		var se *statusError
		retryable := true
		var wait time.Duration
		if errors.As(err, &se) {
			retryable = se.status == http.StatusTooManyRequests || se.status >= 500
			wait = se.retryAfter
		}
		if ctx.Err() != nil {
			return unavailable(ctx.Err())
		}
		if !retryable {
			if se.status == http.StatusUnauthorized || se.status == http.StatusForbidden || se.status == http.StatusNotFound {
				// A key or model to fix in the configuration: retried later, not the input's fault.
				return unavailable(err)
			}
			return &domain.Error{Code: domain.EINVALID, Message: "The model service refused the request.", Err: err}
		}
		if attempt >= c.maxRetries {
			return unavailable(fmt.Errorf("after %d attempts: %w", attempt+1, last))
		}
		if wait <= 0 {
			wait = c.minBackoff << min(attempt, 16)
			wait = wait/2 + rand.N(wait/2+1)
		}
		wait = min(wait, c.maxBackoff)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			// Waiting would outlast the caller: fail now rather than at the deadline.
			return unavailable(fmt.Errorf("retry in %s is past the deadline: %w", wait, last))
		}
		c.log.WarnContext(ctx, "model service call failed; retrying", "path", path, "attempt", attempt+1, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return unavailable(ctx.Err())
		case <-t.C:
		}
	}
}

func (c *caller) attempt(ctx context.Context, path string, body []byte, decode func([]byte) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		msg := errorMessage(b)
		if len(msg) > 300 {
			msg = strings.ToValidUTF8(msg[:300], "")
		}
		return &statusError{status: resp.StatusCode, retryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()), body: msg}
	}
	if err := decode(b); err != nil {
		return &statusError{status: http.StatusBadGateway, body: "malformed answer: " + err.Error()}
	}
	return nil
}

// retryAfter parses a Retry-After header: seconds, or an HTTP date.
// maxRetryAfterSeconds bounds a Retry-After in seconds (a day; callers cap the wait further).
const maxRetryAfterSeconds = 86400

func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		// Bounded before the multiplication, which would overflow for absurd values.
		return time.Duration(min(s, maxRetryAfterSeconds)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// errorMessage is the message of an OpenAI error body ({"error": {"message", "type", "code"}}),
// or the body itself when it is not one.
func errorMessage(b []byte) string {
	var e struct {
		Error *struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil || e.Error == nil || e.Error.Message == "" {
		return string(b)
	}
	msg := e.Error.Message
	if e.Error.Type != "" {
		msg = e.Error.Type + ": " + msg
	}
	if e.Error.Code != nil {
		msg += fmt.Sprintf(" (code %v)", e.Error.Code)
	}
	return msg
}
