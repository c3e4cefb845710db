package app_test

import (
	"testing"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// identityTestPassword is the password the identity tests sign up with.
const identityTestPassword = "correct horse battery"

// identityProjections are the read models the identity service needs.
func identityProjections(reg *domain.Registry) []projections.Projection {
	return []projections.Projection{
		projections.NewTenantProjection(reg),
		projections.NewUserProjection(reg),
		projections.NewAPIKeyProjection(reg),
	}
}

// identityHarness is an env with an identity service on it.
type identityHarness struct {
	*env
	id         *app.Identity
	signingKey []byte
	pepper     []byte
}

// newIdentityHarness starts an env with the identity projections and an identity service with
// fresh keys; edit changes its configuration first.
func newIdentityHarness(t *testing.T, edit func(*app.IdentityConfig)) *identityHarness {
	t.Helper()
	h := &identityHarness{env: newEnv(t, identityProjections)}
	var err error
	if h.signingKey, err = app.GenerateSigningKey(); err != nil {
		t.Fatal(err)
	}
	if h.pepper, err = app.GenerateAPIKeyPepper(); err != nil {
		t.Fatal(err)
	}
	h.id = h.identity(t, edit)
	return h
}

// identity returns another identity service on the harness's env (another instance).
func (h *identityHarness) identity(t *testing.T, edit func(*app.IdentityConfig)) *app.Identity {
	t.Helper()
	cfg := app.IdentityConfig{
		Store: h.Store, Registry: h.Registry, DB: h.Pools.App, Waiter: h.Waiter,
		SigningKey: h.signingKey, APIKeyPepper: h.pepper, Logger: h.Logger,
	}
	if edit != nil {
		edit(&cfg)
	}
	id, err := app.NewIdentity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// signup signs up a tenant whose owner has email and identityTestPassword.
func (h *identityHarness) signup(t *testing.T, email string) app.SignupResult {
	t.Helper()
	res, err := h.id.Signup(t.Context(), app.SignupInput{TenantName: "Acme " + email, Email: email, Password: identityTestPassword})
	if err != nil {
		t.Fatalf("sign up %s: %v", email, err)
	}
	return res
}

// principal authenticates a bearer credential, failing the test when it does not authenticate.
func (h *identityHarness) principal(t *testing.T, bearer string) domain.Principal {
	t.Helper()
	p, err := h.id.Authenticate(t.Context(), bearer)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return p
}

// refused checks that a bearer credential does not authenticate.
func (h *identityHarness) refused(t *testing.T, bearer, why string) {
	t.Helper()
	p, err := h.id.Authenticate(t.Context(), bearer)
	if domain.ErrorCode(err) != domain.EUNAUTHORIZED {
		t.Errorf("%s: authenticated as %+v (%v), want unauthorized", why, p, err)
	}
}

// invite invites a user with identityTestPassword.
func (h *identityHarness) invite(t *testing.T, p domain.Principal, email, role string) app.User {
	t.Helper()
	u, _, err := h.id.InviteUser(t.Context(), p, app.InviteUserInput{Email: email, Role: role, Password: identityTestPassword})
	if err != nil {
		t.Fatalf("invite %s as %s: %v", email, role, err)
	}
	return u
}

// login logs a user in with identityTestPassword and returns their principal.
func (h *identityHarness) login(t *testing.T, email string) domain.Principal {
	t.Helper()
	tok, err := h.id.Login(t.Context(), app.LoginInput{Email: email, Password: identityTestPassword})
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	return h.principal(t, tok.Token)
}
