package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// registerIdentityRoutes registers signup, login, me, users and API keys (identity_*.go).
func (s *Server) registerIdentityRoutes(r chi.Router) {
	s.handle(r, http.MethodPost, "/api/v1/signup", s.handleSignup)
	s.handle(r, http.MethodPost, "/api/v1/auth/login", s.handleLogin)
	s.handle(r, http.MethodGet, "/api/v1/me", s.handleMe)
	s.handle(r, http.MethodGet, "/api/v1/users", s.handleListUsers)
	s.handle(r, http.MethodPost, "/api/v1/users", s.handleInviteUser)
	s.handle(r, http.MethodPatch, "/api/v1/users/{user_id}", s.handleUpdateUser)
	s.handle(r, http.MethodDelete, "/api/v1/users/{user_id}", s.handleDeactivateUser)
	s.handle(r, http.MethodGet, "/api/v1/api-keys", s.handleListAPIKeys)
	s.handle(r, http.MethodPost, "/api/v1/api-keys", s.handleCreateAPIKey)
	s.handle(r, http.MethodDelete, "/api/v1/api-keys/{key_id}", s.handleRevokeAPIKey)
}
