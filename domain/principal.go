package domain

// Roles a user can have in a tenant, and the role of an API key.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleAgent  = "agent"
	RoleAPIKey = "api_key"
	// RoleVisitor is a web chat visitor holding a widget session: it may only write in, and read,
	// its own conversation. No HTTP route accepts it.
	RoleVisitor = "visitor"
)

// Principal is who makes a request, as established from its credential: the tenant always comes
// from here, never from a request parameter.
type Principal struct {
	TenantID string
	// UserID is set for dashboard users (JWT); APIKeyID for API keys.
	UserID   string
	APIKeyID string
	// VisitorID is set for web chat visitors (RoleVisitor): the contact's external id.
	VisitorID string
	Email     string
	// Role is RoleOwner, RoleAdmin, RoleAgent, RoleAPIKey or RoleVisitor.
	Role string
}

// Actor returns the event actor for things this principal causes.
func (p Principal) Actor() Actor {
	if p.APIKeyID != "" {
		return Actor{Type: "api_key", ID: p.APIKeyID}
	}
	if p.Role == RoleVisitor {
		return Actor{Type: "visitor", ID: p.VisitorID}
	}
	return Actor{Type: "user", ID: p.UserID}
}

// Authenticated reports whether the principal carries a tenant.
func (p Principal) Authenticated() bool { return p.TenantID != "" && p.Role != "" }
