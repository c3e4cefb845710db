package app

import (
	"context"
	"strings"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// maxBearerLen bounds what Authenticate looks at.
const maxBearerLen = 4096

// Authenticate returns the principal of a bearer credential: an API key (it starts with "mck_")
// or an access token (a JWT). Anything that is not a valid, live credential is the same
// EUNAUTHORIZED error; a database that cannot be reached is EUNAVAILABLE. Credentials are never
// logged.
//
// Taking a credential away is immediate on every instance once the write that does it has
// answered:
//
//   - access token: signature, issuer, audience and times, then the user's row in the users read
//     model (one primary-key read in the token's tenant): a deactivated user is refused, and the
//     principal gets the user's current role (a role change applies on the next request, the
//     token's role claim is informative only);
//   - API key: its form, then its keyed hash; a key verified before (apiKeyCache) is accepted
//     when its aggregate's version in the event store is still the one it was verified at (one
//     request to the store: a revocation changes it the moment it is stored; concurrent requests
//     of one key share a check that started after each of them arrived, versionFlights); otherwise the live
//     keys with its prefix (one indexed read of the read model) and a constant-time comparison
//     of hashes, and, when the row is older than the aggregate, the aggregate itself decides.
//     So a revoked key is refused from the moment its revocation is stored, on every instance.
func (i *Identity) Authenticate(ctx context.Context, bearer string) (domain.Principal, error) {
	if bearer == "" || len(bearer) > maxBearerLen {
		return domain.Principal{}, unauthorized()
	}
	if strings.HasPrefix(bearer, APIKeyPrefix) {
		return i.authenticateAPIKey(ctx, bearer)
	}
	return i.authenticateToken(ctx, bearer)
}

// authenticateToken authenticates an access token.
func (i *Identity) authenticateToken(ctx context.Context, token string) (domain.Principal, error) {
	claims, err := i.verifyToken(ctx, token)
	if err != nil {
		return domain.Principal{}, err
	}
	u, err := i.users.Get(ctx, claims.TenantID, claims.Subject)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		i.log.DebugContext(ctx, "access token of an unknown user refused", "tenant_id", claims.TenantID, "user_id", claims.Subject)
		return domain.Principal{}, unauthorized()
	}
	if err != nil {
		return domain.Principal{}, err
	}
	if u.Status != domain.UserStatusActive {
		i.log.DebugContext(ctx, "access token of a deactivated user refused", "tenant_id", u.TenantID, "user_id", u.ID)
		return domain.Principal{}, unauthorized()
	}
	return domain.Principal{TenantID: u.TenantID, UserID: u.ID, Email: u.Email, Role: u.Role}, nil
}

// authenticateAPIKey authenticates an API key and records its use now and then.
func (i *Identity) authenticateAPIKey(ctx context.Context, key string) (domain.Principal, error) {
	prefix, ok := ParseAPIKey(key)
	if !ok {
		return domain.Principal{}, unauthorized()
	}
	hash := hashAPIKey(i.cfg.APIKeyPepper, key)
	if c, ok := i.keyCache.get(hash); ok {
		ref := domain.APIKeyRef(c.TenantID, c.KeyID)
		v, err := i.keyChecks.do(ctx, hash, func(ctx context.Context) (uint64, error) { return i.cfg.Store.Version(ctx, ref) })
		if err == nil && v == c.Version {
			i.recordAPIKeyUse(ctx, c)
			return domain.Principal{TenantID: c.TenantID, APIKeyID: c.KeyID, Role: domain.RoleAPIKey}, nil
		}
		i.keyCache.drop(hash) // changed (used, revoked) or unknown: verify against the read model
	}
	candidates, err := i.apiKeys.Lookup(ctx, prefix)
	if err != nil {
		return domain.Principal{}, err
	}
	var match *projections.APIKeyCredential
	for n := range candidates {
		// Compare with every candidate, so the time does not depend on which one matches.
		if apiKeyHashEqual(hash, candidates[n].KeyHash) && match == nil {
			match = &candidates[n]
		}
	}
	if match == nil {
		i.log.DebugContext(ctx, "API key refused", "prefix", prefix)
		return domain.Principal{}, unauthorized()
	}
	// The read model may lag behind the key's aggregate (a revocation stored a moment ago): when
	// the versions differ, the aggregate decides.
	v, err := i.cfg.Store.Version(ctx, domain.APIKeyRef(match.TenantID, match.KeyID))
	if err != nil {
		return domain.Principal{}, err
	}
	if v != match.Version {
		state, version, err := foldAggregate(ctx, i.cfg.Store, i.cfg.Registry, domain.APIKeyDecider(), domain.APIKeyRef(match.TenantID, match.KeyID))
		if err != nil {
			return domain.Principal{}, err
		}
		if !state.Exists || state.Revoked {
			i.log.DebugContext(ctx, "API key refused: revoked in the event store", "prefix", prefix)
			return domain.Principal{}, unauthorized()
		}
		v = version
	}
	match.Version = v
	i.keyCache.put(hash, *match)
	i.recordAPIKeyUse(ctx, *match)
	return domain.Principal{TenantID: match.TenantID, APIKeyID: match.KeyID, Role: domain.RoleAPIKey}, nil
}

// recordAPIKeyUse appends an api_key.used event when the key's last recorded use is older than
// the interval (in the read model and in this process). It is bookkeeping: a failure is logged,
// never fatal to the request.
func (i *Identity) recordAPIKeyUse(ctx context.Context, c projections.APIKeyCredential) {
	now := i.now()
	if c.LastUsedAt != nil && now.Sub(*c.LastUsedAt) < i.cfg.APIKeyUseInterval {
		return
	}
	if !i.usage.due(c.KeyID, now) {
		return
	}
	actor := domain.Actor{Type: "api_key", ID: c.KeyID}
	_, err := i.keys.Handle(ctx, domain.APIKeyRef(c.TenantID, c.KeyID),
		domain.RecordAPIKeyUse{At: now, MinInterval: i.cfg.APIKeyUseInterval}, i.metadata(ctx, actor))
	if err != nil {
		i.log.WarnContext(ctx, "record API key use", "tenant_id", c.TenantID, "key_id", c.KeyID, "error", err)
	}
}
