package app

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/metachat/metachat/domain"
)

// Defaults of LoginBackoff.
const (
	DefaultLoginAccountFailures = 5
	DefaultLoginClientFailures  = 20
	DefaultLoginBaseDelay       = time.Second
	DefaultLoginMaxDelay        = 15 * time.Minute
	DefaultLoginForget          = time.Hour
	DefaultLoginBackoffKeys     = 100_000
)

// LoginBackoff configures how failed sign-ins slow down the next attempts, per account (the
// email, known or not, so the backoff says nothing about which addresses exist) and per client
// (LoginInput.Client). Once a key has AccountFailures (ClientFailures) failures in a row, its next
// attempt must wait BaseDelay after the last one, and each further failure doubles the wait, up
// to MaxDelay. A waiting attempt is refused with ERATELIMIT and a RetryAfter, without checking
// the password. A successful sign-in clears its account's failures (not its client's, so a caller
// cannot reset its address's count by signing in to an account of its own); failures older than
// Forget are forgotten.
type LoginBackoff struct {
	// Disabled switches the backoff off (attack-tool runs that need every answer to be the
	// password check's).
	Disabled bool
	// AccountFailures and ClientFailures are the failures allowed before the backoff starts.
	// Defaults DefaultLoginAccountFailures and DefaultLoginClientFailures.
	AccountFailures int
	ClientFailures  int
	// BaseDelay and MaxDelay bound the wait. Defaults DefaultLoginBaseDelay, DefaultLoginMaxDelay.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// Forget is how long after the last failure a key starts afresh. Default DefaultLoginForget.
	Forget time.Duration
	// MaxKeys bounds the keys the in-memory guard remembers (default DefaultLoginBackoffKeys); the
	// least recently seen are forgotten first.
	MaxKeys int
	// Guard keeps the failure counts and decides the waits; nil keeps them in this process
	// (NewLoginBackoffGuard with this configuration). One on a shared store makes the backoff hold
	// across instances. The limits (AccountFailures, ClientFailures) come with each attempt's keys.
	Guard LoginGuard
}

func (c *LoginBackoff) setDefaults() {
	if c.AccountFailures == 0 {
		c.AccountFailures = DefaultLoginAccountFailures
	}
	if c.ClientFailures == 0 {
		c.ClientFailures = DefaultLoginClientFailures
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = DefaultLoginBaseDelay
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = DefaultLoginMaxDelay
	}
	if c.Forget == 0 {
		c.Forget = DefaultLoginForget
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultLoginBackoffKeys
	}
}

func (c LoginBackoff) validate() error {
	c.setDefaults()
	if c.AccountFailures < 1 || c.ClientFailures < 1 || c.BaseDelay <= 0 || c.MaxDelay < c.BaseDelay || c.Forget < c.MaxDelay || c.MaxKeys < 1 {
		return errors.New("login backoff: failures must be at least 1, delays positive with MaxDelay ≥ BaseDelay, Forget ≥ MaxDelay, MaxKeys at least 1")
	}
	return nil
}

// LoginGuard decides whether a sign-in attempt may go ahead and learns how it ended. Keys are
// opaque (hashes); limit is the failures a key may have before its attempts are delayed.
type LoginGuard interface {
	// Attempt reserves an attempt for every key, counting it as a failure until Done says
	// otherwise (so concurrent attempts cannot overrun the limit), or returns how long the caller
	// must wait when a key is in backoff (nothing is reserved then).
	Attempt(ctx context.Context, keys []LoginKey) (wait time.Duration, err error)
	// Succeeded undoes the reservation of a successful attempt: the keys that reset lose all
	// their failures, the others the one reserved.
	Succeeded(ctx context.Context, keys []LoginKey) error
}

// LoginKey is one key of a sign-in attempt and its limit.
type LoginKey struct {
	Key string
	// Limit is the failures allowed before the backoff starts.
	Limit int
	// ResetOnSuccess clears the key's failures when the attempt succeeds (accounts).
	ResetOnSuccess bool
}

// MemoryLoginGuard is the LoginGuard of one process.
type MemoryLoginGuard struct {
	cfg LoginBackoff
	now func() time.Time

	mu    sync.Mutex
	keys  map[string]*list.Element
	order *list.List // front: most recently used
}

type loginFailures struct {
	key   string
	count int
	last  time.Time
}

// NewLoginBackoffGuard returns the in-memory guard for cfg (zero fields take the defaults), on the
// clock now (nil: time.Now).
func NewLoginBackoffGuard(cfg LoginBackoff, now func() time.Time) *MemoryLoginGuard {
	cfg.setDefaults()
	if now == nil {
		now = time.Now
	}
	return &MemoryLoginGuard{cfg: cfg, now: now, keys: map[string]*list.Element{}, order: list.New()}
}

// Len returns how many keys the guard remembers.
func (g *MemoryLoginGuard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.order.Len()
}

