package app

import (
	"context"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// claimEmail gives c.Email to (c.TenantID, c.UserID) by appending email.claimed to the address's
// claim aggregate at version 0: of two writers claiming one address, exactly one succeeds, in any
// tenant, on any instance. It returns the claim to continue with.
//
// A claim is written before the user it is for, so a write that fails in between (a crash, a lost
// connection) leaves a claim without a user. Such a claim is adopted by the next write of the same
// kind for that address: a sign-up adopts a sign-up's claim; an invitation adopts an invitation's
// claim in the same tenant. The write then continues with the claim's tenant and user ids, so a
// retried sign-up or invitation completes instead of being refused forever. Adoption needs the
// claimed user to be absent from the claimed tenant's directory; two writers adopting one claim at
// once both go on, and registering the user (at one version of one directory) lets exactly one
// of them finish. A claim whose user exists is final: the address is taken (ECONFLICT).
func (i *Identity) claimEmail(ctx context.Context, c domain.ClaimEmail, md eventstore.Metadata) (domain.ClaimEmail, error) {
	ref := domain.EmailClaimRef(c.Email)
	_, err := i.claims.Handle(ctx, ref, c, md)
	if err == nil {
		return c, nil // claimed now, or claimed before by this very tenant and user
	}
	if domain.ErrorCode(err) != domain.ECONFLICT {
		return domain.ClaimEmail{}, err
	}
	held, _, lerr := foldAggregate(ctx, i.cfg.Store, i.cfg.Registry, domain.EmailClaimDecider(), ref)
	if lerr != nil {
		return domain.ClaimEmail{}, lerr
	}
	if !held.Claimed || held.Purpose != c.Purpose || (c.Purpose == domain.ClaimForInvite && held.TenantID != c.TenantID) {
		return domain.ClaimEmail{}, emailTaken()
	}
	dir, _, lerr := foldAggregate(ctx, i.cfg.Store, i.cfg.Registry, domain.UserDirectoryDecider(), domain.UserDirectoryRef(held.TenantID))
	if lerr != nil {
		return domain.ClaimEmail{}, lerr
	}
	if _, exists := dir.Users[held.UserID]; exists {
		return domain.ClaimEmail{}, emailTaken()
	}
	i.log.InfoContext(ctx, "adopting an email claim left without its user", "tenant_id", held.TenantID, "user_id", held.UserID)
	c.TenantID, c.UserID = held.TenantID, held.UserID
	return c, nil
}

// emailTaken is the answer when an address belongs to someone already.
func emailTaken() error {
	return domain.Errorf(domain.ECONFLICT, "This email address is already registered.")
}
