package app

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
)

// Visitor session tokens are JWTs signed with HMAC-SHA256 (alg "HS256", the only algorithm
// accepted) under a key derived from the server secret: only Metachat itself issues and checks
// them, so a symmetric key is enough. Claims: iss, aud ("metachat-widget": never accepted as an
// access token, whose audience differs), sub (visitor id), tid (tenant), wid (widget), cid
// (conversation), org (the browser origin the session was started from), iat, nbf, exp and jti
// (a random nonce). A token is good for one socket handshake: OpenSession records its nonce in the
// shared nonce store, and a second handshake with it fails on any instance.
const (
	sessionTokenAudience = "metachat-widget"
	sessionTokenMethod   = "HS256"
)

// sessionClaims are the claims of a visitor session token.
type sessionClaims struct {
	jwt.RegisteredClaims
	TenantID       string `json:"tid"`
	WidgetID       string `json:"wid"`
	ConversationID string `json:"cid"`
	Origin         string `json:"org"`
}

// PublicWidget is what a visitor's browser may know about a widget: its look, never its origins
// or secrets.
type PublicWidget struct {
	ID                   string
	Name                 string
	Colors               domain.WidgetColors
	Greeting             string
	Position             string
	IdentityVerification bool
}

func publicWidget(id string, s domain.WidgetSettings) PublicWidget {
	return PublicWidget{ID: id, Name: s.Name, Colors: s.Colors, Greeting: s.Greeting, Position: s.Position,
		IdentityVerification: s.IdentityVerification}
}

// errOriginRefused is the answer to a browser origin a widget does not allow.
func errOriginRefused() error {
	return domain.Errorf(domain.EFORBIDDEN, "This origin may not use the widget.")
}

// lookupWidget returns a widget by id alone (the public routes), checking origin against its
// allowed origins: origin "" passes only when allowEmptyOrigin.
func (w *Widgets) lookupWidget(ctx context.Context, widgetID, origin string, allowEmptyOrigin bool) (tenantID string, s domain.WidgetSettings, err error) {
	row, err := w.reader.Lookup(ctx, widgetID)
	if err != nil {
		return "", domain.WidgetSettings{}, err
	}
	if origin == "" && allowEmptyOrigin {
		return row.TenantID, row.Settings, nil
	}
	if !row.Settings.AllowsOrigin(origin) {
		return "", domain.WidgetSettings{}, errOriginRefused()
	}
	return row.TenantID, row.Settings, nil
}

// PublicConfig returns the look of a widget for its launcher. origin is the request's Origin
// header: when a browser sends one it must be an allowed origin (EFORBIDDEN); a request without
// one (a same-origin GET) is answered. A missing widget is ENOTFOUND.
func (w *Widgets) PublicConfig(ctx context.Context, widgetID, origin string) (PublicWidget, error) {
	_, s, err := w.lookupWidget(ctx, widgetID, origin, true)
	if err != nil {
		return PublicWidget{}, err
	}
	return publicWidget(strings.ToLower(widgetID), s), nil
}

// AllowedOrigin reports whether origin may use the widget (for CORS preflights).
func (w *Widgets) AllowedOrigin(ctx context.Context, widgetID, origin string) bool {
	_, _, err := w.lookupWidget(ctx, widgetID, origin, false)
	return err == nil
}

// StartSessionInput is a browser's request for a visitor session.
type StartSessionInput struct {
	WidgetID string
	// VisitorID is the visitor's id from an earlier session ("" for a new visitor), or, with
	// identity verification, the tenant's user id proven by UserHash.
	VisitorID      string
	ConversationID string
	UserHash       string
	// Origin is the request's Origin header.
	Origin string
}

// SessionToken is a started visitor session.
type SessionToken struct {
	Token          string
	VisitorID      string
	ConversationID string
	ExpiresAt      time.Time
	Widget         PublicWidget
}

// StartSession starts a visitor session on a widget for a browser at in.Origin, which must be one
// of the widget's allowed origins (EFORBIDDEN). With identity verification the visitor id must
// come with the right user hash (EUNAUTHORIZED); without it, the visitor id is one the server
// issued (a UUID), or a new one. Without a conversation id a new web conversation is started
// for the visitor; with one it must be this visitor's conversation (ENOTFOUND otherwise).
func (w *Widgets) StartSession(ctx context.Context, in StartSessionInput) (SessionToken, error) {
	tenantID, settings, err := w.lookupWidget(ctx, in.WidgetID, in.Origin, false)
	if err != nil {
		return SessionToken{}, err
	}
	origin, _ := domain.NormalizeOrigin(in.Origin)
	widgetID := strings.ToLower(in.WidgetID)
	visitor, err := w.sessionVisitor(widgetID, settings, in)
	if err != nil {
		return SessionToken{}, err
	}
	p := domain.Principal{TenantID: tenantID, Role: domain.RoleVisitor, VisitorID: visitor}
	convID := strings.ToLower(in.ConversationID)
	if convID == "" {
		c, err := w.conv.create(ctx, p, CreateConversationInput{
			Channel: domain.ChannelWeb, Contact: domain.Contact{ExternalID: visitor}, AssistantEnabled: settings.AssistantEnabled,
		})
		if err != nil {
			return SessionToken{}, err
		}
		convID = c.ID
	} else if err := w.conv.checkVisitorConversation(ctx, p, convID); err != nil {
		return SessionToken{}, err
	}
	now := w.now().Truncate(time.Second)
	exp := now.Add(w.cfg.SessionTTL)
	claims := sessionClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: DefaultTokenIssuer, Subject: visitor, Audience: jwt.ClaimStrings{sessionTokenAudience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
			ID: uuid.NewString(),
		},
		TenantID: tenantID, WidgetID: widgetID, ConversationID: convID, Origin: origin,
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(w.tokenKey)
	if err != nil {
		return SessionToken{}, fmt.Errorf("sign session token: %w", err)
	}
	return SessionToken{Token: token, VisitorID: visitor, ConversationID: convID, ExpiresAt: exp,
		Widget: publicWidget(widgetID, settings)}, nil
}

