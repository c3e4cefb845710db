package httpapi

import "github.com/go-chi/chi/v5"

// registerConversationRoutes registers conversations and messages. (Being built.)
func (s *Server) registerConversationRoutes(r chi.Router) {}
