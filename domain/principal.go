package domain

// Roles a user can have in a tenant, and the role of an API key.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleAgent  = "agent"
	RoleAPIKey = "api_key"
)

// Principal is who makes a request, as established from its credential: the tenant always comes
// from here, never from a request parameter.
type Principal struct {
	TenantID string
	// UserID is set for dashboard users (JWT); APIKeyID for API keys.
	UserID   string
	APIKeyID string
	Email    string
	// Role is RoleOwner, RoleAdmin, RoleAgent or RoleAPIKey.
	Role string
}

// Actor returns the event actor for things this principal causes.
func (p Principal) Actor() Actor {
	if p.APIKeyID != "" {
		return Actor{Type: "api_key", ID: p.APIKeyID}
	}
	return Actor{Type: "user", ID: p.UserID}
}

// Authenticated reports whether the principal carries a tenant.
func (p Principal) Authenticated() bool { return p.TenantID != "" && p.Role != "" }
