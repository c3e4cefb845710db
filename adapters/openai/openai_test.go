package openai

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

// fakeOpenAI is a loopback server speaking the OpenAI embeddings wire format; fail decides, per
// request number (from 1), an error status to answer instead (0: answer normally).
func fakeOpenAI(t *testing.T, dims int, fail func(n int64, w http.ResponseWriter) bool) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.URL.Path != "/v1/embeddings" || r.Header.Get("Authorization") != "Bearer sk-test" {
			http.Error(w, `{"error":{"message":"bad path or key"}}`, http.StatusUnauthorized)
			return
		}
		if fail != nil && fail(n, w) {
			return
		}
		var req embeddingsRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "text-embedding-3-small" {
			http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		type item struct {
			Object    string    `json:"object"`
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		}
		resp := struct {
			Object string `json:"object"`
			Data   []item `json:"data"`
			Model  string `json:"model"`
			Usage  struct {
				PromptTokens int `json:"prompt_tokens"`
				TotalTokens  int `json:"total_tokens"`
			} `json:"usage"`
		}{Object: "list", Model: req.Model}
		// Answer in reverse order: the client must place items by index.
		for i := len(req.Input) - 1; i >= 0; i-- {
			v := make([]float32, dims)
			v[0] = float32(len(req.Input[i]))
			resp.Data = append(resp.Data, item{Object: "embedding", Index: i, Embedding: v})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func newClient(t *testing.T, base string, mod func(*Config)) *Client {
	cfg := Config{BaseURL: base + "/v1", Model: "text-embedding-3-small", APIKey: "sk-test", Dimensions: 8,
		BatchSize: 2, MinBackoff: time.Millisecond, MaxBackoff: 3 * time.Second, Timeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEmbedBatchesInOrder(t *testing.T) {
	srv, calls := fakeOpenAI(t, 8, nil)
	c := newClient(t, srv.URL, nil)
	vecs, err := c.Embed(t.Context(), []string{"a", "bb", "ccc", "dddd", "eeeee"})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vecs {
		if int(v[0]) != i+1 {
			t.Errorf("vector %d belongs to input of length %v", i, v[0])
		}
	}
	if calls.Load() != 3 {
		t.Errorf("%d requests for 5 texts in batches of 2, want 3", calls.Load())
	}
	if c.Name() != "openai:text-embedding-3-small@8" {
		t.Errorf("name %q", c.Name())
	}
}

func TestRetriesOn429HonouringRetryAfterAnd5xx(t *testing.T) {
	srv, calls := fakeOpenAI(t, 8, func(n int64, w http.ResponseWriter) bool {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"message":"rate limited"}}`, http.StatusTooManyRequests)
			return true
		case 2:
			http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	c := newClient(t, srv.URL, nil)
	start := time.Now()
	if _, err := c.Embed(t.Context(), []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("answered after %v: Retry-After: 1 not honoured", d)
	}
	if calls.Load() != 3 {
		t.Errorf("%d requests, want 3", calls.Load())
	}
}

func TestErrorsAreClassified(t *testing.T) {
	srv, calls := fakeOpenAI(t, 8, func(_ int64, w http.ResponseWriter) bool {
		http.Error(w, `{"error":{"message":"down"}}`, http.StatusInternalServerError)
		return true
	})
	c := newClient(t, srv.URL, func(c *Config) { c.MaxRetries = 2 })
	_, err := c.Embed(t.Context(), []string{"x"})
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || calls.Load() != 3 {
		t.Errorf("persistent 500: %v after %d calls, want EUNAVAILABLE after 3", err, calls.Load())
	}

	bad, _ := fakeOpenAI(t, 8, func(_ int64, w http.ResponseWriter) bool {
		http.Error(w, `{"error":{"message":"input too long"}}`, http.StatusBadRequest)
		return true
	})
	if _, err := newClient(t, bad.URL, nil).Embed(t.Context(), []string{"x"}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("400: %v, want EINVALID (not retried)", err)
	}
	if _, err := newClient(t, srv.URL, func(c *Config) { c.APIKey = "wrong" }).Embed(t.Context(), []string{"x"}); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("401: %v, want EUNAVAILABLE (a configuration to fix)", err)
	}
	wrongDims, _ := fakeOpenAI(t, 3, nil)
	if _, err := newClient(t, wrongDims.URL, nil).Embed(t.Context(), []string{"x"}); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("wrong dimensions: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	srv, calls := fakeOpenAI(t, 8, func(_ int64, w http.ResponseWriter) bool {
		time.Sleep(300 * time.Millisecond)
		return false
	})
	c := newClient(t, srv.URL, func(c *Config) { c.Timeout = 50 * time.Millisecond; c.MaxRetries = 1 })
	start := time.Now()
	_, err := c.Embed(t.Context(), []string{"x"})
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || calls.Load() != 2 {
		t.Errorf("slow server: %v after %d calls", err, calls.Load())
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("gave up after %v; each attempt should stop at its 50ms timeout", d)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Embed(ctx, []string{"x"}); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("cancelled: %v", err)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{"": 0, "3": 3 * time.Second, "Wed, 25 Nov 2026 12:00:10 GMT": 10 * time.Second, "soon": 0, "-1": 0} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

func FuzzRetryAfter(f *testing.F) {
	f.Add("120")
	f.Add("Wed, 21 Oct 2015 07:28:00 GMT")
	f.Fuzz(func(t *testing.T, v string) {
		if d := retryAfter(v, time.Now()); d < 0 {
			t.Fatalf("negative wait %v", d)
		}
	})
}
