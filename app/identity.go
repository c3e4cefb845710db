package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// Defaults and limits of IdentityConfig.
const (
	DefaultTokenIssuer   = "metachat"
	DefaultTokenAudience = "metachat-api"
	// DefaultTokenTTL is how long an access token lives; MaxTokenTTL is the longest allowed.
	DefaultTokenTTL = time.Hour
	MaxTokenTTL     = time.Hour
	// DefaultClockSkew is the leeway on a token's times, for clocks of several instances that
	// disagree slightly.
	DefaultClockSkew = 30 * time.Second
	// DefaultAPIKeyUseInterval is how often at most a key's use is recorded (last_used_at).
	DefaultAPIKeyUseInterval = time.Minute
	// MinAPIKeyPepperLen is the shortest accepted API key pepper, in bytes.
	MinAPIKeyPepperLen = 32
	// directoryRetries bounds the retries of a user directory command after a version conflict:
	// every user change of a tenant goes through one aggregate.
	directoryRetries = 10
)

// IdentityConfig configures an Identity.
type IdentityConfig struct {
	// Store is the event store; Registry encodes and decodes events.
	Store    domain.EventStore
	Registry *domain.Registry
	// DB is the app pool (metachat_app): every read goes through row-level security.
	DB projections.Beginner
	// Waiter gives writes their reads: a write returns once the read models it changes have
	// applied it.
	Waiter *projections.Waiter
	// SigningKey signs access tokens: an Ed25519 private key in PEM (PKCS #8), as
	// GenerateSigningKey returns. PreviousSigningKeys are keys that signed tokens which must still
	// verify during a rotation (PEM, private or public keys); each key is named by its "kid".
	SigningKey          []byte
	PreviousSigningKeys [][]byte
	// APIKeyPepper is the server secret API keys are hashed with (HMAC-SHA256), at least
	// MinAPIKeyPepperLen bytes, as GenerateAPIKeyPepper returns. Changing it invalidates every key.
	APIKeyPepper []byte
	// TokenIssuer and TokenAudience are the iss and aud of access tokens. Defaults
	// DefaultTokenIssuer and DefaultTokenAudience.
	TokenIssuer   string
	TokenAudience string
	// TokenTTL is the lifetime of access tokens, at most MaxTokenTTL. Default DefaultTokenTTL.
	TokenTTL time.Duration
	// ClockSkew is the leeway on tokens' times. Default DefaultClockSkew.
	ClockSkew time.Duration
	// Password sets the cost of password hashes. Zero fields take the defaults
	// (DefaultPasswordParams).
	Password PasswordParams
	// MaxConcurrentHashes bounds the password hashes computed at once (each takes
	// Password.Memory); more wait. Default: GOMAXPROCS.
	MaxConcurrentHashes int
	// APIKeyUseInterval is how often at most a key's use is recorded. Default
	// DefaultAPIKeyUseInterval.
	APIKeyUseInterval time.Duration
	// LoginBackoff slows sign-in down after repeated failures, per account and per client
	// (identity_login_backoff.go). Zero fields take the defaults.
	LoginBackoff LoginBackoff
	// Logger receives the service's logs; nil discards them. Credentials are never logged.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *IdentityConfig) setDefaults() {
	if c.TokenIssuer == "" {
		c.TokenIssuer = DefaultTokenIssuer
	}
	if c.TokenAudience == "" {
		c.TokenAudience = DefaultTokenAudience
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	c.Password.setDefaults()
	if c.MaxConcurrentHashes == 0 {
		c.MaxConcurrentHashes = defaultConcurrentHashes()
	}
	if c.APIKeyUseInterval == 0 {
		c.APIKeyUseInterval = DefaultAPIKeyUseInterval
	}
	c.LoginBackoff.setDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c IdentityConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("no event store"))
	}
	if c.Registry == nil {
		errs = append(errs, errors.New("no registry"))
	}
	if c.DB == nil {
		errs = append(errs, errors.New("no database pool"))
	}
	if c.Waiter == nil {
		errs = append(errs, errors.New("no waiter"))
	}
	if _, err := newTokenKeys(c.SigningKey, c.PreviousSigningKeys); err != nil {
		errs = append(errs, err)
	}
	if len(c.APIKeyPepper) < MinAPIKeyPepperLen {
		errs = append(errs, fmt.Errorf("API key pepper must be at least %d bytes", MinAPIKeyPepperLen))
	}
	if c.TokenTTL < 0 || c.TokenTTL > MaxTokenTTL {
		errs = append(errs, fmt.Errorf("token TTL %v must be positive and at most %v", c.TokenTTL, MaxTokenTTL))
	}
	if c.ClockSkew < 0 || c.APIKeyUseInterval < 0 || c.MaxConcurrentHashes < 0 {
		errs = append(errs, errors.New("clock skew, API key use interval and hash concurrency must not be negative"))
	}
	if err := c.Password.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.LoginBackoff.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid identity config: %w", err)
	}
	return nil
}

