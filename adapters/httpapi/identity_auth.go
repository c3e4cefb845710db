package httpapi

import (
	"net/http"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

type signupRequest struct {
	TenantName string `json:"tenant_name"`
	Email      string `json:"email"`
	Password   string `json:"password"`
}

type signupResponse struct {
	TenantID    string `json:"tenant_id"`
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

type meResponse struct {
	UserID   string `json:"user_id,omitempty"`
	TenantID string `json:"tenant_id"`
	Email    string `json:"email,omitempty"`
	Role     string `json:"role"`
	APIKeyID string `json:"api_key_id,omitempty"`
}

// handleSignup is POST /api/v1/signup.
func (s *Server) handleSignup(w http.ResponseWriter, r *http.Request) {
	var in signupRequest
	if err := decodeJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.cfg.Identity.Signup(r.Context(), app.SignupInput{TenantName: in.TenantName, Email: in.Email, Password: in.Password})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, res.Sequence)
	writeJSON(w, http.StatusCreated, signupResponse{TenantID: res.TenantID, UserID: res.UserID,
		AccessToken: res.Token.Token, TokenType: res.Token.TokenType, ExpiresIn: res.Token.ExpiresIn})
}

// handleLogin is POST /api/v1/auth/login.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var in loginRequest
	if err := decodeJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	tok, err := s.cfg.Identity.Login(r.Context(), app.LoginInput{Email: in.Email, Password: in.Password,
		Client: ClientKey(clientOf(r).addr)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: tok.Token, TokenType: tok.TokenType, ExpiresIn: tok.ExpiresIn})
}

// handleMe is GET /api/v1/me: the authenticated principal.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	p := principal(r.Context())
	me := meResponse{TenantID: p.TenantID, Role: p.Role}
	if p.Role == domain.RoleAPIKey {
		me.APIKeyID = p.APIKeyID
	} else {
		me.UserID, me.Email = p.UserID, p.Email
	}
	writeJSON(w, http.StatusOK, me)
}
