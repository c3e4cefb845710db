package app_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// backoffClock is a settable clock for the sign-in backoff.
type backoffClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *backoffClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *backoffClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func randomSuffix() string { return uuid.NewString()[:8] }

// retryAfter returns the wait a refused sign-in asks for (0: not a backoff refusal).
func retryAfter(err error) time.Duration {
	var w interface{ RetryAfter() time.Duration }
	if domain.ErrorCode(err) == domain.ERATELIMIT && errors.As(err, &w) {
		return w.RetryAfter()
	}
	return 0
}

// TestLoginBackoffPerAccount: after AccountFailures failures an account's attempts wait, the
// wait doubles with each further failure, a waiting attempt is refused even with the right
// password (without checking it), and after a success the account starts afresh. An unknown
// address is treated exactly alike, so the backoff tells nobody which addresses exist.
func TestLoginBackoffPerAccount(t *testing.T) {
	clock := &backoffClock{now: time.Now()}
	h := newIdentityHarness(t, func(c *app.IdentityConfig) {
		c.LoginBackoff = app.LoginBackoff{AccountFailures: 3, BaseDelay: time.Second, MaxDelay: 4 * time.Second}
		c.Now = clock.Now
	})
	known := "backoff-" + randomSuffix() + "@example.com"
	h.signup(t, known)
	unknown := "nobody-" + randomSuffix() + "@example.com"

	var refusals []error
	for _, email := range []string{known, unknown} {
		login := func(pw string) error {
			_, err := h.id.Login(t.Context(), app.LoginInput{Email: email, Password: pw, Client: "198.51.100.1"})
			return err
		}
		for i := range 3 {
			if err := login("wrong password"); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
				t.Fatalf("%s: failure %d: %v, want unauthorized", email, i+1, err)
			}
		}
		err := login(identityTestPassword)
		if retryAfter(err) != time.Second {
			t.Fatalf("%s: 4th attempt: %v (wait %v), want a 1s backoff", email, err, retryAfter(err))
		}
		refusals = append(refusals, err)
		clock.Add(time.Second)
		if err := login("wrong again"); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
			t.Fatalf("%s: after the wait: %v", email, err)
		}
		if w := retryAfter(login(identityTestPassword)); w != 2*time.Second {
			t.Fatalf("%s: the wait did not double: %v", email, w)
		}
		clock.Add(2 * time.Second)
		_ = login("wrong")
		_ = login("wrong") // refused (4s), not counted
		clock.Add(10 * time.Second)
		_ = login("wrong")
		if w := retryAfter(login(identityTestPassword)); w != 4*time.Second {
			t.Fatalf("%s: the wait is not capped at MaxDelay: %v", email, w)
		}
	}
	if domain.ErrorMessage(refusals[0]) != domain.ErrorMessage(refusals[1]) {
		t.Errorf("refusals differ: known %q, unknown %q", domain.ErrorMessage(refusals[0]), domain.ErrorMessage(refusals[1]))
	}
	// After the wait, the right password signs in and clears the account's failures.
	clock.Add(4 * time.Second)
	if _, err := h.id.Login(t.Context(), app.LoginInput{Email: known, Password: identityTestPassword}); err != nil {
		t.Fatalf("the right password after the wait: %v", err)
	}
	for i := range 3 {
		if _, err := h.id.Login(t.Context(), app.LoginInput{Email: known, Password: "wrong"}); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
			t.Fatalf("after a success, failure %d: %v (the count was not reset)", i+1, err)
		}
	}
}

