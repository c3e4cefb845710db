package httpapi

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/metachat/metachat/domain"
)

// Rate is a budget: Requests per Per, which is also the burst — a client may spend the whole
// budget at once, then gets one more request every Per/Requests.
type Rate struct {
	Requests int
	Per      time.Duration
	// Unlimited switches the budget off.
	Unlimited bool
}

// String renders r as ParseRate reads it ("600/1m0s", "off").
func (r Rate) String() string {
	if r.Unlimited {
		return "off"
	}
	return strconv.Itoa(r.Requests) + "/" + r.Per.String()
}

// ParseRate reads a budget such as "600/1m", "20/1h", "5/s" (a unit alone means one of it), or
// "off".
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "off") {
		return Rate{Unlimited: true}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want REQUESTS/PERIOD such as 600/1m, or off", s)
	}
	requests, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || requests < 1 {
		return Rate{}, fmt.Errorf("rate %q: the request count must be a whole number above 0", s)
	}
	per = strings.TrimSpace(per)
	if per != "" && (per[0] < '0' || per[0] > '9') {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("rate %q: the period must be a positive duration such as 1m", s)
	}
	return Rate{Requests: requests, Per: d}, nil
}

// The budgets, by name (the metrics label and the RateLimit-Policy of each).
const (
	BudgetAPI           = "api"
	BudgetLogin         = "login"
	BudgetSignup        = "signup"
	BudgetWidgetSession = "widget_session"
	BudgetSend          = "send"
)

// DefaultRateLimits returns the default budgets: generous for people and integrations, tight
// where a request is a guess (sign-in), creates something for nobody in particular (sign-up,
// visitor sessions), or writes (sends). Per minute unless said otherwise: API 1,200 per key, user
// or address; login 20 per address; signup 20 per hour per address; widget sessions 120 per
// address; message sends 600 per key or user.
func DefaultRateLimits() RateLimits {
	return RateLimits{
		API:           Rate{Requests: 1200, Per: time.Minute},
		Login:         Rate{Requests: 20, Per: time.Minute},
		Signup:        Rate{Requests: 20, Per: time.Hour},
		WidgetSession: Rate{Requests: 120, Per: time.Minute},
		Send:          Rate{Requests: 600, Per: time.Minute},
		MaxKeys:       DefaultRateLimitKeys,
	}
}

// DefaultRateLimitKeys bounds the keys a MemoryLimiter remembers.
const DefaultRateLimitKeys = 50_000

// operationBudgets names the operations (by operationId) that spend a budget of their own; every
// other operation spends BudgetAPI. A test checks each is an operation of the document.
var operationBudgets = map[string]string{
	"login":              BudgetLogin,
	"signup":             BudgetSignup,
	"startWidgetSession": BudgetWidgetSession,
	"sendMessage":        BudgetSend,
}

// byClientBudgets are the budgets always counted by client address: their requests carry no
// credential (and a caller could make up any account or visitor name).
var byClientBudgets = map[string]bool{BudgetLogin: true, BudgetSignup: true, BudgetWidgetSession: true}

// RateLimits configures the request budgets. Every operation of the contract spends one budget
// per request: its own (login, signup, widget sessions, message sends) or the general one. A
// budget is counted per API key, per user, else per client address (an IPv6 client by its /64,
// see ClientKey); login, signup and widget sessions always per client address. A request over
// budget answers 429 with Retry-After; every limited answer carries RateLimit-Limit,
// RateLimit-Remaining, RateLimit-Reset and RateLimit-Policy.
type RateLimits struct {
	// Disabled switches every budget off (benchmarks, attack-tool runs).
	Disabled bool
	// The budgets; zero values take the defaults (DefaultRateLimits).
	API, Login, Signup, WidgetSession, Send Rate
	// MaxKeys bounds the keys each in-memory budget remembers (default DefaultRateLimitKeys); the
	// least recently seen are forgotten first.
	MaxKeys int
	// NewLimiter builds the limiter of a budget; nil builds a MemoryLimiter, which counts on this
	// instance only. A limiter on a shared store makes the budgets hold across instances.
	NewLimiter func(budget string, r Rate) Limiter
}

func (c *RateLimits) setDefaults() {
	def := DefaultRateLimits()
	for _, b := range []struct{ r, def *Rate }{{&c.API, &def.API}, {&c.Login, &def.Login}, {&c.Signup, &def.Signup},
		{&c.WidgetSession, &def.WidgetSession}, {&c.Send, &def.Send}} {
		if *b.r == (Rate{}) {
			*b.r = *b.def
		}
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = def.MaxKeys
	}
}

func (c RateLimits) validate() error {
	c.setDefaults()
	var errs []error
	for name, r := range c.rates() {
		if !r.Unlimited && (r.Requests < 1 || r.Per <= 0) {
			errs = append(errs, fmt.Errorf("httpapi: rate limit %s (%d per %v): needs at least 1 request per positive period", name, r.Requests, r.Per))
		}
	}
	if c.MaxKeys < 0 {
		errs = append(errs, errors.New("httpapi: RateLimits.MaxKeys must not be negative"))
	}
	return errors.Join(errs...)
}

func (c RateLimits) rates() map[string]Rate {
	return map[string]Rate{BudgetAPI: c.API, BudgetLogin: c.Login, BudgetSignup: c.Signup,
		BudgetWidgetSession: c.WidgetSession, BudgetSend: c.Send}
}

// Limiter spends one request of a key's budget. Implementations are safe for concurrent use.
type Limiter interface {
	Take(ctx context.Context, key string) (Decision, error)
}

