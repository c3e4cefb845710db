package httpapi

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// GET /api/v1/conversations/{conversation_id}/messages
func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := convQueryInt(q, "limit")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var after uint64
	if v := q.Get("after_seq"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			s.writeError(w, r, domain.Invalid("Invalid query parameter.", domain.FieldError{Field: "after_seq", Message: "must be a non-negative integer"}))
			return
		}
	}
	msgs, err := s.cfg.Conversations.ListMessages(r.Context(), principal(r.Context()), chi.URLParam(r, "conversation_id"),
		app.ListMessagesInput{AfterSeq: after, Limit: limit})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := messageListJSON{Items: make([]messageJSON, len(msgs))}
	for i, m := range msgs {
		out.Items[i] = toMessageJSON(m)
	}
	writeJSON(w, http.StatusOK, out)
}

// sendMessageRequest is the contract's SendMessageRequest.
type sendMessageRequest struct {
	Text            string `json:"text"`
	ClientMessageID string `json:"client_message_id"`
}

// POST /api/v1/conversations/{conversation_id}/messages: 201 with a new message, 200 with the
// original when its client_message_id (or Idempotency-Key) was sent before.
func (s *Server) sendMessage(w http.ResponseWriter, r *http.Request) {
	var req sendMessageRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	sent, err := s.cfg.Conversations.SendMessage(r.Context(), principal(r.Context()), chi.URLParam(r, "conversation_id"),
		app.SendMessageInput{Text: req.Text, ClientMessageID: req.ClientMessageID, IdempotencyKey: idempotencyKey(r)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, sent.Sequence)
	status := http.StatusOK
	if sent.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, toMessageJSON(sent.Message))
}
