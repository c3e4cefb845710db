package app

import (
	"context"
	"fmt"

	"github.com/metachat/metachat/domain"
)

// maxLoginPasswordBytes bounds the password a login hashes.
const maxLoginPasswordBytes = 4 * MaxPasswordLen

// LoginInput is an email and a password, and where the attempt comes from.
type LoginInput struct {
	Email    string
	Password string
	// Client identifies the caller for the per-client backoff: the HTTP adapter passes its client
	// address (an IPv6 client's /64 network). Empty: the attempt counts for its account only.
	Client string
}

// Login exchanges an email and a password for an access token. An unknown email, a wrong password
// and a deactivated user all answer the same EUNAUTHORIZED error, and take the same time: an
// unknown email is checked against a dummy hash of the same cost.
//
// Repeated failures slow the next attempts down, per account and per client (LoginBackoff): an
// attempt in backoff is refused with ERATELIMIT before any password is checked, alike for known
// and unknown addresses.
//
// Sign-in does not know the tenant, so it reads the user_logins table of the users read model by
// email, through the one narrow row-level security policy that shows metachat_app the row of the
// email it names (see projections.UserProjection).
func (i *Identity) Login(ctx context.Context, in LoginInput) (AccessToken, error) {
	keys := i.loginKeys(in)
	if err := i.beginLogin(ctx, keys); err != nil {
		return AccessToken{}, err
	}
	tok, err := i.login(ctx, in)
	if err == nil {
		i.loginSucceeded(ctx, keys)
	}
	return tok, err
}

// login checks the credentials; every failure counts for the backoff (beginLogin counted it).
func (i *Identity) login(ctx context.Context, in LoginInput) (AccessToken, error) {
	if len(in.Password) > maxLoginPasswordBytes {
		return AccessToken{}, invalidLogin()
	}
	email, err := domain.CanonicalEmail(in.Email)
	if err != nil {
		i.passwords.verifyDummy(ctx, in.Password)
		return AccessToken{}, invalidLogin()
	}
	login, err := i.users.Login(ctx, email)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		i.passwords.verifyDummy(ctx, in.Password)
		return AccessToken{}, invalidLogin()
	}
	if err != nil {
		return AccessToken{}, err
	}
	ok, err := i.passwords.verify(ctx, login.PasswordHash, in.Password)
	if err != nil {
		return AccessToken{}, fmt.Errorf("login of user %s: %w", login.UserID, err)
	}
	if !ok || login.Status != domain.UserStatusActive {
		return AccessToken{}, invalidLogin()
	}
	u, err := i.users.Get(ctx, login.TenantID, login.UserID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return AccessToken{}, invalidLogin()
	}
	if err != nil {
		return AccessToken{}, err
	}
	if u.Status != domain.UserStatusActive {
		return AccessToken{}, invalidLogin()
	}
	return i.issueToken(u.TenantID, u.ID, u.Role)
}

// invalidLogin is the one answer to every failed login.
func invalidLogin() error {
	return domain.Errorf(domain.EUNAUTHORIZED, "Invalid email or password.")
}
