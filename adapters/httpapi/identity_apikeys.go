package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/metachat/metachat/app"
)

type apiKeyJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

type apiKeyListJSON struct {
	Items      []apiKeyJSON `json:"items"`
	NextCursor *string      `json:"next_cursor"`
}

type createdAPIKeyJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Key       string    `json:"key"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
}

type createAPIKeyRequest struct {
	Name string `json:"name"`
}

// handleListAPIKeys is GET /api/v1/api-keys.
func (s *Server) handleListAPIKeys(w http.ResponseWriter, r *http.Request) {
	limit, cursor, err := identityPage(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.cfg.Identity.ListAPIKeys(r.Context(), principal(r.Context()), app.ListAPIKeysInput{Limit: limit, Cursor: cursor})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := apiKeyListJSON{Items: make([]apiKeyJSON, 0, len(page.Items)), NextCursor: identityNextCursor(page.NextCursor)}
	for _, k := range page.Items {
		j := apiKeyJSON{ID: k.ID, Name: k.Name, Prefix: k.Prefix, CreatedAt: k.CreatedAt.UTC()}
		if k.LastUsedAt != nil {
			at := k.LastUsedAt.UTC()
			j.LastUsedAt = &at
		}
		out.Items = append(out.Items, j)
	}
	writeJSON(w, http.StatusOK, out)
}

// handleCreateAPIKey is POST /api/v1/api-keys. The answer holds the key's secret, the only time
// it is shown.
func (s *Server) handleCreateAPIKey(w http.ResponseWriter, r *http.Request) {
	var in createAPIKeyRequest
	if err := decodeJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	k, seq, err := s.cfg.Identity.CreateAPIKey(r.Context(), principal(r.Context()), app.CreateAPIKeyInput{
		Name: in.Name, IdempotencyKey: idempotencyKey(r)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, seq)
	writeJSON(w, http.StatusCreated, createdAPIKeyJSON{ID: k.ID, Name: k.Name, Key: k.Key, Prefix: k.Prefix, CreatedAt: k.CreatedAt.UTC()})
}

// handleRevokeAPIKey is DELETE /api/v1/api-keys/{key_id}. It answers once the revocation is in
// effect on every instance.
func (s *Server) handleRevokeAPIKey(w http.ResponseWriter, r *http.Request) {
	seq, err := s.cfg.Identity.RevokeAPIKey(r.Context(), principal(r.Context()), chi.URLParam(r, "key_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, seq)
	w.WriteHeader(http.StatusNoContent)
}