// TestLoginBackoffPerClient: one client guessing across many accounts is slowed down after
// ClientFailures failures, whatever the accounts; another client is not; its own successful
// sign-ins neither count against it nor reset its failures.
func TestLoginBackoffPerClient(t *testing.T) {
	clock := &backoffClock{now: time.Now()}
	h := newIdentityHarness(t, func(c *app.IdentityConfig) {
		c.LoginBackoff = app.LoginBackoff{AccountFailures: 100, ClientFailures: 4}
		c.Now = clock.Now
	})
	mine := "mine-" + randomSuffix() + "@example.com"
	h.signup(t, mine)
	const attacker, other = "2001:db8:1:2::/64", "203.0.113.5"
	login := func(client, email, pw string) error {
		_, err := h.id.Login(t.Context(), app.LoginInput{Email: email, Password: pw, Client: client})
		return err
	}
	for i := range 2 {
		if err := login(attacker, fmt.Sprintf("victim-%d@example.com", i), "guess"); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	for range 3 {
		if err := login(attacker, mine, identityTestPassword); err != nil {
			t.Fatalf("own account: %v", err)
		}
	}
	for i := 2; i < 4; i++ {
		if err := login(attacker, fmt.Sprintf("victim-%d@example.com", i), "guess"); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
			t.Fatalf("guess %d: %v (successes counted as failures?)", i, err)
		}
	}
	if w := retryAfter(login(attacker, "victim-9@example.com", "guess")); w != app.DefaultLoginBaseDelay {
		t.Fatalf("5th failure from one client: wait %v, want %v", w, app.DefaultLoginBaseDelay)
	}
	if w := retryAfter(login(attacker, mine, identityTestPassword)); w == 0 {
		t.Fatal("a client in backoff signed in")
	}
	if err := login(other, "victim-9@example.com", "guess"); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
		t.Fatalf("another client: %v", err)
	}
}

// TestLoginBackoffHoldsUnderConcurrency: attempts at once cannot overrun the limit: each is
// counted as a failure before its password is checked.
func TestLoginBackoffHoldsUnderConcurrency(t *testing.T) {
	h := newIdentityHarness(t, func(c *app.IdentityConfig) { c.LoginBackoff = app.LoginBackoff{AccountFailures: 3} })
	email := "burst-" + randomSuffix() + "@example.com"
	h.signup(t, email)
	var checked, refused atomic.Int32
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			_, err := h.id.Login(t.Context(), app.LoginInput{Email: email, Password: "wrong"})
			switch domain.ErrorCode(err) {
			case domain.EUNAUTHORIZED:
				checked.Add(1)
			case domain.ERATELIMIT:
				refused.Add(1)
			default:
				t.Errorf("unexpected %v", err)
			}
		})
	}
	wg.Wait()
	if checked.Load() != 3 || refused.Load() != 27 {
		t.Errorf("%d passwords checked, %d refused; want 3 and 27", checked.Load(), refused.Load())
	}
}

// TestLoginBackoffDisabled: with the backoff off, failures never refuse an attempt.
func TestLoginBackoffDisabled(t *testing.T) {
	h := newIdentityHarness(t, func(c *app.IdentityConfig) { c.LoginBackoff = app.LoginBackoff{Disabled: true, AccountFailures: 1} })
	email := "free-" + randomSuffix() + "@example.com"
	h.signup(t, email)
	for range 4 {
		_, _ = h.id.Login(t.Context(), app.LoginInput{Email: email, Password: "wrong"})
	}
	if _, err := h.id.Login(t.Context(), app.LoginInput{Email: email, Password: identityTestPassword}); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryLoginGuardForgetsAndIsBounded: failures older than Forget are forgotten, and the
// guard never remembers more than MaxKeys keys.
func TestMemoryLoginGuardForgetsAndIsBounded(t *testing.T) {
	clock := &backoffClock{now: time.Now()}
	g := app.NewLoginBackoffGuard(app.LoginBackoff{MaxKeys: 50, Forget: time.Hour, MaxDelay: time.Minute}, clock.Now)
	key := []app.LoginKey{{Key: "k", Limit: 2}}
	for range 2 {
		if w, _ := g.Attempt(t.Context(), key); w != 0 {
			t.Fatal("refused early")
		}
	}
	if w, _ := g.Attempt(t.Context(), key); w == 0 {
		t.Fatal("not refused after the limit")
	}
	clock.Add(time.Hour)
	if w, _ := g.Attempt(t.Context(), key); w != 0 {
		t.Fatal("failures an hour old still count")
	}
	for i := range 1000 {
		_, _ = g.Attempt(t.Context(), []app.LoginKey{{Key: fmt.Sprint("flood-", i), Limit: 5}})
	}
	if n := g.Len(); n != 50 {
		t.Errorf("%d keys remembered, want 50", n)
	}
}
