package httpapi

import "github.com/go-chi/chi/v5"

// registerIdentityRoutes registers signup, login, me, users and API keys. (Being built.)
func (s *Server) registerIdentityRoutes(r chi.Router) {}
