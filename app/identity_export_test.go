package app

import (
	"context"
	"log/slog"
	"time"
)

// Test-only access to the identity service's parsers of outside input, for the fuzz tests.

// DecodeIdentityCursorForTest parses a listing cursor.
func DecodeIdentityCursorForTest(cursor string) (time.Time, string, error) {
	c, err := decodeIdentityCursor(cursor)
	return c.CreatedAt, c.ID, err
}

// EncodeIdentityCursorForTest makes a listing cursor.
func EncodeIdentityCursorForTest(at time.Time, id string) string {
	return encodeIdentityCursor(identityCursor{CreatedAt: at, ID: id})
}

// ParsePasswordHashForTest parses a stored password hash.
func ParsePasswordHashForTest(encoded string) error {
	_, _, _, err := parsePasswordHash(encoded)
	return err
}

// TokenVerifierForTest returns the access token verification of an identity service signing
// with signingKey, without its stores, and a function that issues a token.
func TokenVerifierForTest(signingKey []byte) (verify func(ctx context.Context, token string) error, issue func(tenantID, userID string) (string, error), err error) {
	keys, err := newTokenKeys(signingKey, nil)
	if err != nil {
		return nil, nil, err
	}
	cfg := IdentityConfig{}
	cfg.setDefaults()
	i := &Identity{cfg: cfg, log: slog.New(slog.DiscardHandler), tokens: keys}
	verify = func(ctx context.Context, token string) error {
		_, err := i.verifyToken(ctx, token)
		return err
	}
	issue = func(tenantID, userID string) (string, error) {
		t, err := i.issueToken(tenantID, userID, "owner")
		return t.Token, err
	}
	return verify, issue, nil
}
