package app_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

func TestSignupLoginMe(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	res := h.signup(t, "Ada@Example.com")
	if !domain.IsUUID(res.TenantID) || !domain.IsUUID(res.UserID) || res.Sequence == 0 {
		t.Fatalf("signup result %+v", res)
	}
	if res.Token.TokenType != "Bearer" || res.Token.ExpiresIn != 3600 || res.Token.Token == "" {
		t.Errorf("token %+v", res.Token)
	}
	want := domain.Principal{TenantID: res.TenantID, UserID: res.UserID, Email: "ada@example.com", Role: domain.RoleOwner}
	if p := h.principal(t, res.Token.Token); p != want {
		t.Errorf("signup token is %+v, want %+v", p, want)
	}
	if p := h.login(t, "  ADA@example.COM "); p != want {
		t.Errorf("login token is %+v, want %+v", p, want)
	}
	// Another instance (same keys, same read models) accepts the token too.
	if p, err := h.identity(t, nil).Authenticate(t.Context(), res.Token.Token); err != nil || p != want {
		t.Errorf("other instance: %+v, %v", p, err)
	}
}

func TestSignupValidatesBeforeWriting(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	ctx := t.Context()
	before, err := h.Store.LastSequence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []app.SignupInput{
		{TenantName: "Acme", Email: "not an email", Password: identityTestPassword},
		{TenantName: "Acme", Email: "ada@example.com", Password: "short"},
		{TenantName: "  ", Email: "ada@example.com", Password: identityTestPassword},
	} {
		if _, err := h.id.Signup(ctx, in); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("signup %+v: %v, want invalid", in, err)
		}
	}
	if after, _ := h.Store.LastSequence(ctx); after != before {
		t.Errorf("invalid sign-ups wrote %d events", after-before)
	}
}

func TestSignupDuplicateEmail(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	ctx := t.Context()
	first := h.signup(t, "grace@example.com")
	_, err := h.id.Signup(ctx, app.SignupInput{TenantName: "Other", Email: "Grace@Example.com ", Password: "another password"})
	if domain.ErrorCode(err) != domain.ECONFLICT {
		t.Fatalf("second sign-up: %v, want conflict", err)
	}
	// Nor can another tenant invite the address.
	other := h.signup(t, "linus@example.com")
	owner := h.principal(t, other.Token.Token)
	if _, _, err := h.id.InviteUser(ctx, owner, app.InviteUserInput{Email: "grace@example.com", Role: domain.RoleAgent, Password: identityTestPassword}); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Errorf("invite of a taken address: %v, want conflict", err)
	}
	if p := h.login(t, "grace@example.com"); p.TenantID != first.TenantID {
		t.Errorf("the address now signs in to %s, want %s", p.TenantID, first.TenantID)
	}
}

func TestConcurrentSignupsWithOneEmail(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	const n = 10
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		wins    []app.SignupResult
		winners []string
		codes   []string
	)
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			password := "password number " + string(rune('a'+k))
			res, err := h.id.Signup(context.Background(), app.SignupInput{TenantName: "Race", Email: "race@example.com", Password: password})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins = append(wins, res)
				winners = append(winners, password)
				return
			}
			codes = append(codes, domain.ErrorCode(err))
		}()
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d sign-ups succeeded, want exactly 1 (errors %v)", len(wins), codes)
	}
	if slices.ContainsFunc(codes, func(c string) bool { return c != domain.ECONFLICT }) {
		t.Errorf("losers' errors %v, want all conflict", codes)
	}
	tok, err := h.id.Login(t.Context(), app.LoginInput{Email: "race@example.com", Password: winners[0]})
	if err != nil {
		t.Fatalf("the winner cannot log in: %v", err)
	}
	if p := h.principal(t, tok.Token); p.TenantID != wins[0].TenantID || p.UserID != wins[0].UserID {
		t.Errorf("login gives %+v, want the winner %+v", p, wins[0])
	}
}

