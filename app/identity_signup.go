package app

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// SignupInput is a sign-up: a new tenant and its owner.
type SignupInput struct {
	TenantName string
	Email      string
	Password   string
}

// SignupResult is the new tenant, its owner, and an access token for the owner.
type SignupResult struct {
	TenantID string
	UserID   string
	Token    AccessToken
	// Sequence is the stream sequence of the owner's registration.
	Sequence uint64
}

// Signup creates a tenant and its owner and signs the owner in. It claims the email first (unique
// across every tenant: a taken address is ECONFLICT, and of concurrent sign-ups with one address
// exactly one succeeds), then creates the tenant, then registers the owner with an argon2id hash
// of the password, and waits until the users read model has the owner, so the returned token works
// on the next request. A sign-up that failed after its claim is completed by a retry (see
// claimEmail); one that completed is not repeated: signing up again is ECONFLICT, and the owner
// logs in instead.
func (i *Identity) Signup(ctx context.Context, in SignupInput) (SignupResult, error) {
	email, err := domain.CanonicalEmail(in.Email)
	if err != nil {
		return SignupResult{}, err
	}
	if err := validPassword(in.Password); err != nil {
		return SignupResult{}, err
	}
	tenantID, err := uuid.NewV7()
	if err != nil {
		return SignupResult{}, fmt.Errorf("new tenant id: %w", err)
	}
	userID, err := uuid.NewV7()
	if err != nil {
		return SignupResult{}, fmt.Errorf("new user id: %w", err)
	}
	now := i.now()
	create := domain.CreateTenant{TenantID: tenantID.String(), Name: in.TenantName, At: now}
	// Check the tenant name before anything is written (Decide is pure).
	td := domain.TenantDecider()
	if _, err := td.Decide(td.Initial(), create); err != nil {
		return SignupResult{}, err
	}
	hash, err := i.passwords.hash(ctx, in.Password)
	if err != nil {
		return SignupResult{}, err
	}
	claim, err := i.claimEmail(ctx, domain.ClaimEmail{Email: email, TenantID: create.TenantID, UserID: userID.String(),
		Purpose: domain.ClaimForSignup, At: now}, i.metadata(ctx, domain.Actor{Type: "user", ID: userID.String()}))
	if err != nil {
		return SignupResult{}, err
	}
	adopted := claim.TenantID != create.TenantID
	create.TenantID = claim.TenantID
	md := i.metadata(ctx, domain.Actor{Type: "user", ID: claim.UserID})
	tenant := domain.AggregateRef{TenantID: claim.TenantID, Type: domain.TenantAggregate, ID: claim.TenantID}
	if _, err := i.tenants.Handle(ctx, tenant, create, md); err != nil &&
		(!adopted || domain.ErrorCode(err) != domain.ECONFLICT) {
		return SignupResult{}, err
	}
	res, err := i.directory.Handle(ctx, domain.UserDirectoryRef(claim.TenantID), domain.RegisterUser{
		UserID: claim.UserID, Email: email, Role: domain.RoleOwner, PasswordHash: hash, At: now}, md)
	if domain.ErrorCode(err) == domain.ECONFLICT {
		return SignupResult{}, emailTaken()
	}
	if err != nil {
		return SignupResult{}, err
	}
	if err := i.cfg.Waiter.WaitFor(ctx, projections.UsersProjection, res.Version); err != nil {
		return SignupResult{}, err
	}
	tok, err := i.issueToken(claim.TenantID, claim.UserID, domain.RoleOwner)
	if err != nil {
		return SignupResult{}, err
	}
	return SignupResult{TenantID: claim.TenantID, UserID: claim.UserID, Token: tok, Sequence: res.Version}, nil
}