// Identity is the identity service: sign-up, login, users, API keys and authentication
// (Authenticate makes it the HTTP adapter's Authenticator). Its methods are safe for concurrent
// use. The design, in short:
//
//   - Aggregates: an email claim per canonical address (domain.EmailClaimRef, under
//     domain.SystemTenantID), a user directory per tenant (all its users, so "the last owner stays"
//     is decided on one consistent state), an API key per key.
//   - Email uniqueness across tenants: the claim is appended at version 0 before the user exists,
//     so of concurrent writers exactly one gets the address; a claim left without its user by a
//     failed write is adopted by a retry of the same kind (claimEmail).
//   - Passwords: argon2id (PasswordParams), PHC strings in user.registered; never the password.
//   - Login: by email across tenants through one narrow row-level security policy on the users
//     read model's user_logins table (projections.UserProjection); unknown email, wrong password
//     and deactivated user answer alike, in the same time.
//   - Access tokens: Ed25519 JWTs with a kid (auth_jwt.go); every request also reads the user's
//     row, so deactivation is immediate and the role is the current one.
//   - API keys: mck_<public id>_<secret>, stored as HMAC-SHA256 with a configured pepper
//     (auth_apikey.go); every request reads the live key by prefix, without cache; revocation
//     answers once the read model has it, so the key fails on the next request on any instance.
//     last_used_at comes from api_key.used events, at most one per key per APIKeyUseInterval.
//   - Idempotency: an Idempotency-Key derives the new user's or key's id from (tenant, key); a
//     retried invitation returns its user, a retried key creation is ECONFLICT (the secret is not
//     shown twice).
//   - Read-your-writes: each write returns once the read model it changes has applied it.
type Identity struct {
	cfg       IdentityConfig
	log       *slog.Logger
	users     *projections.Users
	apiKeys   *projections.APIKeys
	tokens    *tokenKeys
	passwords *passwordHasher
	usage     *useThrottle
	keyCache  *apiKeyCache
	// keyChecks shares the version checks of remembered keys between concurrent requests.
	keyChecks *versionFlights

	claims    *eventstore.Handler[domain.EmailClaim, domain.EmailClaimCommand]
	tenants   *eventstore.Handler[domain.Tenant, domain.TenantCommand]
	directory *eventstore.Handler[domain.UserDirectory, domain.UserCommand]
	keys      *eventstore.Handler[domain.APIKey, domain.APIKeyCommand]

	// loginGuard is the sign-in backoff (identity_login_backoff.go; nil: disabled).
	loginGuard LoginGuard
}

// NewIdentity returns the identity service for cfg. It computes one password hash (the dummy that
// unknown emails are checked against, so that they take as long as known ones).
func NewIdentity(cfg IdentityConfig) (*Identity, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	keys, err := newTokenKeys(cfg.SigningKey, cfg.PreviousSigningKeys)
	if err != nil {
		return nil, err
	}
	passwords, err := newPasswordHasher(cfg.Password, cfg.MaxConcurrentHashes)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "identity")
	opts := []eventstore.HandlerOption{eventstore.WithClock(cfg.Now), eventstore.WithLogger(log)}
	return &Identity{
		cfg:       cfg,
		log:       log,
		users:     projections.NewUsers(cfg.DB),
		apiKeys:   projections.NewAPIKeys(cfg.DB),
		tokens:    keys,
		passwords: passwords,
		usage:     newUseThrottle(cfg.APIKeyUseInterval),
		keyCache:  newAPIKeyCache(DefaultAPIKeyCacheSize),
		keyChecks: newVersionFlights(),
		claims:    eventstore.NewHandler(cfg.Store, cfg.Registry, domain.EmailClaimDecider(), opts...),
		tenants:   eventstore.NewHandler(cfg.Store, cfg.Registry, domain.TenantDecider(), opts...),
		directory: eventstore.NewHandler(cfg.Store, cfg.Registry, domain.UserDirectoryDecider(),
			append(opts, eventstore.WithMaxRetries(directoryRetries))...),
		keys:       eventstore.NewHandler(cfg.Store, cfg.Registry, domain.APIKeyDecider(), opts...),
		loginGuard: newLoginGuard(cfg.LoginBackoff, cfg.Now),
	}, nil
}

// metadata is the metadata of the events a request by actor causes. The correlation id comes
// from the context (domain.CorrelationID), filled in by the command handler.
func (i *Identity) metadata(_ context.Context, actor domain.Actor) eventstore.Metadata {
	return eventstore.Metadata{Actor: actor}
}

// now is the service's clock.
func (i *Identity) now() time.Time { return i.cfg.Now() }

// foldAggregate loads an aggregate's events and folds them into its state, returning the state
// and the aggregate's version.
func foldAggregate[S, C any](ctx context.Context, store domain.EventStore, reg *domain.Registry, d domain.Decider[S, C], agg domain.AggregateRef) (S, uint64, error) {
	state := d.Initial()
	stored, version, err := store.Load(ctx, agg, 0)
	if err != nil {
		return state, 0, fmt.Errorf("load %s: %w", agg, err)
	}
	for _, env := range stored {
		ev, err := reg.Decode(env)
		if err != nil {
			return state, 0, fmt.Errorf("load %s: event %s: %w", agg, env.ID, err)
		}
		state = d.Evolve(state, ev)
	}
	return state, version, nil
}

// requireManager refuses callers that are not an owner or admin user.
func requireManager(p domain.Principal) error {
	if !p.Authenticated() {
		return domain.Errorf(domain.EUNAUTHORIZED, "Authentication required.")
	}
	if p.UserID == "" || (p.Role != domain.RoleOwner && p.Role != domain.RoleAdmin) {
		return domain.Errorf(domain.EFORBIDDEN, "Only an owner or admin may do this.")
	}
	return nil
}
