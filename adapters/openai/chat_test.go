package openai

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// fakeChat is a loopback server speaking the OpenAI chat-completions wire format: it answers with
// answer (the last user message is echoed after "Q: " when answer is empty) and a usage block;
// fail decides, per request number (from 1), to answer otherwise.
func fakeChat(t *testing.T, answer string, fail func(n int64, w http.ResponseWriter) bool) (*httptest.Server, *atomic.Int64, *atomic.Value) {
	var calls atomic.Int64
	var last atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer sk-test" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`))
			return
		}
		if fail != nil && fail(n, w) {
			return
		}
		var req struct {
			Model    string            `json:"model"`
			Messages []app.ChatMessage `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "gpt-test" || len(req.Messages) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":{"message":"bad request","type":"invalid_request_error","code":null}}`))
			return
		}
		last.Store(req.Messages)
		content := answer
		if content == "" {
			content = "Q: " + req.Messages[len(req.Messages)-1].Content
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": content}}},
			"usage": map[string]any{"prompt_tokens": 120, "completion_tokens": 15, "total_tokens": 135},
		})
	}))
	t.Cleanup(srv.Close)
	return srv, &calls, &last
}

func newChat(t *testing.T, base string, mod func(*ChatConfig)) *Chat {
	cfg := ChatConfig{BaseURL: base + "/v1", Model: "gpt-test", APIKey: "sk-test", MinBackoff: time.Millisecond,
		MaxBackoff: 3 * time.Second, Timeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewChat(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChatCompletes(t *testing.T) {
	srv, calls, last := fakeChat(t, "", nil)
	c := newChat(t, srv.URL, nil)
	msgs := []app.ChatMessage{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Where is my order?"}}
	got, err := c.Complete(t.Context(), app.ChatRequest{Messages: msgs, MaxTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := app.ChatCompletion{Content: "Q: Where is my order?", FinishReason: "stop",
		Usage: app.TokenUsage{PromptTokens: 120, CompletionTokens: 15, TotalTokens: 135}}
	if got != want {
		t.Errorf("completion %+v, want %+v", got, want)
	}
	if sent := last.Load().([]app.ChatMessage); len(sent) != 2 || sent[0] != msgs[0] || sent[1] != msgs[1] {
		t.Errorf("server got messages %+v", sent)
	}
	if calls.Load() != 1 || c.Model() != "openai:gpt-test" {
		t.Errorf("%d calls, model %q", calls.Load(), c.Model())
	}
}

// TestChatAnswererOverTheWire: the chat answerer's prompt reaches the server (numbered passages,
// the instruction to cite and to say when the context lacks the answer), and its citations and
// usage come back.
func TestChatAnswererOverTheWire(t *testing.T) {
	srv, _, last := fakeChat(t, "Patch the tube [2]. Keep it inflated [2][1].", nil)
	a := app.NewChatAnswerer(newChat(t, srv.URL, nil), 0)
	ans, err := a.Answer(t.Context(), app.AnswerInput{Question: "How do I fix a flat?", Passages: []app.Passage{
		{N: 1, Title: "Tyres", Text: "Keep tyres at 3 bar."}, {N: 2, Title: "Repairs", Heading: "Punctures", Text: "Patch the tube."}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Cited) != 2 || ans.Cited[0] != 2 || ans.Cited[1] != 1 || ans.Usage.TotalTokens != 135 || len(ans.PromptSHA256) != 64 {
		t.Errorf("answer %+v", ans)
	}
	sys := last.Load().([]app.ChatMessage)[0].Content
	for _, s := range []string{"[1] Tyres", "[2] Repairs — Punctures", "Patch the tube.", "Cite", "do not know"} {
		if !strings.Contains(sys, s) {
			t.Errorf("system prompt lacks %q:\n%s", s, sys)
		}
	}
}

func TestChatRetries429HonouringRetryAfterAnd5xx(t *testing.T) {
	srv, calls, _ := fakeChat(t, "ok", func(n int64, w http.ResponseWriter) bool {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`))
			return true
		case 2:
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	})
	c := newChat(t, srv.URL, nil)
	start := time.Now()
	got, err := c.Complete(t.Context(), app.ChatRequest{Messages: []app.ChatMessage{{Role: "user", Content: "hi"}}})
	if err != nil || got.Content != "ok" {
		t.Fatalf("%+v %v", got, err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("answered after %v: Retry-After: 1 not honoured", d)
	}
	if calls.Load() != 3 {
		t.Errorf("%d requests, want 3", calls.Load())
	}

	// A Retry-After beyond the caller's deadline fails at once instead of at the deadline.
	limited, limitedCalls, _ := fakeChat(t, "ok", func(_ int64, w http.ResponseWriter) bool {
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`))
		return true
	})
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err = newChat(t, limited.URL, nil).Complete(ctx, app.ChatRequest{Messages: []app.ChatMessage{{Role: "user", Content: "hi"}}})
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || limitedCalls.Load() != 1 {
		t.Errorf("429 past the deadline: %v after %d calls, want EUNAVAILABLE after 1", err, limitedCalls.Load())
	}
	if ctx.Err() != nil {
		t.Error("the client waited for the deadline instead of giving up")
	}
}

func TestChatErrorsAreClassified(t *testing.T) {
	down, calls, _ := fakeChat(t, "ok", func(_ int64, w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"message":"The server had an error","type":"server_error","code":null}}`))
		return true
	})
	_, err := newChat(t, down.URL, nil).Complete(t.Context(), app.ChatRequest{Messages: []app.ChatMessage{{Role: "user", Content: "hi"}}})
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || calls.Load() != 3 || !strings.Contains(err.Error(), "server_error: The server had an error") {
		t.Errorf("persistent 500: %v after %d calls, want EUNAVAILABLE after 3 naming the error", err, calls.Load())
	}
	tooLong, tooLongCalls, _ := fakeChat(t, "ok", func(_ int64, w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}`))
		return true
	})
	_, err = newChat(t, tooLong.URL, nil).Complete(t.Context(), app.ChatRequest{Messages: []app.ChatMessage{{Role: "user", Content: "hi"}}})
	if domain.ErrorCode(err) != domain.EINVALID || tooLongCalls.Load() != 1 {
		t.Errorf("400: %v after %d calls, want EINVALID, not retried", err, tooLongCalls.Load())
	}
	ok, _, _ := fakeChat(t, "ok", nil)
	_, err = newChat(t, ok.URL, func(c *ChatConfig) { c.APIKey = "wrong" }).Complete(t.Context(), app.ChatRequest{Messages: []app.ChatMessage{{Role: "user", Content: "hi"}}})
	if domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("401: %v, want EUNAVAILABLE (a configuration to fix)", err)
	}
	empty, emptyCalls, _ := fakeChat(t, "ok", func(_ int64, w http.ResponseWriter) bool {
		_, _ = w.Write([]byte(`{"choices":[]}`))
		return true
	})
	_, err = newChat(t, empty.URL, func(c *ChatConfig) { c.MaxRetries = 1 }).Complete(t.Context(), app.ChatRequest{Messages: []app.ChatMessage{{Role: "user", Content: "hi"}}})
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || emptyCalls.Load() != 2 {
		t.Errorf("no choices: %v after %d calls, want EUNAVAILABLE after 2", err, emptyCalls.Load())
	}
}

func TestChatTimeout(t *testing.T) {
	srv, calls, _ := fakeChat(t, "late", func(_ int64, w http.ResponseWriter) bool {
		time.Sleep(300 * time.Millisecond)
		return false
	})
	c := newChat(t, srv.URL, func(c *ChatConfig) { c.Timeout = 50 * time.Millisecond; c.MaxRetries = 1 })
	_, err := c.Complete(t.Context(), app.ChatRequest{Messages: []app.ChatMessage{{Role: "user", Content: "hi"}}})
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || calls.Load() != 2 {
		t.Errorf("slow server: %v after %d calls, want EUNAVAILABLE after 2", err, calls.Load())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Complete(ctx, app.ChatRequest{Messages: []app.ChatMessage{{Role: "user", Content: "hi"}}}); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("cancelled: %v", err)
	}
}

func TestChatConfigValidate(t *testing.T) {
	if err := (ChatConfig{BaseURL: "ftp://x", Model: ""}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "base URL") || !strings.Contains(err.Error(), "model") {
		t.Errorf("bad config: %v", err)
	}
	if err := (ChatConfig{BaseURL: "http://127.0.0.1:1/v1", Model: "m"}).Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
}

func TestParseChatCompletion(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"normal", `{"choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`, true},
		{"no usage", `{"choices":[{"message":{"content":""}}]}`, true},
		{"null content", `{"choices":[{"message":{"content":null}}]}`, false},
		{"no choices", `{"choices":[]}`, false},
		{"negative tokens", `{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":-1}}`, false},
		{"not JSON", `<html>`, false},
	} {
		if _, err := ParseChatCompletion([]byte(tc.body)); (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// FuzzParseChatCompletion: any body parses or fails cleanly, and what parses has sane counts.
func FuzzParseChatCompletion(f *testing.F) {
	f.Add([]byte(`{"choices":[{"message":{"role":"assistant","content":"hi [1]"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`))
	f.Add([]byte(`{"choices":[{"message":{"content":null}}]}`))
	f.Add([]byte(`{"error":{"message":"x","type":"y","code":null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseChatCompletion(b)
		if err != nil {
			return
		}
		u := c.Usage
		if u.PromptTokens < 0 || u.CompletionTokens < 0 || u.TotalTokens < 0 {
			t.Fatalf("negative usage %+v", u)
		}
	})
}

// FuzzErrorMessage: an error body of any shape gives a message without failing.
func FuzzErrorMessage(f *testing.F) {
	f.Add([]byte(`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`))
	f.Add([]byte(`{"error":"flat"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if msg := errorMessage(b); len(b) > 0 && msg == "" {
			t.Fatalf("no message for %q", b)
		}
	})
}
