package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// Defaults of ConversationsConfig and the limits of its listings.
const (
	// DefaultConversationRetries is how often a conversation command is retried after a version
	// conflict with another instance (commands of one instance on one conversation queue instead).
	DefaultConversationRetries = 10
	// DefaultConversationPageLimit and MaxConversationPageLimit bound the pages of conversations
	// and messages.
	DefaultConversationPageLimit = 50
	MaxConversationPageLimit     = 200
)

// ConversationsConfig configures a Conversations service.
type ConversationsConfig struct {
	// Store is the event store; Registry encodes and decodes events (default
	// domain.NewDefaultRegistry()).
	Store    domain.EventStore
	Registry *domain.Registry
	// DB is the app pool (metachat_app): every read goes through row-level security.
	DB projections.Beginner
	// Waiter gives writes their reads: a write returns once the conversations read model has
	// applied it.
	Waiter *projections.Waiter
	// CacheSize is how many conversations' decided states are kept in memory, so that a send does
	// not reload a conversation's history (see eventstore.StateCache). Default
	// eventstore.DefaultCacheSize.
	CacheSize int
	// MaxRetries is how often a command is retried after a version conflict. Default
	// DefaultConversationRetries.
	MaxRetries int
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *ConversationsConfig) setDefaults() {
	if c.Registry == nil {
		c.Registry = domain.NewDefaultRegistry()
	}
	if c.CacheSize == 0 {
		c.CacheSize = eventstore.DefaultCacheSize
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultConversationRetries
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c ConversationsConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("no event store"))
	}
	if c.DB == nil {
		errs = append(errs, errors.New("no database pool"))
	}
	if c.Waiter == nil {
		errs = append(errs, errors.New("no read-your-writes waiter"))
	}
	if c.CacheSize < 1 {
		errs = append(errs, fmt.Errorf("cache size %d must be at least 1", c.CacheSize))
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("max retries %d must not be negative", c.MaxRetries))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid conversations config: %w", err)
	}
	return nil
}

// Conversation is a conversation as the API shows it (a row of the conversations read model).
type Conversation = projections.Conversation

// Message is a message as the API shows it (a row of the messages read model).
type Message = projections.Message

// Conversations is the conversations service: starting, listing, reading and updating
// conversations, and sending and listing their messages. The tenant of every call is the
// principal's; another tenant's conversation is ENOTFOUND exactly like a missing one (its
// aggregate and its rows are the principal's tenant's or nothing).
//
// Writes return once the conversations read model has applied them (read-your-writes): a read
// right after a write sees it. Each instance keeps the decided states of recently used
// conversations, so a send costs one append however long the conversation (see
// eventstore.StateCache); sends to one conversation in one instance queue rather than conflict.
// It is safe for concurrent use.
type Conversations struct {
	cfg     ConversationsConfig
	log     *slog.Logger
	handler *eventstore.Handler[domain.Conversation, domain.ConversationCommand]
	reader  *projections.Conversations
}

// NewConversations returns the service for cfg.
func NewConversations(cfg ConversationsConfig) (*Conversations, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	cache, err := eventstore.NewStateCache[domain.Conversation](eventstore.CacheConfig{Size: cfg.CacheSize})
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "app.conversations")
	return &Conversations{
		cfg: cfg,
		log: log,
		handler: eventstore.NewHandler(cfg.Store, cfg.Registry, domain.ConversationDecider(),
			eventstore.WithStateCache(cache), eventstore.WithMaxRetries(cfg.MaxRetries),
			eventstore.WithClock(cfg.Now), eventstore.WithLogger(log)),
		reader: projections.NewConversations(cfg.DB),
	}, nil
}

// convRef is the aggregate of a conversation of the principal's tenant.
func convRef(p domain.Principal, id string) domain.AggregateRef {
	return domain.AggregateRef{TenantID: p.TenantID, Type: domain.ConversationAggregate, ID: id}
}

// convCaller checks that p is an authenticated principal of the tenant's staff or an API key:
// visitors only send (sendCaller) and follow their own conversation (Live).
func convCaller(p domain.Principal) error {
	if err := sendCaller(p); err != nil {
		return err
	}
	if p.Role == domain.RoleVisitor {
		return domain.Errorf(domain.EFORBIDDEN, "Visitors may only write in their own conversation.")
	}
	return nil
}

// sendCaller checks that p is an authenticated principal, visitors included.
func sendCaller(p domain.Principal) error {
	if !p.Authenticated() || !domain.IsUUID(p.TenantID) {
		return domain.Errorf(domain.EUNAUTHORIZED, "Authentication required.")
	}
	return nil
}

// convNotFound is the answer for a conversation that is missing or another tenant's.
func convNotFound() error { return domain.Errorf(domain.ENOTFOUND, "Conversation not found.") }

// convID returns a conversation id from a request in canonical form, ENOTFOUND when it is no UUID.
func convID(id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil || !domain.IsUUID(id) {
		return "", convNotFound()
	}
	return u.String(), nil
}

// handle runs a command on a conversation of p's tenant.
func (s *Conversations) handle(ctx context.Context, p domain.Principal, id string, cmd domain.ConversationCommand) (eventstore.Result[domain.Conversation], error) {
	return s.handler.Handle(ctx, convRef(p, id), cmd, eventstore.Metadata{Actor: p.Actor()})
}

// waitFor returns once the conversations read model has applied the stream sequence seq. A write
// that succeeded is never reported as failed: when the read model lags past the waiter's timeout,
// the write's answer is returned anyway (its sequence tells the client where it is) and the lag is
// logged; answering 503 would invite a retry that, without an idempotency key, writes twice.
func (s *Conversations) waitFor(ctx context.Context, seq uint64) error {
	err := s.cfg.Waiter.WaitFor(ctx, projections.ConversationsProjection, seq)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("wait for the conversations read model: %w", err)
	}
	s.log.WarnContext(ctx, "write answered before the read model applied it", "seq", seq, "error", err)
	return nil
}

// conversationOf is the API view of a decided conversation at version.
func conversationOf(c domain.Conversation, version uint64) Conversation {
	last := c.CreatedAt
	if !c.LastMessageAt.IsZero() {
		last = c.LastMessageAt
	}
	return Conversation{
		ID: c.ID, Channel: c.Channel, Status: c.Status, Contact: c.Contact, AssistantEnabled: c.AssistantEnabled,
		AssigneeID: c.AssigneeID, CreatedAt: c.CreatedAt, LastMessageAt: c.LastMessageAt, LastActivityAt: last,
		MessageCount: c.LastSeq, Version: version,
	}
}

// convPageLimit applies the default to 0 and refuses limits outside 1..MaxConversationPageLimit.
func convPageLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultConversationPageLimit, nil
	case limit < 0 || limit > MaxConversationPageLimit:
		return 0, domain.Invalid("Invalid limit.", domain.FieldError{Field: "limit", Message: "must be between 1 and 200"})
	}
	return limit, nil
}
