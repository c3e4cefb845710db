package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// Defaults of AssistantConfig.
const (
	// AssistantConsumer is the durable consumer the assistant works through.
	AssistantConsumer = "work_assistant"
	// DefaultAssistantPassages is how many chunks a question retrieves.
	DefaultAssistantPassages = 5
	// DefaultAnswerTimeout bounds retrieval and answer together, for one customer message.
	DefaultAnswerTimeout = 30 * time.Second
	// DefaultMaxTriggerAge: customer messages older than this when the assistant sees them get no
	// reply (a first start, or a long outage, must not answer the past).
	DefaultMaxTriggerAge = 15 * time.Minute
	// DefaultAssistantConcurrency is how many messages one process answers at once.
	DefaultAssistantConcurrency = 4
	// DefaultAssistantFallback is the reply when retrieval or the answerer fails or is too slow.
	DefaultAssistantFallback = "Sorry, I can't answer that right now. A member of our team will get back to you shortly."
)

// assistantActor is the actor of the assistant's events.
var assistantActor = domain.Actor{Type: "bot"}

// AssistantConfig configures an Assistant.
type AssistantConfig struct {
	// Store is the event store; Registry encodes and decodes events (default
	// domain.NewDefaultRegistry()).
	Store    domain.EventStore
	Registry *domain.Registry
	// Worker delivers the conversation events (eventstore.JetStream.Work).
	Worker Worker
	// Knowledge retrieves passages from the tenant's knowledge base (its embedder embeds the
	// question).
	Knowledge *Knowledge
	// Answerer answers from the passages. Default LocalAnswerer{} (extractive, offline); a
	// ChatAnswerer when a chat model is configured.
	Answerer Answerer
	// Passages is how many chunks a question retrieves. Default DefaultAssistantPassages.
	Passages int
	// AnswerTimeout bounds retrieval and answer of one message; beyond it the fallback is sent.
	// Default DefaultAnswerTimeout.
	AnswerTimeout time.Duration
	// MaxTriggerAge is the age beyond which a customer message gets no reply. Default
	// DefaultMaxTriggerAge.
	MaxTriggerAge time.Duration
	// Concurrency is how many messages this process answers at once. Default
	// DefaultAssistantConcurrency.
	Concurrency int
	// Durable names the durable consumer. Default AssistantConsumer.
	Durable string
	// FallbackText is the polite reply when the answer fails. Default DefaultAssistantFallback.
	FallbackText string
	// CacheSize is how many conversations' states the assistant keeps. Default
	// eventstore.DefaultCacheSize.
	CacheSize int
	// Metrics records replies, failures, durations and tokens; nil records nothing.
	Metrics *AssistantMetrics
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *AssistantConfig) setDefaults() {
	if c.Registry == nil {
		c.Registry = domain.NewDefaultRegistry()
	}
	if c.Answerer == nil {
		c.Answerer = LocalAnswerer{}
	}
	if c.Passages == 0 {
		c.Passages = DefaultAssistantPassages
	}
	if c.AnswerTimeout == 0 {
		c.AnswerTimeout = DefaultAnswerTimeout
	}
	if c.MaxTriggerAge == 0 {
		c.MaxTriggerAge = DefaultMaxTriggerAge
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultAssistantConcurrency
	}
	if c.Durable == "" {
		c.Durable = AssistantConsumer
	}
	if c.FallbackText == "" {
		c.FallbackText = DefaultAssistantFallback
	}
	if c.CacheSize == 0 {
		c.CacheSize = eventstore.DefaultCacheSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c AssistantConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("no event store"))
	}
	if c.Worker == nil {
		errs = append(errs, errors.New("no worker"))
	}
	if c.Knowledge == nil {
		errs = append(errs, errors.New("no knowledge service"))
	}
	if c.Passages < 1 || c.Passages > DefaultMaxSearchResults {
		errs = append(errs, fmt.Errorf("passages %d must be between 1 and %d", c.Passages, DefaultMaxSearchResults))
	}
	// The work consumer hands a message out again after 2 minutes without an answer.
	if c.AnswerTimeout < 0 || c.AnswerTimeout > 90*time.Second {
		errs = append(errs, fmt.Errorf("answer timeout %s must be between 0 and 90s", c.AnswerTimeout))
	}
	if c.MaxTriggerAge < 0 {
		errs = append(errs, fmt.Errorf("max trigger age %s must not be negative", c.MaxTriggerAge))
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		errs = append(errs, fmt.Errorf("concurrency %d must be between 1 and 64", c.Concurrency))
	}
	if msg := fallbackProblem(c.FallbackText); msg != "" {
		errs = append(errs, fmt.Errorf("fallback text %s", msg))
	}
	if c.CacheSize < 1 {
		errs = append(errs, fmt.Errorf("cache size %d must be at least 1", c.CacheSize))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid assistant config: %w", err)
	}
	return nil
}

func fallbackProblem(s string) string {
	if strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > 1000 || !utf8.ValidString(s) {
		return "must be 1-1000 characters of UTF-8"
	}
	return ""
}

