package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// Defaults and limits of WidgetsConfig.
const (
	// DefaultWidgetSessionTTL is how long a visitor session token is good for its one socket
	// handshake.
	DefaultWidgetSessionTTL = 5 * time.Minute
	// MaxWidgetSessionTTL is the longest allowed session token lifetime.
	MaxWidgetSessionTTL = time.Hour
	// MinWidgetSecretLen is the shortest accepted server secret, in bytes.
	MinWidgetSecretLen = 32
	// WidgetNonceTTL is how long the nonce store must keep a spent session nonce: longer than a
	// token lives with the default lifetime, clock skew included on both sides.
	WidgetNonceTTL = DefaultWidgetSessionTTL + 2*DefaultClockSkew
)

// WidgetsConfig configures a Widgets service.
type WidgetsConfig struct {
	// Store is the event store; Registry encodes and decodes events (default
	// domain.NewDefaultRegistry()).
	Store    domain.EventStore
	Registry *domain.Registry
	// DB is the app pool (metachat_app): every read goes through row-level security.
	DB projections.Beginner
	// Waiter gives writes their reads.
	Waiter *projections.Waiter
	// Conversations starts visitors' conversations and carries their messages.
	Conversations *Conversations
	// Secret is the server secret (at least MinWidgetSecretLen bytes; the API key pepper serves)
	// from which the session token key and each widget's identity secret are derived, so neither
	// is ever stored in an event.
	Secret []byte
	// Nonces records the nonces of session tokens spent on a socket handshake, for every
	// instance (eventstore.JetStream.NewOnce); its entries must live at least SessionTTL plus
	// twice ClockSkew (WidgetNonceTTL with the defaults).
	Nonces eventstore.Once
	// SessionTTL is the lifetime of a session token. Default DefaultWidgetSessionTTL.
	SessionTTL time.Duration
	// ClockSkew is the leeway on a token's times. Default DefaultClockSkew.
	ClockSkew time.Duration
	// Logger receives the service's logs; nil discards them. Tokens are never logged.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *WidgetsConfig) setDefaults() {
	if c.Registry == nil {
		c.Registry = domain.NewDefaultRegistry()
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultWidgetSessionTTL
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c WidgetsConfig) Validate() error {
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
	if c.Conversations == nil {
		errs = append(errs, errors.New("no conversations service"))
	}
	if c.Nonces == nil {
		errs = append(errs, errors.New("no nonce store"))
	}
	if len(c.Secret) < MinWidgetSecretLen {
		errs = append(errs, fmt.Errorf("secret of %d bytes, at least %d needed", len(c.Secret), MinWidgetSecretLen))
	}
	if c.SessionTTL < 0 || c.SessionTTL > MaxWidgetSessionTTL {
		errs = append(errs, fmt.Errorf("session ttl %v must be between 0 and %v", c.SessionTTL, MaxWidgetSessionTTL))
	}
	if c.ClockSkew < 0 {
		errs = append(errs, errors.New("clock skew must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid widgets config: %w", err)
	}
	return nil
}

// Widgets is the web chat widgets service: widget configuration for the tenant's staff, and
// visitor sessions and messages for the browser. It is safe for concurrent use.
type Widgets struct {
	cfg     WidgetsConfig
	log     *slog.Logger
	handler *eventstore.Handler[domain.Widget, domain.WidgetCommand]
	reader  *projections.Widgets
	conv    *Conversations
	// tokenKey signs session tokens; identityKey derives widgets' identity secrets.
	tokenKey    []byte
	identityKey []byte
}

// NewWidgets returns the service for cfg.
func NewWidgets(cfg WidgetsConfig) (*Widgets, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	log := cfg.Logger.With("component", "app.widgets")
	return &Widgets{
		cfg: cfg,
		log: log,
		handler: eventstore.NewHandler(cfg.Store, cfg.Registry, domain.WidgetDecider(),
			eventstore.WithClock(cfg.Now), eventstore.WithLogger(log)),
		reader:      projections.NewWidgets(cfg.DB),
		conv:        cfg.Conversations,
		tokenKey:    deriveKey(cfg.Secret, "metachat/widget-session-token/v1"),
		identityKey: deriveKey(cfg.Secret, "metachat/widget-identity-secret/v1"),
	}, nil
}

// deriveKey derives a purpose-bound key from the server secret (HMAC-SHA256 with the secret as
// key and the purpose as message), so one secret serves several uses that can never be confused.
func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// identitySecret is a widget's identity verification secret: derived from the server secret and
// the widget id, so it is stable, never stored, and different for every widget.
func (w *Widgets) identitySecret(widgetID string) string {
	m := hmac.New(sha256.New, w.identityKey)
	m.Write([]byte(widgetID))
	return "whs_" + hex.EncodeToString(m.Sum(nil))
}

// UserHash is what a tenant's server computes for identity verification:
// hex(HMAC-SHA256(identity secret, user id)).
func UserHash(identitySecret, userID string) string {
	m := hmac.New(sha256.New, []byte(identitySecret))
	m.Write([]byte(userID))
	return hex.EncodeToString(m.Sum(nil))
}

// now is the service clock in UTC.
func (w *Widgets) now() time.Time { return w.cfg.Now().UTC() }

// view is the API view of a widget, with its identity secret.
func (w *Widgets) view(id string, s domain.WidgetSettings, createdAt, updatedAt time.Time) Widget {
	return Widget{ID: id, Settings: s, CreatedAt: createdAt, UpdatedAt: updatedAt, IdentitySecret: w.identitySecret(id)}
}

// waitFor returns once the widgets read model has applied seq (the public routes read it).
func (w *Widgets) waitFor(ctx context.Context, seq uint64) error {
	return w.cfg.Waiter.WaitFor(ctx, projections.WidgetsProjection, seq)
}
