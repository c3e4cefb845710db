package app

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
)

// Page sizes of the identity listings.
const (
	defaultIdentityPageLimit = 50
	maxIdentityPageLimit     = 200
	// maxIdentityCursorLen bounds an incoming cursor.
	maxIdentityCursorLen = 512
)

// identityCursor is where a page of a listing ordered by (created_at, id) continues: after the row
// (CreatedAt, ID). The zero position is the start.
type identityCursor struct {
	CreatedAt time.Time
	ID        string
}

// encodeIdentityCursor returns the opaque cursor of a position: unpadded base64url of
// "1|<RFC 3339 time>|<id>".
func encodeIdentityCursor(p identityCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte("1|" + p.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + p.ID))
}

// decodeIdentityCursor parses a cursor made by encodeIdentityCursor; "" is the start. Anything else is
// EINVALID. A cursor selects a position only: the listing is still the caller's tenant's.
func decodeIdentityCursor(cursor string) (identityCursor, error) {
	if cursor == "" {
		return identityCursor{}, nil
	}
	bad := domain.Invalid("Invalid cursor.", domain.FieldError{Field: "cursor", Message: "is not a cursor this listing returned"})
	if len(cursor) > maxIdentityCursorLen {
		return identityCursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return identityCursor{}, bad
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 3 || parts[0] != "1" || !domain.IsUUID(parts[2]) {
		return identityCursor{}, bad
	}
	at, err := time.Parse(time.RFC3339Nano, parts[1])
	if err != nil {
		return identityCursor{}, bad
	}
	return identityCursor{CreatedAt: at, ID: strings.ToLower(parts[2])}, nil
}

// identityPageLimit applies the default to 0 and refuses limits outside 1..maxIdentityPageLimit.
func identityPageLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return defaultIdentityPageLimit, nil
	case limit < 0 || limit > maxIdentityPageLimit:
		return 0, domain.Invalid("Invalid limit.", domain.FieldError{Field: "limit", Message: "must be between 1 and 200"})
	}
	return limit, nil
}

// Kinds of idempotent creations, part of the derived ids.
const (
	idempotentUser   = "user"
	idempotentAPIKey = "api_key"
)

// maxIdempotencyKeyLen bounds an Idempotency-Key.
const maxIdempotencyKeyLen = 128

// identityEntityID returns the id of a created user or key: derived from (tenant, kind,
// idempotencyKey) when the caller sent an Idempotency-Key, so that a retry addresses the same
// aggregate (a name-based UUID, version 8, from SHA-256 in the tenant's namespace); else a new
// UUIDv7.
func identityEntityID(tenantID, kind, idempotencyKey string) (string, error) {
	if idempotencyKey == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return "", domain.Errorf(domain.EINTERNAL, "Could not make an id.")
		}
		return id.String(), nil
	}
	if len(idempotencyKey) > maxIdempotencyKeyLen {
		return "", domain.Invalid("Invalid Idempotency-Key.", domain.FieldError{Field: "Idempotency-Key", Message: "must be at most 128 characters"})
	}
	space, err := uuid.Parse(tenantID)
	if err != nil {
		return "", domain.Invalid("Invalid tenant id.", domain.FieldError{Field: "tenant_id", Message: "must be a UUID"})
	}
	return uuid.NewHash(sha256.New(), space, []byte(kind+"\x00"+idempotencyKey), 8).String(), nil
}
