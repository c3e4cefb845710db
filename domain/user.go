package domain

import (
	"strings"
	"time"
)

// UserDirectoryAggregate is the aggregate type name of a tenant's user directory: one aggregate
// per tenant (its id is the tenant id) holding every user of the tenant. Rules that span users —
// the last owner can be neither demoted nor deactivated — are decided on one consistent state, and
// two concurrent changes to a tenant's users conflict and are retried instead of both passing.
const UserDirectoryAggregate = "user_directory"

// Stored event type names of the user directory. Never change them.
const (
	EventUserRegistered  = "user.registered"
	EventUserRoleChanged = "user.role_changed"
	EventUserDeactivated = "user.deactivated"
)

// User statuses.
const (
	UserStatusActive      = "active"
	UserStatusDeactivated = "deactivated"
)

// passwordHashPrefix is how every stored password hash starts (argon2id in PHC format).
const passwordHashPrefix = "$argon2id$"

// UserRegistered records a new user of the tenant. PasswordHash is an argon2id hash in PHC format;
// the password itself is never stored.
type UserRegistered struct {
	UserID       string    `json:"user_id"`
	Email        string    `json:"email"`
	Role         string    `json:"role"`
	PasswordHash string    `json:"password_hash"`
	RegisteredAt time.Time `json:"registered_at"`
}

// EventType implements Event.
func (*UserRegistered) EventType() string { return EventUserRegistered }

// UserRoleChanged records a user's new role.
type UserRoleChanged struct {
	UserID    string    `json:"user_id"`
	Role      string    `json:"role"`
	ChangedAt time.Time `json:"changed_at"`
}

// EventType implements Event.
func (*UserRoleChanged) EventType() string { return EventUserRoleChanged }

// UserDeactivated records that a user may no longer sign in or use their tokens.
type UserDeactivated struct {
	UserID        string    `json:"user_id"`
	DeactivatedAt time.Time `json:"deactivated_at"`
}

// EventType implements Event.
func (*UserDeactivated) EventType() string { return EventUserDeactivated }

// UserEventDefs returns the registry definitions of the user directory's events.
func UserEventDefs() []EventDef {
	return []EventDef{
		{Type: EventUserRegistered, Version: 1, New: func() Event { return new(UserRegistered) }},
		{Type: EventUserRoleChanged, Version: 1, New: func() Event { return new(UserRoleChanged) }},
		{Type: EventUserDeactivated, Version: 1, New: func() Event { return new(UserDeactivated) }},
	}
}

// IdentityEventDefs returns the registry definitions of every identity aggregate: email claims, user
// directories and API keys.
func IdentityEventDefs() []EventDef {
	var defs []EventDef
	defs = append(defs, EmailEventDefs()...)
	defs = append(defs, UserEventDefs()...)
	defs = append(defs, APIKeyEventDefs()...)
	return defs
}

// UserDirectoryRef returns the user directory aggregate of a tenant.
func UserDirectoryRef(tenantID string) AggregateRef {
	return AggregateRef{TenantID: tenantID, Type: UserDirectoryAggregate, ID: tenantID}
}

// DirectoryUser is one user in a tenant's directory.
type DirectoryUser struct {
	ID           string
	Email        string
	Role         string
	Status       string
	PasswordHash string
	CreatedAt    time.Time
}

// UserDirectory is the decided state of a tenant's users. Evolve updates Users in place: the map
// belongs to the fold that built it.
type UserDirectory struct {
	Users map[string]DirectoryUser
}

// ActiveOwners counts the active owners.
func (d UserDirectory) ActiveOwners() int {
	n := 0
	for _, u := range d.Users {
		if u.Role == RoleOwner && u.Status == UserStatusActive {
			n++
		}
	}
	return n
}

// UserCommand is a command addressed to a tenant's user directory. ActorUserID is the user who
// asks; the directory decides what they may do from their current role in it.
type UserCommand interface {
	userCommand()
}

// RegisterUser adds a user. Without an actor it is the sign-up of the tenant's first owner, allowed
// only while the directory is empty; with one, it is an invitation by an active owner or admin,
// for the role admin or agent (nobody is invited as an owner: an owner promotes an existing user).
// Registering an id that exists is ECONFLICT.
type RegisterUser struct {
	UserID       string
	Email        string
	Role         string
	PasswordHash string
	ActorUserID  string
	At           time.Time
}

// ChangeUserRole sets a user's role. Owners may set any role; admins may not touch owners nor make
// anyone an owner. Demoting the last active owner is ECONFLICT.
type ChangeUserRole struct {
	UserID      string
	Role        string
	ActorUserID string
	At          time.Time
}

// DeactivateUser deactivates a user; deactivating a deactivated user changes nothing. Admins may not
// deactivate owners; the last active owner cannot be deactivated (ECONFLICT).
type DeactivateUser struct {
	UserID      string
	ActorUserID string
	At          time.Time
}

func (RegisterUser) userCommand()   {}
func (ChangeUserRole) userCommand() {}
func (DeactivateUser) userCommand() {}

// ValidUserRole reports whether role is a user role (owner, admin or agent).
func ValidUserRole(role string) bool {
	return role == RoleOwner || role == RoleAdmin || role == RoleAgent
}

// UserDirectoryDecider is the user directory aggregate's behaviour.
func UserDirectoryDecider() Decider[UserDirectory, UserCommand] {
	return Decider[UserDirectory, UserCommand]{
		AggregateType: UserDirectoryAggregate,
		Initial:       func() UserDirectory { return UserDirectory{Users: map[string]DirectoryUser{}} },
		Evolve:        evolveUserDirectory,
		Decide:        decideUserDirectory,
	}
}