// Assistant answers customers: a reactor on the conversation events that replies to each
// customer (contact) message of a conversation with the assistant on, from the tenant's knowledge
// base, with citations. It is safe for concurrent use.
//
// Exactly one reply per customer message: the reply, the retrieval.performed that explains it and
// the usage it cost are decided by the conversation (domain.ReplyAsAssistant) and appended in one
// atomic batch, and the conversation remembers which messages were answered, so a redelivered
// message, another instance or a repeated run decides nothing. A failing or slow answer gives the
// fallback reply (and an error metric), never none: only a failure to store the reply leaves the
// message to be delivered again.
type Assistant struct {
	cfg     AssistantConfig
	log     *slog.Logger
	handler *eventstore.Handler[domain.Conversation, domain.ConversationCommand]
}

// NewAssistant returns the assistant for cfg.
func NewAssistant(cfg AssistantConfig) (*Assistant, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	cache, err := eventstore.NewStateCache[domain.Conversation](eventstore.CacheConfig{Size: cfg.CacheSize})
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "app.assistant")
	return &Assistant{
		cfg: cfg,
		log: log,
		handler: eventstore.NewHandler(cfg.Store, cfg.Registry, domain.ConversationDecider(),
			eventstore.WithStateCache(cache), eventstore.WithMaxRetries(DefaultConversationRetries),
			eventstore.WithClock(cfg.Now), eventstore.WithLogger(log)),
	}, nil
}

// Model is the answerer's model, as recorded in retrieval.performed.
func (a *Assistant) Model() string { return a.cfg.Answerer.Model() }

// Run answers customer messages until ctx ends: one durable consumer of the conversation events,
// shared by every instance (each message goes to one of them at a time, and again after a crash),
// worked on by Concurrency workers here. The messages of one conversation go to the same worker,
// so they are answered one at a time and in order.
func (a *Assistant) Run(ctx context.Context) error {
	err := a.cfg.Worker.Work(ctx, eventstore.WorkConfig{
		Durable: a.cfg.Durable, Filter: domain.Filter{AggregateType: domain.ConversationAggregate},
		Backoff:     []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, time.Minute},
		Concurrency: a.cfg.Concurrency, Logger: a.log,
	}, a.Process)
	if err != nil {
		return fmt.Errorf("assistant: %w", err)
	}
	return nil
}

// Process handles one conversation event: a customer message of a conversation with the assistant
// on gets its reply. Every other event, and a message already answered, changes nothing. It
// returns an error only when the reply could not be stored (the event should be delivered again).
func (a *Assistant) Process(ctx context.Context, env domain.Envelope) error {
	if env.Type != domain.EventMessageSent || env.AggregateType != domain.ConversationAggregate {
		return nil
	}
	ev, err := a.cfg.Registry.Decode(env)
	if err != nil {
		a.log.ErrorContext(ctx, "assistant: undecodable message left", "event_id", env.ID, "err", err)
		return nil
	}
	m, ok := ev.(*domain.MessageSent)
	if !ok || m.Author.Type != domain.AuthorContact {
		return nil
	}
	if age := a.cfg.Now().Sub(m.SentAt); age > a.cfg.MaxTriggerAge {
		a.log.InfoContext(ctx, "assistant: message too old to answer", "conversation_id", env.AggregateID,
			"message_id", m.MessageID, "age", age.Round(time.Second))
		return nil
	}
	agg := domain.AggregateRef{TenantID: env.TenantID, Type: domain.ConversationAggregate, ID: env.AggregateID}
	md := eventstore.Metadata{Actor: assistantActor, CorrelationID: env.CorrelationID, CausationID: env.ID}
	// Look first: answering costs retrieval and a model call, and most messages need none.
	res, err := a.handler.Handle(ctx, agg, domain.InspectConversation{}, md)
	if err != nil {
		return fmt.Errorf("assistant: look at conversation %s: %w", env.AggregateID, err)
	}
	if !res.State.AssistantShouldReply(m.MessageID, m.Seq) {
		return nil
	}
	cmd := a.reply(ctx, env.TenantID, m)
	res, err = a.handler.Handle(ctx, agg, cmd, md)
	if domain.ErrorCode(err) == domain.EINVALID && cmd.Retrieval.Outcome != domain.RetrievalFallback {
		// An answer the conversation refuses (it should not happen: the text is cleaned) still
		// gets a reply.
		a.log.ErrorContext(ctx, "assistant: answer refused; sending the fallback", "conversation_id", env.AggregateID, "err", err)
		a.cfg.Metrics.failed("answer", "invalid")
		a.fallback(&cmd, "invalid")
		res, err = a.handler.Handle(ctx, agg, cmd, md)
	}
	if err != nil {
		return fmt.Errorf("assistant: reply in conversation %s: %w", env.AggregateID, err)
	}
	if len(res.Events) == 0 {
		a.log.InfoContext(ctx, "assistant: no reply (answered already, taken over or closed)",
			"conversation_id", env.AggregateID, "message_id", m.MessageID)
		return nil
	}
	a.cfg.Metrics.replied(cmd.Retrieval.Outcome)
	a.log.InfoContext(ctx, "assistant: replied", "conversation_id", env.AggregateID, "message_id", m.MessageID,
		"reply_id", cmd.MessageID, "outcome", cmd.Retrieval.Outcome, "citations", len(cmd.Citations))
	return nil
}

