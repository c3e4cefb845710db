package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/metachat/metachat/app"
)

// Defaults of ChatConfig.
const (
	DefaultChatTimeout    = 30 * time.Second
	DefaultChatMaxRetries = 2
)

// ChatConfig configures a Chat client.
type ChatConfig struct {
	// BaseURL is the API's base, such as "https://api.openai.com/v1" (required).
	BaseURL string
	// Model is the chat model, such as "gpt-4o-mini" (required).
	Model string
	// APIKey is sent as a bearer token when not empty.
	APIKey string
	// Timeout bounds each HTTP attempt. Default DefaultChatTimeout.
	Timeout time.Duration
	// MaxRetries is how many times a retryable failure is retried (within the caller's deadline).
	// Default DefaultChatMaxRetries.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the delay between attempts (doubling, with jitter) when the
	// server sends no Retry-After; a Retry-After is honoured up to MaxBackoff. Defaults
	// DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient is the transport; default a new http.Client.
	HTTPClient *http.Client
	// Logger receives retries; nil discards them.
	Logger *slog.Logger
}

func (c *ChatConfig) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultChatTimeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultChatMaxRetries
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
func (c ChatConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("base URL %q must be an http(s) URL", c.BaseURL))
	}
	if strings.TrimSpace(c.Model) == "" || len(c.Model) > 150 {
		errs = append(errs, errors.New("model must be 1-150 characters"))
	}
	if c.Timeout < 0 || c.MaxRetries < 0 || c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff {
		errs = append(errs, errors.New("timeouts, retries and backoffs must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid OpenAI-compatible chat config: %w", err)
	}
	return nil
}

// Chat calls an OpenAI-compatible chat-completions API (POST {BaseURL}/chat/completions). It is
// safe for concurrent use.
type Chat struct {
	model string
	call  *caller
}

var _ app.ChatModel = (*Chat)(nil)

// NewChat returns a chat client for cfg.
func NewChat(cfg ChatConfig) (*Chat, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Chat{model: cfg.Model, call: &caller{baseURL: strings.TrimRight(cfg.BaseURL, "/"), apiKey: cfg.APIKey,
		timeout: cfg.Timeout, maxRetries: cfg.MaxRetries, minBackoff: cfg.MinBackoff, maxBackoff: cfg.MaxBackoff,
		http: cfg.HTTPClient, log: cfg.Logger}}, nil
}

// Model implements app.ChatModel: "openai:<model>".
func (c *Chat) Model() string { return "openai:" + c.model }

type chatRequest struct {
	Model       string            `json:"model"`
	Messages    []app.ChatMessage `json:"messages"`
	MaxTokens   int               `json:"max_tokens,omitempty"`
	Temperature float64           `json:"temperature"`
}

// Complete implements app.ChatModel.
func (c *Chat) Complete(ctx context.Context, req app.ChatRequest) (app.ChatCompletion, error) {
	var out app.ChatCompletion
	err := c.call.post(ctx, "/chat/completions", chatRequest{Model: c.model, Messages: req.Messages,
		MaxTokens: req.MaxTokens, Temperature: req.Temperature}, func(b []byte) error {
		var err error
		out, err = ParseChatCompletion(b)
		return err
	})
	if err != nil {
		return app.ChatCompletion{}, err
	}
	return out, nil
}

// chatResponse is the part of a chat completion the client reads.
type chatResponse struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		TotalTokens      int64 `json:"total_tokens"`
	} `json:"usage"`
}

// maxTokenCount bounds a reported token count (anything above is not a real count).
const maxTokenCount = 1 << 40

// ParseChatCompletion reads a chat completion's body: choices[0].message.content, its
// finish_reason and usage. A body without a first choice or its content, or with negative or
// absurd token counts, is an error.
func ParseChatCompletion(b []byte) (app.ChatCompletion, error) {
	var r chatResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return app.ChatCompletion{}, fmt.Errorf("chat completion: %w", err)
	}
	if len(r.Choices) == 0 || r.Choices[0].Message.Content == nil {
		return app.ChatCompletion{}, errors.New("chat completion: no choices[0].message.content")
	}
	out := app.ChatCompletion{Content: *r.Choices[0].Message.Content, FinishReason: r.Choices[0].FinishReason}
	if u := r.Usage; u != nil {
		for _, n := range []int64{u.PromptTokens, u.CompletionTokens, u.TotalTokens} {
			if n < 0 || n > maxTokenCount {
				return app.ChatCompletion{}, fmt.Errorf("chat completion: token count %d out of range", n)
			}
		}
		out.Usage = app.TokenUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
		if out.Usage.TotalTokens == 0 {
			out.Usage.TotalTokens = u.PromptTokens + u.CompletionTokens
		}
	}
	return out, nil
}
