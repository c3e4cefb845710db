package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

type userJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

type userListJSON struct {
	Items      []userJSON `json:"items"`
	NextCursor *string    `json:"next_cursor"`
}

type inviteUserRequest struct {
	Email    string `json:"email"`
	Role     string `json:"role"`
	Password string `json:"password"`
}

type updateUserRequest struct {
	Role string `json:"role"`
}

func toUserJSON(u app.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Role: u.Role, Status: u.Status, CreatedAt: u.CreatedAt.UTC()}
}

// identityPage reads the limit and cursor query parameters of an identity listing (the contract
// has validated them; 0 means the default).
func identityPage(r *http.Request) (limit int, cursor string, err error) {
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil {
			return 0, "", domain.Invalid("Invalid limit.", domain.FieldError{Field: "limit", Message: "must be an integer"})
		}
	}
	return limit, q.Get("cursor"), nil
}

// identityNextCursor is the JSON next_cursor: null on the last page.
func identityNextCursor(c string) *string {
	if c == "" {
		return nil
	}
	return &c
}

// handleListUsers is GET /api/v1/users.
func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) {
	limit, cursor, err := identityPage(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.cfg.Identity.ListUsers(r.Context(), principal(r.Context()), app.ListUsersInput{Limit: limit, Cursor: cursor})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := userListJSON{Items: make([]userJSON, 0, len(page.Items)), NextCursor: identityNextCursor(page.NextCursor)}
	for _, u := range page.Items {
		out.Items = append(out.Items, toUserJSON(u))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleInviteUser is POST /api/v1/users.
func (s *Server) handleInviteUser(w http.ResponseWriter, r *http.Request) {
	var in inviteUserRequest
	if err := decodeJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	u, seq, err := s.cfg.Identity.InviteUser(r.Context(), principal(r.Context()), app.InviteUserInput{
		Email: in.Email, Role: in.Role, Password: in.Password, IdempotencyKey: idempotencyKey(r)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, seq)
	writeJSON(w, http.StatusCreated, toUserJSON(u))
}

// handleUpdateUser is PATCH /api/v1/users/{user_id}.
func (s *Server) handleUpdateUser(w http.ResponseWriter, r *http.Request) {
	var in updateUserRequest
	if err := decodeJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	u, seq, err := s.cfg.Identity.UpdateUserRole(r.Context(), principal(r.Context()), chi.URLParam(r, "user_id"), in.Role)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, seq)
	writeJSON(w, http.StatusOK, toUserJSON(u))
}

// handleDeactivateUser is DELETE /api/v1/users/{user_id}.
func (s *Server) handleDeactivateUser(w http.ResponseWriter, r *http.Request) {
	seq, err := s.cfg.Identity.DeactivateUser(r.Context(), principal(r.Context()), chi.URLParam(r, "user_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, seq)
	w.WriteHeader(http.StatusNoContent)
}