// Decision is a Limiter's answer.
type Decision struct {
	// Allowed is false when the budget is spent.
	Allowed bool
	// Limit is the budget's size, Remaining what is left of it after this request.
	Limit, Remaining int
	// Reset is the time until the budget is whole again.
	Reset time.Duration
	// RetryAfter is, for a refused request, the time until one request fits.
	RetryAfter time.Duration
}

// MemoryLimiter is a Limiter counting in this process: a token bucket per key
// (golang.org/x/time/rate), at most maxKeys of them, the least recently used forgotten first.
// A forgotten key starts again with a whole budget, so maxKeys must exceed the clients seen in
// one budget period for the limit to hold under a flood of new keys.
type MemoryLimiter struct {
	rate    Rate
	maxKeys int
	now     func() time.Time

	mu    sync.Mutex
	keys  map[string]*list.Element
	order *list.List // front: most recently used
}

type memoryEntry struct {
	key string
	lim *rate.Limiter
}

// NewMemoryLimiter returns a MemoryLimiter for r remembering at most maxKeys keys (0: the
// default); now is the clock (nil: time.Now).
func NewMemoryLimiter(r Rate, maxKeys int, now func() time.Time) *MemoryLimiter {
	if maxKeys <= 0 {
		maxKeys = DefaultRateLimitKeys
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryLimiter{rate: r, maxKeys: maxKeys, now: now, keys: map[string]*list.Element{}, order: list.New()}
}

// Len returns how many keys the limiter remembers.
func (m *MemoryLimiter) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}

func (m *MemoryLimiter) bucket(key string) *rate.Limiter {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.keys[key]; ok {
		m.order.MoveToFront(e)
		return e.Value.(*memoryEntry).lim
	}
	for m.order.Len() >= m.maxKeys {
		oldest := m.order.Back()
		m.order.Remove(oldest)
		delete(m.keys, oldest.Value.(*memoryEntry).key)
	}
	lim := rate.NewLimiter(rate.Limit(float64(m.rate.Requests)/m.rate.Per.Seconds()), m.rate.Requests)
	m.keys[key] = m.order.PushFront(&memoryEntry{key: key, lim: lim})
	return lim
}

// Take implements Limiter.
func (m *MemoryLimiter) Take(_ context.Context, key string) (Decision, error) {
	if m.rate.Unlimited {
		return Decision{Allowed: true}, nil
	}
	now := m.now()
	lim := m.bucket(key)
	ok := lim.AllowN(now, 1)
	tokens := lim.TokensAt(now)
	perRequest := float64(m.rate.Per) / float64(m.rate.Requests)
	d := Decision{
		Allowed:   ok,
		Limit:     m.rate.Requests,
		Remaining: max(int(math.Floor(tokens)), 0),
		Reset:     time.Duration(math.Max(float64(m.rate.Requests)-tokens, 0) * perRequest),
	}
	if !ok {
		d.RetryAfter = time.Duration(math.Max(1-tokens, 0) * perRequest)
	}
	return d, nil
}

// budget is one configured budget of a server.
type budget struct {
	name     string
	rate     Rate
	lim      Limiter
	byClient bool
}

// newBudgets builds the server's budgets; nil when rate limiting is disabled.
func newBudgets(c RateLimits, now func() time.Time) map[string]*budget {
	if c.Disabled {
		return nil
	}
	out := map[string]*budget{}
	for name, r := range c.rates() {
		if r.Unlimited {
			continue
		}
		var lim Limiter
		if c.NewLimiter != nil {
			lim = c.NewLimiter(name, r)
		} else {
			lim = NewMemoryLimiter(r, c.MaxKeys, now)
		}
		out[name] = &budget{name: name, rate: r, lim: lim, byClient: byClientBudgets[name]}
	}
	return out
}

// budgetOf returns the budget an operation spends (nil: none).
func (s *Server) budgetOf(op *operation) *budget {
	name, ok := operationBudgets[op.ID]
	if !ok {
		name = BudgetAPI
	}
	return s.budgets[name]
}

// limitKey is the identity a request is counted under: its API key, its user, else its client
// address (the only one for the by-client budgets and for requests without a valid credential).
func limitKey(b *budget, r *http.Request, p domain.Principal) string {
	if !b.byClient {
		switch {
		case p.APIKeyID != "":
			return "key:" + p.APIKeyID
		case p.UserID != "":
			return "user:" + p.UserID
		case p.VisitorID != "":
			return "visitor:" + p.TenantID + ":" + p.VisitorID
		}
	}
	return "ip:" + ClientKey(clientOf(r).addr)
}

// allow spends one request of b for the request's identity. It sets the RateLimit headers and
// returns true, or answers 429 and returns false. A failing limiter (a shared store that is down)
// lets the request through and logs a warning: the limits protect capacity, and refusing every
// request would be the outage they are there to prevent.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, b *budget, p domain.Principal) bool {
	if b == nil {
		return true
	}
	d, err := b.lim.Take(r.Context(), limitKey(b, r, p))
	if err != nil {
		s.logger.WarnContext(r.Context(), "rate limiter failed; the request goes through", "budget", b.name, "err", err)
		return true
	}
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.Reset), 10))
	h.Set("RateLimit-Policy", strconv.Itoa(b.rate.Requests)+";w="+strconv.FormatInt(ceilSeconds(b.rate.Per), 10))
	if d.Allowed {
		return true
	}
	h.Set("Retry-After", strconv.FormatInt(max(ceilSeconds(d.RetryAfter), 1), 10))
	s.cfg.Metrics.rateLimited(b.name)
	s.writeError(w, r, domain.Errorf(domain.ERATELIMIT, "Too many requests; try again after the time in the Retry-After header."))
	return false
}

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}