// newLoginGuard returns the guard cfg asks for: none when disabled, cfg.Guard when set, else an
// in-memory one.
func newLoginGuard(cfg LoginBackoff, now func() time.Time) LoginGuard {
	switch {
	case cfg.Disabled:
		return nil
	case cfg.Guard != nil:
		return cfg.Guard
	}
	return NewLoginBackoffGuard(cfg, now)
}

// entry returns key's failures (nil: none), forgetting them when they are too old. mu is held.
func (g *MemoryLoginGuard) entry(key string, now time.Time) *loginFailures {
	e, ok := g.keys[key]
	if !ok {
		return nil
	}
	f := e.Value.(*loginFailures)
	if now.Sub(f.last) >= g.cfg.Forget {
		g.order.Remove(e)
		delete(g.keys, key)
		return nil
	}
	g.order.MoveToFront(e)
	return f
}

// wait is how long a key with f must still wait at now.
func (g *MemoryLoginGuard) wait(f *loginFailures, limit int, now time.Time) time.Duration {
	if f == nil || f.count < limit {
		return 0
	}
	delay := g.cfg.MaxDelay
	if n := f.count - limit; n < 30 {
		delay = min(g.cfg.BaseDelay<<n, g.cfg.MaxDelay)
	}
	return max(f.last.Add(delay).Sub(now), 0)
}

// Attempt implements LoginGuard.
func (g *MemoryLoginGuard) Attempt(_ context.Context, keys []LoginKey) (time.Duration, error) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		wait = max(wait, g.wait(g.entry(k.Key, now), k.Limit, now))
	}
	if wait > 0 {
		return wait, nil
	}
	for _, k := range keys {
		f := g.entry(k.Key, now)
		if f == nil {
			for g.order.Len() >= g.cfg.MaxKeys {
				oldest := g.order.Back()
				g.order.Remove(oldest)
				delete(g.keys, oldest.Value.(*loginFailures).key)
			}
			f = &loginFailures{key: k.Key}
			g.keys[k.Key] = g.order.PushFront(f)
		}
		f.count++
		f.last = now
	}
	return 0, nil
}

// Succeeded implements LoginGuard.
func (g *MemoryLoginGuard) Succeeded(_ context.Context, keys []LoginKey) error {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range keys {
		f := g.entry(k.Key, now)
		if f == nil {
			continue
		}
		if f.count--; k.ResetOnSuccess || f.count <= 0 {
			g.order.Remove(g.keys[k.Key])
			delete(g.keys, k.Key)
		}
	}
	return nil
}

// loginKeys are the backoff keys of an attempt: its account (the hashed, lower-cased address as
// typed, so unknown and malformed addresses count exactly like known ones) and its client.
func (i *Identity) loginKeys(in LoginInput) []LoginKey {
	email := strings.ToLower(strings.TrimSpace(in.Email))
	if c, err := domain.CanonicalEmail(in.Email); err == nil {
		email = c
	}
	keys := []LoginKey{{Key: "account:" + loginKeyHash(email), Limit: i.cfg.LoginBackoff.AccountFailures, ResetOnSuccess: true}}
	if in.Client != "" {
		keys = append(keys, LoginKey{Key: "client:" + loginKeyHash(in.Client), Limit: i.cfg.LoginBackoff.ClientFailures})
	}
	return keys
}

// loginKeyHash keeps addresses out of the guard's memory and bounds the keys' size.
func loginKeyHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// beginLogin asks the guard for an attempt. A guard that fails lets the attempt through (the
// HTTP layer's rate limit still holds) and logs a warning.
func (i *Identity) beginLogin(ctx context.Context, keys []LoginKey) error {
	if i.loginGuard == nil {
		return nil
	}
	wait, err := i.loginGuard.Attempt(ctx, keys)
	if err != nil {
		i.log.WarnContext(ctx, "login backoff unavailable; the attempt goes ahead", "err", err)
		return nil
	}
	if wait > 0 {
		return &domain.Error{Code: domain.ERATELIMIT, Message: "Too many failed sign-in attempts; try again later.",
			Err: loginWait(wait)}
	}
	return nil
}

// loginSucceeded tells the guard an attempt succeeded.
func (i *Identity) loginSucceeded(ctx context.Context, keys []LoginKey) {
	if i.loginGuard == nil {
		return
	}
	if err := i.loginGuard.Succeeded(ctx, keys); err != nil {
		i.log.WarnContext(ctx, "login backoff unavailable", "err", err)
	}
}

// loginWait is the cause of a refused attempt: its RetryAfter is what the HTTP adapter answers in
// Retry-After.
type loginWait time.Duration

func (w loginWait) Error() string { return fmt.Sprintf("sign-in backoff: wait %v", time.Duration(w)) }

// RetryAfter returns how long to wait before the next attempt.
func (w loginWait) RetryAfter() time.Duration { return time.Duration(w) }
