package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// FuzzOpenSession: the widget session token check never panics and refuses every token it is
// given with the same EUNAUTHORIZED. The seeds are genuine tokens that fail on their claims (the
// wrong origin, an expired or over-long session) and mutations of them; a mutation that passed
// the signature and every claim would reach the widget lookup, which this test has no store for,
// and crash the fuzzer.
func FuzzOpenSession(f *testing.F) {
	secret := []byte(strings.Repeat("k", app.MinWidgetSecretLen))
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	open, sign := app.SessionOpenerForTest(secret, func() time.Time { return now })
	const origin = "https://shop.example.com"
	wid := uuid.NewString()
	for _, c := range []struct {
		origin   string
		iat, exp time.Time
	}{
		{"https://other.example.com", now, now.Add(5 * time.Minute)}, // another origin
		{origin, now.Add(-time.Hour), now.Add(-50 * time.Minute)},    // expired
		{origin, now, now.Add(24 * time.Hour)},                       // longer than a session may live
	} {
		tok, err := sign(wid, c.origin, c.iat, c.exp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok, origin)
	}
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", origin)
	f.Add("a.b.c", "null")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, token, o string) {
		err := open(t.Context(), token, o)
		if domain.ErrorCode(err) != domain.EUNAUTHORIZED {
			t.Fatalf("token %q from %q: %v, want unauthorized", token, o, err)
		}
		if domain.ErrorMessage(err) != "Invalid, expired or used session." {
			t.Fatalf("the refusal tells why: %q", domain.ErrorMessage(err))
		}
	})
}
