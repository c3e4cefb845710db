package app

import (
	"context"
	"strings"
	"time"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// APIKey is an API key as listings show it: never its secret.
type APIKey struct {
	ID     string
	Name   string
	Prefix string
	// CreatedAt is when the key was created; LastUsedAt when a use was last recorded (at most once
	// per IdentityConfig.APIKeyUseInterval), nil when never.
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// CreatedAPIKey is a new key with its secret, shown this once.
type CreatedAPIKey struct {
	APIKey
	// Key is the whole key, "mck_…", to send as "Authorization: Bearer <Key>".
	Key string
}

// CreateAPIKeyInput names a new key. IdempotencyKey, when set, makes a retry find the key it
// created.
type CreateAPIKeyInput struct {
	Name           string
	IdempotencyKey string
}

// ListAPIKeysInput asks for a page of keys: at most Limit (default 50, at most 200) after Cursor
// (the NextCursor of the previous page; "" for the first).
type ListAPIKeysInput struct {
	Limit  int
	Cursor string
}

// APIKeyPage is a page of keys; NextCursor is "" on the last page.
type APIKeyPage struct {
	Items      []APIKey
	NextCursor string
}

// CreateAPIKey creates an API key for the caller's tenant (owners and admins only) and returns it
// with its secret, which is shown only here: events and read models keep its keyed hash. It
// returns once the api_keys read model has the key, so it authenticates from the next request on.
//
// With an Idempotency-Key the key id is derived from the tenant and the key, so a retry addresses
// the key it created. A secret cannot be shown twice, so such a retry is ECONFLICT, naming the key
// that exists: the client that lost the answer revokes that key and creates another.
func (i *Identity) CreateAPIKey(ctx context.Context, p domain.Principal, in CreateAPIKeyInput) (CreatedAPIKey, uint64, error) {
	if err := requireManager(p); err != nil {
		return CreatedAPIKey{}, 0, err
	}
	name, err := domain.ValidAPIKeyName(in.Name)
	if err != nil {
		return CreatedAPIKey{}, 0, err
	}
	keyID, err := identityEntityID(p.TenantID, idempotentAPIKey, in.IdempotencyKey)
	if err != nil {
		return CreatedAPIKey{}, 0, err
	}
	key, prefix, err := newAPIKey()
	if err != nil {
		return CreatedAPIKey{}, 0, err
	}
	res, err := i.keys.Handle(ctx, domain.APIKeyRef(p.TenantID, keyID), domain.CreateAPIKey{
		KeyID: keyID, Name: name, Prefix: prefix, KeyHash: hashAPIKey(i.cfg.APIKeyPepper, key), At: i.now(),
	}, i.metadata(ctx, p.Actor()))
	if domain.ErrorCode(err) == domain.ECONFLICT && in.IdempotencyKey != "" {
		return CreatedAPIKey{}, 0, domain.Errorf(domain.ECONFLICT,
			"An API key (id %s) was already created with this Idempotency-Key; its secret is shown only once. "+
				"Revoke it if its secret was lost, and create a new one.", keyID)
	}
	if err != nil {
		return CreatedAPIKey{}, 0, err
	}
	if err := i.cfg.Waiter.WaitFor(ctx, projections.APIKeysProjection, res.Version); err != nil {
		return CreatedAPIKey{}, 0, err
	}
	s := res.State
	return CreatedAPIKey{APIKey: APIKey{ID: s.ID, Name: s.Name, Prefix: s.Prefix, CreatedAt: s.CreatedAt}, Key: key}, res.Version, nil
}

// ListAPIKeys returns a page of the caller's tenant's live keys, oldest first, without secrets.
// Owners and admins only.
func (i *Identity) ListAPIKeys(ctx context.Context, p domain.Principal, in ListAPIKeysInput) (APIKeyPage, error) {
	if err := requireManager(p); err != nil {
		return APIKeyPage{}, err
	}
	limit, err := identityPageLimit(in.Limit)
	if err != nil {
		return APIKeyPage{}, err
	}
	after, err := decodeIdentityCursor(in.Cursor)
	if err != nil {
		return APIKeyPage{}, err
	}
	rows, err := i.apiKeys.List(ctx, p.TenantID, after.CreatedAt, after.ID, limit+1)
	if err != nil {
		return APIKeyPage{}, err
	}
	page := APIKeyPage{Items: make([]APIKey, 0, min(len(rows), limit))}
	for n, r := range rows {
		if n == limit {
			last := rows[n-1]
			page.NextCursor = encodeIdentityCursor(identityCursor{CreatedAt: last.CreatedAt, ID: last.ID})
			break
		}
		page.Items = append(page.Items, APIKey{ID: r.ID, Name: r.Name, Prefix: r.Prefix, CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt})
	}
	return page, nil
}

// RevokeAPIKey revokes a key of the caller's tenant (owners and admins only); revoking a revoked
// key succeeds, a key of another tenant is ENOTFOUND. It returns only once the api_keys read
// model, which authentication reads on every request, has applied the revocation: from then on the
// key fails on every instance. When the read model lags beyond the wait, it answers EUNAVAILABLE
// (the revocation is stored and takes effect shortly; repeating the call waits again).
func (i *Identity) RevokeAPIKey(ctx context.Context, p domain.Principal, keyID string) (uint64, error) {
	if err := requireManager(p); err != nil {
		return 0, err
	}
	keyID = strings.ToLower(keyID)
	if !domain.IsUUID(keyID) {
		return 0, domain.Errorf(domain.ENOTFOUND, "API key not found.")
	}
	res, err := i.keys.Handle(ctx, domain.APIKeyRef(p.TenantID, keyID), domain.RevokeAPIKey{At: i.now()}, i.metadata(ctx, p.Actor()))
	if err != nil {
		return 0, err
	}
	if err := i.cfg.Waiter.WaitFor(ctx, projections.APIKeysProjection, res.Version); err != nil {
		return 0, err
	}
	return res.Version, nil
}
