package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// registerWidgetRoutes registers widget configuration (staff) and the public widget routes.
func (s *Server) registerWidgetRoutes(r chi.Router) {
	s.handle(r, http.MethodGet, "/api/v1/widgets", s.handleListWidgets)
	s.handle(r, http.MethodPost, "/api/v1/widgets", s.handleCreateWidget)
	s.handle(r, http.MethodGet, "/api/v1/widgets/{widget_id}", s.handleGetWidget)
	s.handle(r, http.MethodPut, "/api/v1/widgets/{widget_id}", s.handleUpdateWidget)
	public := r.With(s.widgetCORS)
	s.handle(public, http.MethodGet, "/api/v1/widget/config", s.handleWidgetConfig)
	s.handle(public, http.MethodPost, "/api/v1/widget/sessions", s.handleStartWidgetSession)
	public.Options("/api/v1/widget/sessions", s.handleWidgetPreflight)
	public.Options("/api/v1/widget/config", s.handleWidgetPreflight)
}

type widgetSettingsJSON struct {
	Name                 string              `json:"name"`
	AllowedOrigins       []string            `json:"allowed_origins"`
	Colors               domain.WidgetColors `json:"colors"`
	Greeting             string              `json:"greeting"`
	Position             string              `json:"position"`
	IdentityVerification bool                `json:"identity_verification"`
	AssistantEnabled     *bool               `json:"assistant_enabled"`
}

func (j widgetSettingsJSON) settings() domain.WidgetSettings {
	assistant := true
	if j.AssistantEnabled != nil {
		assistant = *j.AssistantEnabled
	}
	return domain.WidgetSettings{Name: j.Name, AllowedOrigins: j.AllowedOrigins, Colors: j.Colors, Greeting: j.Greeting,
		Position: j.Position, IdentityVerification: j.IdentityVerification, AssistantEnabled: assistant}
}

type widgetJSON struct {
	ID                   string              `json:"id"`
	Name                 string              `json:"name"`
	AllowedOrigins       []string            `json:"allowed_origins"`
	Colors               domain.WidgetColors `json:"colors"`
	Greeting             string              `json:"greeting"`
	Position             string              `json:"position"`
	IdentityVerification bool                `json:"identity_verification"`
	AssistantEnabled     bool                `json:"assistant_enabled"`
	IdentitySecret       string              `json:"identity_secret,omitempty"`
	CreatedAt            time.Time           `json:"created_at"`
	UpdatedAt            time.Time           `json:"updated_at"`
}

func widgetOut(w app.Widget, withSecret bool) widgetJSON {
	j := widgetJSON{ID: w.ID, Name: w.Settings.Name, AllowedOrigins: w.Settings.AllowedOrigins, Colors: w.Settings.Colors,
		Greeting: w.Settings.Greeting, Position: w.Settings.Position, IdentityVerification: w.Settings.IdentityVerification,
		AssistantEnabled: w.Settings.AssistantEnabled, CreatedAt: w.CreatedAt.UTC(), UpdatedAt: w.UpdatedAt.UTC()}
	if withSecret {
		j.IdentitySecret = w.IdentitySecret
	}
	return j
}

type widgetListJSON struct {
	Items      []widgetJSON `json:"items"`
	NextCursor *string      `json:"next_cursor"`
}

