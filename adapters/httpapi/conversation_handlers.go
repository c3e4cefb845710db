package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// GET /api/v1/conversations
func (s *Server) listConversations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := convQueryInt(q, "limit")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.cfg.Conversations.List(r.Context(), principal(r.Context()), app.ListConversationsInput{
		Status: q.Get("status"), Query: q.Get("q"), Limit: limit, Cursor: q.Get("cursor"),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := conversationListJSON{Items: make([]conversationJSON, len(page.Items))}
	for i, c := range page.Items {
		out.Items[i] = toConversationJSON(c)
	}
	if page.NextCursor != "" {
		out.NextCursor = &page.NextCursor
	}
	writeJSON(w, http.StatusOK, out)
}

// createConversationRequest is the contract's CreateConversationRequest.
type createConversationRequest struct {
	Channel          string         `json:"channel"`
	Contact          domain.Contact `json:"contact"`
	AssistantEnabled bool           `json:"assistant_enabled"`
}

// POST /api/v1/conversations: 201 with the conversation, also for a retry with the same
// Idempotency-Key (the same conversation, as it is now).
func (s *Server) createConversation(w http.ResponseWriter, r *http.Request) {
	var req createConversationRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.cfg.Conversations.Create(r.Context(), principal(r.Context()), app.CreateConversationInput{
		Channel: req.Channel, Contact: req.Contact, AssistantEnabled: req.AssistantEnabled, IdempotencyKey: idempotencyKey(r),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, c.Version)
	w.Header().Set("Location", "/api/v1/conversations/"+c.ID)
	writeJSON(w, http.StatusCreated, toConversationJSON(c))
}

// GET /api/v1/conversations/{conversation_id}
func (s *Server) getConversation(w http.ResponseWriter, r *http.Request) {
	c, err := s.cfg.Conversations.Get(r.Context(), principal(r.Context()), chi.URLParam(r, "conversation_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toConversationJSON(c))
}

// updateConversationRequest is the contract's UpdateConversationRequest. AssigneeID is raw to
// tell an absent field (no change) from null (unassign).
type updateConversationRequest struct {
	Status           *string         `json:"status"`
	AssistantEnabled *bool           `json:"assistant_enabled"`
	AssigneeID       json.RawMessage `json:"assignee_id"`
}

// PATCH /api/v1/conversations/{conversation_id}
func (s *Server) updateConversation(w http.ResponseWriter, r *http.Request) {
	var req updateConversationRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	in := app.UpdateConversationInput{Status: req.Status, AssistantEnabled: req.AssistantEnabled}
	if len(req.AssigneeID) > 0 {
		in.SetAssignee = true
		if string(req.AssigneeID) != "null" {
			if err := json.Unmarshal(req.AssigneeID, &in.AssigneeID); err != nil {
				s.writeError(w, r, domain.Invalid("Invalid assignee.", domain.FieldError{Field: "assignee_id", Message: "must be a UUID or null"}))
				return
			}
		}
	}
	c, err := s.cfg.Conversations.Update(r.Context(), principal(r.Context()), chi.URLParam(r, "conversation_id"), in)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, c.Version)
	writeJSON(w, http.StatusOK, toConversationJSON(c))
}