// reply retrieves and answers m within the answer timeout, and returns the command that records
// the reply: the answer, or the fallback when anything failed.
func (a *Assistant) reply(ctx context.Context, tenantID string, m *domain.MessageSent) domain.ReplyAsAssistant {
	start := a.cfg.Now()
	cmd := domain.ReplyAsAssistant{
		TriggerMessageID: m.MessageID, TriggerSeq: m.Seq, MessageID: replyID(m.MessageID),
		Retrieval: domain.RetrievalPerformed{Question: m.Text, Chunks: []domain.RetrievedChunk{},
			Embedder: a.cfg.Knowledge.Embedder().Name(), Model: a.cfg.Answerer.Model(), Outcome: domain.RetrievalAnswered},
	}
	actx, cancel := context.WithTimeout(ctx, a.cfg.AnswerTimeout)
	defer cancel()
	question := m.Text
	if len(question) > 1000 { // the search's bound; the answerer still gets the whole question
		question = strings.ToValidUTF8(question[:1000], "")
	}
	hits, err := a.cfg.Knowledge.search(actx, tenantID, question, a.cfg.Passages)
	if err != nil {
		a.log.WarnContext(ctx, "assistant: retrieval failed", "message_id", m.MessageID, "err", err)
		a.cfg.Metrics.failed("retrieval", failureKind(actx, err))
		a.fallback(&cmd, failureKind(actx, err))
		cmd.At = a.cfg.Now()
		return cmd
	}
	passages := make([]Passage, len(hits))
	for i, h := range hits {
		passages[i] = Passage{N: i + 1, DocumentID: h.DocumentID, ChunkID: h.ChunkID, Title: h.Title, Heading: h.Heading,
			Text: h.Text, Score: h.Score, Lexical: h.LexicalRank > 0, Distance: h.Distance}
		cmd.Retrieval.Chunks = append(cmd.Retrieval.Chunks, domain.RetrievedChunk{DocumentID: h.DocumentID, ChunkID: h.ChunkID, Score: h.Score})
	}
	ans, err := a.cfg.Answerer.Answer(actx, AnswerInput{Question: m.Text, Passages: passages})
	a.cfg.Metrics.answered(a.cfg.Now().Sub(start), ans.Usage)
	cmd.Retrieval.PromptSHA256 = ans.PromptSHA256
	cmd.Usage = domain.UsageRecorded{Kind: domain.UsageLLMTokens, Model: a.cfg.Answerer.Model(),
		PromptTokens: ans.Usage.PromptTokens, CompletionTokens: ans.Usage.CompletionTokens, TotalTokens: ans.Usage.TotalTokens}
	cmd.At = a.cfg.Now()
	text := cleanReply(ans.Text)
	if err == nil && text == "" {
		err = domain.Errorf(domain.EUNAVAILABLE, "The model gave an empty answer.")
	}
	if err != nil {
		a.log.WarnContext(ctx, "assistant: answer failed; sending the fallback", "message_id", m.MessageID,
			"model", a.cfg.Answerer.Model(), "err", err)
		a.cfg.Metrics.failed("answer", failureKind(actx, err))
		a.fallback(&cmd, failureKind(actx, err))
		return cmd
	}
	cmd.Text = text
	for _, n := range ans.Cited {
		if n < 1 || n > len(passages) || len(cmd.Citations) == domain.MaxCitations {
			continue
		}
		p := passages[n-1]
		cmd.Citations = append(cmd.Citations, domain.Citation{DocumentID: p.DocumentID, ChunkID: p.ChunkID, Title: p.Title})
	}
	return cmd
}

// fallback turns cmd into the fallback reply for a failure of kind.
func (a *Assistant) fallback(cmd *domain.ReplyAsAssistant, kind string) {
	cmd.Text, cmd.Citations = a.cfg.FallbackText, nil
	cmd.Retrieval.Outcome, cmd.Retrieval.Error = domain.RetrievalFallback, kind
}

// failureKind is the bounded kind of an answer's failure: timeout, unavailable, invalid or
// internal.
func failureKind(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "timeout"
	case domain.ErrorCode(err) == domain.EUNAVAILABLE:
		return "unavailable"
	case domain.ErrorCode(err) == domain.EINVALID:
		return "invalid"
	}
	return "internal"
}

// replyID is the id of the reply to a message: derived from it, so every attempt names the same
// reply.
func replyID(triggerMessageID string) string {
	space, err := uuid.Parse(triggerMessageID)
	if err != nil {
		space = uuid.Nil
	}
	return uuid.NewHash(sha256.New(), space, []byte("assistant-reply"), 8).String()
}

// cleanReply makes a model's text a valid message: valid UTF-8, no control characters but
// newlines and tabs, at most domain.MaxMessageTextLen characters.
func cleanReply(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if r == '\r' {
			return -1
		}
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > domain.MaxMessageTextLen {
		s = strings.TrimSpace(string([]rune(s)[:domain.MaxMessageTextLen-1])) + "…"
	}
	return s
}