// handleListWidgets is GET /api/v1/widgets.
func (s *Server) handleListWidgets(w http.ResponseWriter, r *http.Request) {
	limit, cursor, err := identityPage(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.cfg.Widgets.ListWidgets(r.Context(), principal(r.Context()), app.ListWidgetsInput{Limit: limit, Cursor: cursor})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := widgetListJSON{Items: make([]widgetJSON, 0, len(page.Items)), NextCursor: identityNextCursor(page.NextCursor)}
	for _, wd := range page.Items {
		out.Items = append(out.Items, widgetOut(wd, false))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleCreateWidget is POST /api/v1/widgets.
func (s *Server) handleCreateWidget(w http.ResponseWriter, r *http.Request) {
	var in widgetSettingsJSON
	if err := decodeJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	wd, seq, err := s.cfg.Widgets.CreateWidget(r.Context(), principal(r.Context()), in.settings(), idempotencyKey(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, seq)
	writeJSON(w, http.StatusCreated, widgetOut(wd, true))
}

// handleGetWidget is GET /api/v1/widgets/{widget_id}.
func (s *Server) handleGetWidget(w http.ResponseWriter, r *http.Request) {
	wd, err := s.cfg.Widgets.GetWidget(r.Context(), principal(r.Context()), chi.URLParam(r, "widget_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, widgetOut(wd, true))
}

// handleUpdateWidget is PUT /api/v1/widgets/{widget_id}.
func (s *Server) handleUpdateWidget(w http.ResponseWriter, r *http.Request) {
	var in widgetSettingsJSON
	if err := decodeJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	wd, seq, err := s.cfg.Widgets.UpdateWidget(r.Context(), principal(r.Context()), chi.URLParam(r, "widget_id"), in.settings())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, seq)
	writeJSON(w, http.StatusOK, widgetOut(wd, true))
}

// widgetCORS lets exactly a widget's allowed origins read the public widget routes: when the
// request names a widget (query widget_id) and its Origin is one of that widget's, the answer —
// success or problem — allows that origin; any other origin gets no CORS headers, so its browser
// cannot read the answer. A successful answer has checked the origin already (the handler allows
// it, see allowOrigin), so the widget is looked up here only for preflights and for problems.
func (s *Server) widgetCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		allowed := func() bool {
			return origin != "" && s.cfg.Widgets.AllowedOrigin(r.Context(), r.URL.Query().Get("widget_id"), origin)
		}
		if r.Method == http.MethodOptions {
			if allowed() {
				w.Header().Set("Access-Control-Allow-Origin", origin)
				w.Header().Set("Access-Control-Max-Age", "600")
			}
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(&corsOnProblem{ResponseWriter: w, allowed: allowed, origin: origin}, r)
	})
}

// corsOnProblem allows the origin on a problem answer when the widget allows it, deciding only
// when the answer is a problem.
type corsOnProblem struct {
	http.ResponseWriter
	allowed func() bool
	origin  string
	wrote   bool
}

func (c *corsOnProblem) WriteHeader(status int) {
	if !c.wrote {
		c.wrote = true
		h := c.Header()
		if status >= 400 && h.Get("Access-Control-Allow-Origin") == "" && c.allowed() {
			h.Set("Access-Control-Allow-Origin", c.origin)
		}
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *corsOnProblem) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

// allowOrigin allows the request's origin on a successful answer of a public widget route: the
// use case has just checked it against the widget's origins.
func allowOrigin(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "" {
		w.Header().Set("Access-Control-Allow-Origin", origin)
	}
}

// handleWidgetPreflight answers a CORS preflight of a public widget route: 204 with the allowed
// method and header for one of the widget's origins (widgetCORS set the origin), 403 otherwise.
func (s *Server) handleWidgetPreflight(w http.ResponseWriter, r *http.Request) {
	if w.Header().Get("Access-Control-Allow-Origin") == "" {
		s.writeError(w, r, domain.Errorf(domain.EFORBIDDEN, "This origin may not use the widget."))
		return
	}
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
	w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
	w.WriteHeader(http.StatusNoContent)
}

type publicWidgetJSON struct {
	WidgetID             string              `json:"widget_id"`
	Name                 string              `json:"name"`
	Colors               domain.WidgetColors `json:"colors"`
	Greeting             string              `json:"greeting"`
	Position             string              `json:"position"`
	IdentityVerification bool                `json:"identity_verification"`
}

func publicWidgetOut(p app.PublicWidget) publicWidgetJSON {
	return publicWidgetJSON{WidgetID: p.ID, Name: p.Name, Colors: p.Colors, Greeting: p.Greeting, Position: p.Position,
		IdentityVerification: p.IdentityVerification}
}

// handleWidgetConfig is GET /api/v1/widget/config.
func (s *Server) handleWidgetConfig(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Widgets.PublicConfig(r.Context(), r.URL.Query().Get("widget_id"), r.Header.Get("Origin"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	allowOrigin(w, r)
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, publicWidgetOut(p))
}

type widgetSessionRequest struct {
	WidgetID       string `json:"widget_id"`
	VisitorID      string `json:"visitor_id"`
	ConversationID string `json:"conversation_id"`
	UserHash       string `json:"user_hash"`
}

type widgetSessionJSON struct {
	Token          string           `json:"token"`
	VisitorID      string           `json:"visitor_id"`
	ConversationID string           `json:"conversation_id"`
	ExpiresAt      time.Time        `json:"expires_at"`
	Widget         publicWidgetJSON `json:"widget"`
}

// handleStartWidgetSession is POST /api/v1/widget/sessions.
func (s *Server) handleStartWidgetSession(w http.ResponseWriter, r *http.Request) {
	var in widgetSessionRequest
	if err := decodeJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if q := r.URL.Query().Get("widget_id"); q != "" && q != in.WidgetID {
		s.writeError(w, r, domain.Invalid("The widget_id of the query and of the body differ.",
			domain.FieldError{Field: "widget_id", Message: "must equal the body's widget_id"}))
		return
	}
	sess, err := s.cfg.Widgets.StartSession(r.Context(), app.StartSessionInput{
		WidgetID: in.WidgetID, VisitorID: in.VisitorID, ConversationID: in.ConversationID, UserHash: in.UserHash,
		Origin: r.Header.Get("Origin"),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	allowOrigin(w, r)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, widgetSessionJSON{Token: sess.Token, VisitorID: sess.VisitorID,
		ConversationID: sess.ConversationID, ExpiresAt: sess.ExpiresAt.UTC(), Widget: publicWidgetOut(sess.Widget)})
}
