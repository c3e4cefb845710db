package app

import (
	"context"
	"strings"
	"time"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// User is a user of a tenant as the API shows it.
type User struct {
	ID        string
	Email     string
	Role      string
	Status    string
	CreatedAt time.Time
}

// InviteUserInput adds a user with a role (admin or agent) and an initial password.
// IdempotencyKey, when set, makes a retry return the original user instead of a second one.
type InviteUserInput struct {
	Email          string
	Role           string
	Password       string
	IdempotencyKey string
}

// ListUsersInput asks for a page of users: at most Limit (default 50, at most 200) after Cursor
// (the NextCursor of the previous page; "" for the first).
type ListUsersInput struct {
	Limit  int
	Cursor string
}

// UserPage is a page of users; NextCursor is "" on the last page.
type UserPage struct {
	Items      []User
	NextCursor string
}

// InviteUser adds a user to the caller's tenant. Owners and admins may invite admins and agents;
// nobody is invited as an owner (EFORBIDDEN). The email is claimed across all tenants first (a
// taken address is ECONFLICT). With an Idempotency-Key, the user id is derived from the tenant
// and the key, so a retry finds the user it created and returns it (the same key with another
// email is ECONFLICT). It returns once the users read model has the user, with the
// stream sequence of the write.
func (i *Identity) InviteUser(ctx context.Context, p domain.Principal, in InviteUserInput) (User, uint64, error) {
	if err := requireManager(p); err != nil {
		return User{}, 0, err
	}
	email, err := domain.CanonicalEmail(in.Email)
	if err != nil {
		return User{}, 0, err
	}
	if err := validPassword(in.Password); err != nil {
		return User{}, 0, err
	}
	userID, err := identityEntityID(p.TenantID, idempotentUser, in.IdempotencyKey)
	if err != nil {
		return User{}, 0, err
	}
	now := i.now()
	reg := domain.RegisterUser{UserID: userID, Email: email, Role: in.Role, ActorUserID: p.UserID, At: now}
	dirRef := domain.UserDirectoryRef(p.TenantID)
	// Check the invitation against the directory before claiming the address: a refused invitation
	// must not leave a claim behind. A retry of an earlier invitation returns its user.
	dir, version, err := foldAggregate(ctx, i.cfg.Store, i.cfg.Registry, domain.UserDirectoryDecider(), dirRef)
	if err != nil {
		return User{}, 0, err
	}
	if u, exists := dir.Users[userID]; exists {
		return i.replayInvite(ctx, u, reg, version)
	}
	check := reg
	check.PasswordHash = "$argon2id$unchecked"
	if _, err := domain.UserDirectoryDecider().Decide(dir, check); err != nil {
		return User{}, 0, err
	}
	if reg.PasswordHash, err = i.passwords.hash(ctx, in.Password); err != nil {
		return User{}, 0, err
	}
	md := i.metadata(ctx, p.Actor())
	claim, err := i.claimEmail(ctx, domain.ClaimEmail{Email: email, TenantID: p.TenantID, UserID: userID,
		Purpose: domain.ClaimForInvite, At: now}, md)
	if err != nil {
		return User{}, 0, err
	}
	reg.UserID = claim.UserID
	res, err := i.directory.Handle(ctx, dirRef, reg, md)
	if domain.ErrorCode(err) == domain.ECONFLICT {
		// A concurrent retry with the same key registered it first, or the address was taken.
		dir, version, lerr := foldAggregate(ctx, i.cfg.Store, i.cfg.Registry, domain.UserDirectoryDecider(), dirRef)
		if lerr != nil {
			return User{}, 0, lerr
		}
		if u, exists := dir.Users[reg.UserID]; exists && in.IdempotencyKey != "" {
			return i.replayInvite(ctx, u, reg, version)
		}
		return User{}, 0, err
	}
	if err != nil {
		return User{}, 0, err
	}
	if err := i.cfg.Waiter.WaitFor(ctx, projections.UsersProjection, res.Version); err != nil {
		return User{}, 0, err
	}
	return directoryUser(res.State.Users[reg.UserID]), res.Version, nil
}

// replayInvite answers a retried invitation with the user it created (as it is now: its role may
// have changed since), if it was for the same email.
func (i *Identity) replayInvite(ctx context.Context, u domain.DirectoryUser, reg domain.RegisterUser, version uint64) (User, uint64, error) {
	if u.Email != reg.Email {
		return User{}, 0, domain.Errorf(domain.ECONFLICT, "This Idempotency-Key was used for another request.")
	}
	if err := i.cfg.Waiter.WaitFor(ctx, projections.UsersProjection, version); err != nil {
		return User{}, 0, err
	}
	return directoryUser(u), version, nil
}

// ListUsers returns a page of the caller's tenant's users, oldest first. Owners and admins only.
func (i *Identity) ListUsers(ctx context.Context, p domain.Principal, in ListUsersInput) (UserPage, error) {
	if err := requireManager(p); err != nil {
		return UserPage{}, err
	}
	limit, err := identityPageLimit(in.Limit)
	if err != nil {
		return UserPage{}, err
	}
	after, err := decodeIdentityCursor(in.Cursor)
	if err != nil {
		return UserPage{}, err
	}
	rows, err := i.users.List(ctx, p.TenantID, after.CreatedAt, after.ID, limit+1)
	if err != nil {
		return UserPage{}, err
	}
	page := UserPage{Items: make([]User, 0, min(len(rows), limit))}
	for n, r := range rows {
		if n == limit {
			last := rows[n-1]
			page.NextCursor = encodeIdentityCursor(identityCursor{CreatedAt: last.CreatedAt, ID: last.ID})
			break
		}
		page.Items = append(page.Items, User{ID: r.ID, Email: r.Email, Role: r.Role, Status: r.Status, CreatedAt: r.CreatedAt})
	}
	return page, nil
}

// UpdateUserRole sets the role of a user of the caller's tenant. Owners may set any role; admins
// may not change an owner's role nor make anyone an owner (EFORBIDDEN); the last active owner
// cannot be demoted (ECONFLICT); a deactivated user's role cannot change (ECONFLICT); a user of
// another tenant is ENOTFOUND. It returns once the users read model has the change.
func (i *Identity) UpdateUserRole(ctx context.Context, p domain.Principal, userID, role string) (User, uint64, error) {
	if err := requireManager(p); err != nil {
		return User{}, 0, err
	}
	userID = strings.ToLower(userID)
	if !domain.IsUUID(userID) {
		return User{}, 0, domain.Errorf(domain.ENOTFOUND, "User not found.")
	}
	res, err := i.directory.Handle(ctx, domain.UserDirectoryRef(p.TenantID),
		domain.ChangeUserRole{UserID: userID, Role: role, ActorUserID: p.UserID, At: i.now()}, i.metadata(ctx, p.Actor()))
	if err != nil {
		return User{}, 0, err
	}
	if err := i.cfg.Waiter.WaitFor(ctx, projections.UsersProjection, res.Version); err != nil {
		return User{}, 0, err
	}
	return directoryUser(res.State.Users[userID]), res.Version, nil
}

// DeactivateUser deactivates a user of the caller's tenant: they can no longer log in, and their
// access tokens fail from the next request on, on every instance, because it returns only once the
// users read model (which authentication reads on every request) has the change. Deactivating a
// deactivated user succeeds. Admins may not deactivate owners (EFORBIDDEN); the last active owner
// cannot be deactivated (ECONFLICT); a user of another tenant is ENOTFOUND.
func (i *Identity) DeactivateUser(ctx context.Context, p domain.Principal, userID string) (uint64, error) {
	if err := requireManager(p); err != nil {
		return 0, err
	}
	userID = strings.ToLower(userID)
	if !domain.IsUUID(userID) {
		return 0, domain.Errorf(domain.ENOTFOUND, "User not found.")
	}
	res, err := i.directory.Handle(ctx, domain.UserDirectoryRef(p.TenantID),
		domain.DeactivateUser{UserID: userID, ActorUserID: p.UserID, At: i.now()}, i.metadata(ctx, p.Actor()))
	if err != nil {
		return 0, err
	}
	if err := i.cfg.Waiter.WaitFor(ctx, projections.UsersProjection, res.Version); err != nil {
		return 0, err
	}
	return res.Version, nil
}

func directoryUser(u domain.DirectoryUser) User {
	return User{ID: u.ID, Email: u.Email, Role: u.Role, Status: u.Status, CreatedAt: u.CreatedAt}
}