// sessionVisitor decides the visitor id of a session.
func (w *Widgets) sessionVisitor(widgetID string, s domain.WidgetSettings, in StartSessionInput) (string, error) {
	if s.IdentityVerification {
		if msg := convLineProblemOf(in.VisitorID); msg != "" {
			return "", domain.Invalid("Invalid visitor.", domain.FieldError{Field: "visitor_id", Message: msg})
		}
		want := UserHash(w.identitySecret(widgetID), in.VisitorID)
		if !hmac.Equal([]byte(strings.ToLower(in.UserHash)), []byte(want)) {
			return "", domain.Errorf(domain.EUNAUTHORIZED, "The visitor's identity could not be verified.")
		}
		return in.VisitorID, nil
	}
	if in.VisitorID == "" {
		return uuid.NewString(), nil
	}
	if !domain.IsUUID(in.VisitorID) {
		return "", domain.Invalid("Invalid visitor.", domain.FieldError{Field: "visitor_id", Message: "must be a visitor id this server issued"})
	}
	return strings.ToLower(in.VisitorID), nil
}

// convLineProblemOf checks a verified visitor's user id: 1–128 characters on one line.
func convLineProblemOf(v string) string {
	if v == "" {
		return "is required with identity verification"
	}
	if len([]rune(v)) > domain.MaxExternalIDLen || strings.ContainsAny(v, "\r\n\t\x00") {
		return "must be 1-128 characters on one line"
	}
	return ""
}

// WidgetSession is an opened visitor session: who the visitor is and the one conversation they may
// write in and follow.
type WidgetSession struct {
	TenantID       string
	WidgetID       string
	VisitorID      string
	ConversationID string
	Origin         string
	ExpiresAt      time.Time
}

// Principal is the visitor as a principal of the widget's tenant.
func (s WidgetSession) Principal() domain.Principal {
	return domain.Principal{TenantID: s.TenantID, Role: domain.RoleVisitor, VisitorID: s.VisitorID}
}

// OpenSession spends a session token on a socket handshake from origin: the token must be
// genuine, unexpired, from the same origin, for a widget that still allows that origin, and not
// spent before. Every failure is the same EUNAUTHORIZED; the reason goes to the debug log.
func (w *Widgets) OpenSession(ctx context.Context, token, origin string) (WidgetSession, error) {
	var claims sessionClaims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{sessionTokenMethod}),
		jwt.WithIssuer(DefaultTokenIssuer),
		jwt.WithAudience(sessionTokenAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(w.cfg.ClockSkew),
		jwt.WithTimeFunc(w.cfg.Now),
		jwt.WithStrictDecoding(),
	)
	_, err := parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return w.tokenKey, nil })
	refuse := func(reason string, err error) (WidgetSession, error) {
		w.log.DebugContext(ctx, "widget session refused", "reason", reason, "error", err)
		return WidgetSession{}, domain.Errorf(domain.EUNAUTHORIZED, "Invalid, expired or used session.")
	}
	if err != nil {
		return refuse("token", err)
	}
	o, ok := domain.NormalizeOrigin(origin)
	switch {
	case !domain.IsUUID(claims.TenantID) || !domain.IsUUID(claims.WidgetID) || !domain.IsUUID(claims.ConversationID) ||
		claims.Subject == "" || claims.ID == "" || claims.IssuedAt == nil:
		return refuse("claims", nil)
	case claims.ExpiresAt.Sub(claims.IssuedAt.Time) > MaxWidgetSessionTTL:
		return refuse("lifetime", nil)
	case !ok || o != claims.Origin:
		return refuse("origin", nil)
	}
	tenantID, _, err := w.lookupWidget(ctx, claims.WidgetID, origin, false)
	if err != nil {
		if domain.ErrorCode(err) == domain.EUNAVAILABLE || ctx.Err() != nil {
			return WidgetSession{}, err
		}
		return refuse("widget", err)
	}
	if tenantID != claims.TenantID {
		return refuse("tenant", nil)
	}
	first, err := w.cfg.Nonces.Use(ctx, "n"+strings.ReplaceAll(claims.ID, "-", ""))
	if err != nil {
		return WidgetSession{}, fmt.Errorf("spend session nonce: %w", err)
	}
	if !first {
		return refuse("replayed", errors.New("nonce already spent"))
	}
	return WidgetSession{TenantID: claims.TenantID, WidgetID: claims.WidgetID, VisitorID: claims.Subject,
		ConversationID: claims.ConversationID, Origin: claims.Origin, ExpiresAt: claims.ExpiresAt.Time}, nil
}

// Send appends a visitor's message to their conversation: the same idempotent append as the REST
// API (a repeated client message id answers the original message and stores nothing).
func (w *Widgets) Send(ctx context.Context, s WidgetSession, clientMessageID, text string) (SentMessage, error) {
	return w.conv.SendMessage(ctx, s.Principal(), s.ConversationID, SendMessageInput{Text: text, ClientMessageID: clientMessageID})
}
