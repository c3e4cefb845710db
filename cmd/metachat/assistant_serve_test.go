package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
)

// fakeModels is a loopback server speaking the OpenAI wire format for embeddings (8 dimensions)
// and chat completions (an answer citing passage [1], with usage). It remembers the chat prompts.
type fakeModels struct {
	*httptest.Server
	embeddings, chats atomic.Int64
	mu                sync.Mutex
	prompts           []string
}

func newFakeModels(t *testing.T) *fakeModels {
	f := &fakeModels{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer sk-fake" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`))
			return
		}
		switch r.URL.Path {
		case "/v1/embeddings":
			f.embeddings.Add(1)
			var req struct {
				Model string   `json:"model"`
				Input []string `json:"input"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "embed-fake" {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":{"message":"bad request","type":"invalid_request_error","code":null}}`))
				return
			}
			data := make([]map[string]any, len(req.Input))
			for i, text := range req.Input {
				v := make([]float32, 8)
				for j, c := range strings.ToLower(text) {
					v[(int(c)+j)%8]++
				}
				v[0]++ // never the zero vector
				data[i] = map[string]any{"object": "embedding", "index": i, "embedding": v}
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model,
				"usage": map[string]any{"prompt_tokens": 10, "total_tokens": 10}})
		case "/v1/chat/completions":
			f.chats.Add(1)
			var req struct {
				Model    string `json:"model"`
				Messages []struct {
					Role, Content string
				} `json:"messages"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "chat-fake" || len(req.Messages) == 0 {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":{"message":"bad request","type":"invalid_request_error","code":null}}`))
				return
			}
			f.mu.Lock()
			f.prompts = append(f.prompts, req.Messages[0].Content)
			f.mu.Unlock()
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "chatcmpl-1", "object": "chat.completion", "model": req.Model,
				"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
					"message": map[string]any{"role": "assistant", "content": "You have 30 days to return it [1]."}}},
				"usage": map[string]any{"prompt_tokens": 250, "completion_tokens": 9, "total_tokens": 259}})
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"message":"no such route","type":"invalid_request_error","code":null}}`))
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// TestServeWiresTheModelServices: with METACHAT_EMBEDDINGS_* and METACHAT_LLM_* pointing at a
// loopback server speaking the OpenAI wire format, serve embeds the knowledge base with it, and a
// customer's message in a conversation with the assistant on gets one bot reply written by the
// chat model, citing the retrieved chunk, with its tokens recorded and counted.
func TestServeWiresTheModelServices(t *testing.T) {
	models := newFakeModels(t)
	env := map[string]string{
		"METACHAT_EMBEDDINGS_BASE_URL": models.URL + "/v1", "METACHAT_EMBEDDINGS_MODEL": "embed-fake",
		"METACHAT_EMBEDDINGS_API_KEY": "sk-fake", "METACHAT_EMBEDDINGS_DIMENSIONS": "8",
		"METACHAT_LLM_BASE_URL": models.URL + "/v1", "METACHAT_LLM_MODEL": "chat-fake", "METACHAT_LLM_API_KEY": "sk-fake",
		"METACHAT_LLM_TIMEOUT": "20s",
	}
	cfg := defaultConfig()
	if err := cfg.loadEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.DatabaseURL = testkit.Postgres(t)
	cfg.HTTPAddr = unusedAddr(t)
	cfg.MetricsAddr = unusedAddr(t)
	cfg.Demo = false
	cfg.resolvePaths()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs lockedBuffer
	var serveErr error
	done := make(chan struct{})
	go func() { serveErr = serve(ctx, cfg, &logs); close(done) }()
	defer func() {
		cancel()
		<-done
		if serveErr != nil {
			t.Errorf("serve: %v\n%s", serveErr, logs.String())
		}
	}()
	api := "http://" + cfg.HTTPAddr
	client := &http.Client{Timeout: 10 * time.Second}
	call := func(method, path, token, contentType string, body io.Reader) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, api+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, logs.String())
			}
			select {
			case <-done:
				t.Fatalf("serve returned early: %v\n%s", serveErr, logs.String())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	waitFor("the API to be healthy", func() bool { code, _ := call("GET", "/api/health", "", "", nil); return code == http.StatusOK })

	code, signup := call("POST", "/api/v1/signup", "", "application/json",
		strings.NewReader(`{"tenant_name":"Bikes","email":"owner@bikes.example","password":"correct-horse-battery"}`))
	token, _ := signup["access_token"].(string)
	tenant, _ := signup["tenant_id"].(string)
	if code != http.StatusCreated || token == "" || tenant == "" {
		t.Fatalf("signup: %d %v", code, signup)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "returns.md")
	_, _ = fw.Write([]byte("# Returns\n\nYou can return a bike within 30 days of delivery for a full refund.\n"))
	_ = mw.Close()
	code, doc := call("POST", "/api/v1/documents", token, mw.FormDataContentType(), &body)
	docID, _ := doc["id"].(string)
	if code/100 != 2 || docID == "" {
		t.Fatalf("upload: %d %v", code, doc)
	}
	waitFor("the document to be indexed", func() bool {
		_, d := call("GET", "/api/v1/documents/"+docID, token, "", nil)
		return d["status"] == "ready"
	})
	if models.embeddings.Load() == 0 {
		t.Fatal("the knowledge base was not embedded by the configured embeddings API")
	}

	code, conv := call("POST", "/api/v1/conversations", token, "application/json",
		strings.NewReader(`{"channel":"api","contact":{"external_id":"crm-7"},"assistant_enabled":true}`))
	convID, _ := conv["id"].(string)
	if code != http.StatusCreated || convID == "" {
		t.Fatalf("create conversation: %d %v", code, conv)
	}
	// The customer writes (as a channel would: a contact message, appended through the store).
	natsURL, err := os.ReadFile(cfg.path(natsURLFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(strings.TrimSpace(string(natsURL)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eventstore.NewHandler(store, domain.NewDefaultRegistry(), domain.ConversationDecider()).Handle(ctx,
		domain.AggregateRef{TenantID: tenant, Type: domain.ConversationAggregate, ID: convID},
		domain.SendMessage{MessageID: uuid.NewString(), Text: "How long do I have to return my bike?",
			Author: domain.Author{Type: domain.AuthorContact, ID: "crm-7"}, At: time.Now()}, eventstore.Metadata{}); err != nil {
		t.Fatal(err)
	}

	var items []any
	waitFor("the assistant's reply", func() bool {
		_, list := call("GET", "/api/v1/conversations/"+convID+"/messages", token, "", nil)
		items, _ = list["items"].([]any)
		return len(items) >= 2
	})
	reply, _ := items[1].(map[string]any)
	author, _ := reply["author"].(map[string]any)
	cites, _ := reply["citations"].([]any)
	if len(items) != 2 || author["type"] != "bot" || reply["text"] != "You have 30 days to return it [1]." || len(cites) != 1 {
		t.Fatalf("messages %v, want the question and the chat model's reply with one citation", items)
	}
	if c, _ := cites[0].(map[string]any); c["document_id"] != docID || c["title"] != "returns" || c["chunk_id"] == "" {
		t.Errorf("citation %v, want the returns document's chunk", cites[0])
	}
	models.mu.Lock()
	prompts := append([]string(nil), models.prompts...)
	models.mu.Unlock()
	if len(prompts) != 1 || !strings.Contains(prompts[0], "[1] returns — Returns") || !strings.Contains(prompts[0], "within 30 days") {
		t.Errorf("chat prompts %q, want one with the returns passage as [1]", prompts)
	}
	scrape := testkit.ScrapeURL(t, "http://"+cfg.MetricsAddr+"/metrics")
	if v, _ := scrape.Value("metachat_assistant_replies_total", map[string]string{"outcome": "answered"}); v != 1 {
		t.Errorf("metachat_assistant_replies_total{outcome=answered} = %v, want 1", v)
	}
	if v, _ := scrape.Value("metachat_llm_tokens_total", map[string]string{"kind": "prompt"}); v != 250 {
		t.Errorf("metachat_llm_tokens_total{kind=prompt} = %v, want 250", v)
	}
}

// TestModelConfigValidation: the model services' settings are all or nothing around their base
// URLs, and each problem names its variable.
func TestModelConfigValidation(t *testing.T) {
	cfg := defaultConfig()
	cfg.EmbeddingsModel, cfg.LLMAPIKey, cfg.LLMTimeout = "m", "k", time.Hour
	err := cfg.Validate()
	for _, name := range []string{"METACHAT_EMBEDDINGS_BASE_URL", "METACHAT_LLM_BASE_URL", "METACHAT_LLM_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Validate does not name %s: %v", name, err)
		}
	}
	cfg = defaultConfig()
	cfg.EmbeddingsBaseURL, cfg.LLMBaseURL = "ftp://x", "http://127.0.0.1:1/v1"
	err = cfg.Validate()
	for _, name := range []string{"METACHAT_EMBEDDINGS_BASE_URL", "METACHAT_EMBEDDINGS_MODEL", "METACHAT_EMBEDDINGS_DIMENSIONS", "METACHAT_LLM_MODEL"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Validate does not name %s: %v", name, err)
		}
	}
	bad := defaultConfig()
	if err := bad.loadEnv(func(k string) string {
		return map[string]string{"METACHAT_EMBEDDINGS_DIMENSIONS": "many", "METACHAT_LLM_TIMEOUT": "soon"}[k]
	}); err == nil || !strings.Contains(err.Error(), "METACHAT_EMBEDDINGS_DIMENSIONS") || !strings.Contains(err.Error(), "METACHAT_LLM_TIMEOUT") {
		t.Errorf("parse errors: %v", err)
	}
	if err := defaultConfig().Validate(); err != nil {
		t.Errorf("defaults (local embedder and answerer): %v", err)
	}
}