func evolveUserDirectory(s UserDirectory, e Event) UserDirectory {
	if s.Users == nil {
		s.Users = map[string]DirectoryUser{}
	}
	switch e := e.(type) {
	case *UserRegistered:
		s.Users[e.UserID] = DirectoryUser{ID: e.UserID, Email: e.Email, Role: e.Role, Status: UserStatusActive,
			PasswordHash: e.PasswordHash, CreatedAt: e.RegisteredAt}
	case *UserRoleChanged:
		if u, ok := s.Users[e.UserID]; ok {
			u.Role = e.Role
			s.Users[e.UserID] = u
		}
	case *UserDeactivated:
		if u, ok := s.Users[e.UserID]; ok {
			u.Status = UserStatusDeactivated
			s.Users[e.UserID] = u
		}
	}
	return s
}

func decideUserDirectory(s UserDirectory, c UserCommand) ([]Event, error) {
	switch c := c.(type) {
	case RegisterUser:
		return decideRegisterUser(s, c)
	case ChangeUserRole:
		return decideChangeUserRole(s, c)
	case DeactivateUser:
		return decideDeactivateUser(s, c)
	default:
		return nil, Errorf(EINVALID, "Unknown user command.")
	}
}

func decideRegisterUser(s UserDirectory, c RegisterUser) ([]Event, error) {
	email, err := CanonicalEmail(c.Email)
	if err != nil {
		return nil, err
	}
	var fields []FieldError
	if !IsUUID(c.UserID) {
		fields = append(fields, FieldError{Field: "user_id", Message: "must be a UUID"})
	}
	if !ValidUserRole(c.Role) {
		fields = append(fields, FieldError{Field: "role", Message: "must be owner, admin or agent"})
	}
	if !strings.HasPrefix(c.PasswordHash, passwordHashPrefix) {
		fields = append(fields, FieldError{Field: "password", Message: "must be hashed with argon2id"})
	}
	if len(fields) > 0 {
		return nil, Invalid("Invalid user.", fields...)
	}
	if _, exists := s.Users[c.UserID]; exists {
		return nil, Errorf(ECONFLICT, "The user already exists.")
	}
	for _, u := range s.Users {
		if u.Email == email {
			return nil, Errorf(ECONFLICT, "This email address is already registered.")
		}
	}
	if c.ActorUserID == "" {
		if len(s.Users) > 0 || c.Role != RoleOwner {
			return nil, Errorf(EFORBIDDEN, "Only a tenant's first owner is registered without an inviting user.")
		}
	} else {
		if _, err := activeManager(s, c.ActorUserID); err != nil {
			return nil, err
		}
		if c.Role == RoleOwner {
			return nil, Errorf(EFORBIDDEN, "Nobody is invited as an owner; invite an admin and promote them.")
		}
	}
	return []Event{&UserRegistered{UserID: c.UserID, Email: email, Role: c.Role, PasswordHash: c.PasswordHash,
		RegisteredAt: c.At.UTC()}}, nil
}

func decideChangeUserRole(s UserDirectory, c ChangeUserRole) ([]Event, error) {
	if !ValidUserRole(c.Role) {
		return nil, Invalid("Invalid role.", FieldError{Field: "role", Message: "must be owner, admin or agent"})
	}
	actor, err := activeManager(s, c.ActorUserID)
	if err != nil {
		return nil, err
	}
	target, ok := s.Users[c.UserID]
	if !ok {
		return nil, Errorf(ENOTFOUND, "User not found.")
	}
	if actor.Role != RoleOwner && (target.Role == RoleOwner || c.Role == RoleOwner) {
		return nil, Errorf(EFORBIDDEN, "Only an owner may change an owner's role or make someone an owner.")
	}
	if target.Status != UserStatusActive {
		return nil, Errorf(ECONFLICT, "The user is deactivated.")
	}
	if target.Role == c.Role {
		return nil, nil
	}
	if target.Role == RoleOwner && s.ActiveOwners() <= 1 {
		return nil, Errorf(ECONFLICT, "The last owner cannot be demoted; make another user an owner first.")
	}
	return []Event{&UserRoleChanged{UserID: c.UserID, Role: c.Role, ChangedAt: c.At.UTC()}}, nil
}

func decideDeactivateUser(s UserDirectory, c DeactivateUser) ([]Event, error) {
	actor, err := activeManager(s, c.ActorUserID)
	if err != nil {
		return nil, err
	}
	target, ok := s.Users[c.UserID]
	if !ok {
		return nil, Errorf(ENOTFOUND, "User not found.")
	}
	if actor.Role != RoleOwner && target.Role == RoleOwner {
		return nil, Errorf(EFORBIDDEN, "Only an owner may deactivate an owner.")
	}
	if target.Status != UserStatusActive {
		return nil, nil
	}
	if target.Role == RoleOwner && s.ActiveOwners() <= 1 {
		return nil, Errorf(ECONFLICT, "The last owner cannot be deactivated; make another user an owner first.")
	}
	return []Event{&UserDeactivated{UserID: c.UserID, DeactivatedAt: c.At.UTC()}}, nil
}

// activeManager returns the acting user when they are an active owner or admin, EFORBIDDEN otherwise.
func activeManager(s UserDirectory, actorID string) (DirectoryUser, error) {
	u, ok := s.Users[actorID]
	if !ok || u.Status != UserStatusActive || (u.Role != RoleOwner && u.Role != RoleAdmin) {
		return DirectoryUser{}, Errorf(EFORBIDDEN, "Only an active owner or admin may manage users.")
	}
	return u, nil
}
