package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// registerConversationRoutes registers conversations and messages (conversation_*.go).
func (s *Server) registerConversationRoutes(r chi.Router) {
	s.handle(r, http.MethodGet, "/api/v1/conversations", s.listConversations)
	s.handle(r, http.MethodPost, "/api/v1/conversations", s.createConversation)
	s.handle(r, http.MethodGet, "/api/v1/conversations/{conversation_id}", s.getConversation)
	s.handle(r, http.MethodPatch, "/api/v1/conversations/{conversation_id}", s.updateConversation)
	s.handle(r, http.MethodGet, "/api/v1/conversations/{conversation_id}/messages", s.listMessages)
	s.handle(r, http.MethodPost, "/api/v1/conversations/{conversation_id}/messages", s.sendMessage)
}