func TestSignupCompletesAnOrphanClaim(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	ctx := t.Context()
	// A sign-up that stopped right after its claim: the claim exists, the tenant and user do not.
	claims := eventstore.NewHandler(h.Store, h.Registry, domain.EmailClaimDecider())
	tenantID, userID := uuid.NewString(), uuid.NewString()
	if _, err := claims.Handle(ctx, domain.EmailClaimRef("orphan@example.com"), domain.ClaimEmail{
		Email: "orphan@example.com", TenantID: tenantID, UserID: userID, Purpose: domain.ClaimForSignup, At: time.Now(),
	}, eventstore.Metadata{}); err != nil {
		t.Fatal(err)
	}
	res, err := h.id.Signup(ctx, app.SignupInput{TenantName: "Retried", Email: "orphan@example.com", Password: identityTestPassword})
	if err != nil {
		t.Fatalf("retried sign-up: %v", err)
	}
	if res.TenantID != tenantID || res.UserID != userID {
		t.Errorf("retried sign-up made %s/%s, want the claim's %s/%s", res.TenantID, res.UserID, tenantID, userID)
	}
	if p := h.login(t, "orphan@example.com"); p.UserID != userID || p.Role != domain.RoleOwner {
		t.Errorf("login %+v", p)
	}
	// Once complete, the address is taken.
	if _, err := h.id.Signup(ctx, app.SignupInput{TenantName: "Again", Email: "orphan@example.com", Password: identityTestPassword}); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Errorf("sign-up after completion: %v, want conflict", err)
	}
	// An invitation's orphan claim is not adopted by a sign-up.
	if _, err := claims.Handle(ctx, domain.EmailClaimRef("invited@example.com"), domain.ClaimEmail{
		Email: "invited@example.com", TenantID: tenantID, UserID: uuid.NewString(), Purpose: domain.ClaimForInvite, At: time.Now(),
	}, eventstore.Metadata{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.id.Signup(ctx, app.SignupInput{TenantName: "Steal", Email: "invited@example.com", Password: identityTestPassword}); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Errorf("sign-up over an invitation's claim: %v, want conflict", err)
	}
}

func TestLoginFailuresAreIdentical(t *testing.T) {
	// Not parallel: it measures times.
	h := newIdentityHarness(t, nil)
	ctx := t.Context()
	res := h.signup(t, "owner@example.com")
	owner := h.principal(t, res.Token.Token)
	gone := h.invite(t, owner, "gone@example.com", domain.RoleAgent)
	if _, err := h.id.DeactivateUser(ctx, owner, gone.ID); err != nil {
		t.Fatal(err)
	}
	cases := map[string]app.LoginInput{
		"unknown email":    {Email: "nobody@example.com", Password: identityTestPassword},
		"wrong password":   {Email: "owner@example.com", Password: "not the password"},
		"deactivated user": {Email: "gone@example.com", Password: identityTestPassword},
		"malformed email":  {Email: "owner", Password: identityTestPassword},
	}
	var want string
	took := map[string]time.Duration{}
	for name, in := range cases {
		var best time.Duration
		for range 5 {
			start := time.Now()
			_, err := h.id.Login(ctx, in)
			d := time.Since(start)
			if best == 0 || d < best {
				best = d
			}
			if domain.ErrorCode(err) != domain.EUNAUTHORIZED {
				t.Fatalf("%s: %v, want unauthorized", name, err)
			}
			if want == "" {
				want = err.Error()
			}
			if err.Error() != want {
				t.Errorf("%s: %q differs from %q", name, err.Error(), want)
			}
		}
		took[name] = best
	}
	// Every failure pays for one password hash: none is much faster than a wrong password (without
	// the dummy hash an unknown email would answer in about a millisecond).
	for name, d := range took {
		if d < took["wrong password"]/4 {
			t.Errorf("%s took %v, a wrong password %v: the difference shows which emails exist", name, d, took["wrong password"])
		}
	}
	t.Logf("login failure times (best of 5): %v", took)
}
