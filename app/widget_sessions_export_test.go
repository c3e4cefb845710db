package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// SessionOpenerForTest returns the session token check of a widgets service keyed with secret,
// without its stores, and a function that signs session claims with its key (a genuine token).
// Only tokens that fail before the widget lookup may be opened: a token that passes every check
// of the token itself reaches the missing stores and panics, which in a fuzz test means a token
// nobody signed got past the signature.
func SessionOpenerForTest(secret []byte, now func() time.Time) (open func(ctx context.Context, token, origin string) error,
	sign func(widgetID, origin string, iat, exp time.Time) (string, error)) {
	cfg := WidgetsConfig{Secret: secret, Now: now}
	cfg.setDefaults()
	w := &Widgets{cfg: cfg, log: slog.New(slog.DiscardHandler), tokenKey: deriveKey(secret, "metachat/widget-session-token/v1")}
	open = func(ctx context.Context, token, origin string) error {
		_, err := w.OpenSession(ctx, token, origin)
		return err
	}
	sign = func(widgetID, origin string, iat, exp time.Time) (string, error) {
		claims := sessionClaims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: DefaultTokenIssuer, Subject: uuid.NewString(), Audience: jwt.ClaimStrings{sessionTokenAudience},
				IssuedAt: jwt.NewNumericDate(iat), NotBefore: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(exp),
				ID: uuid.NewString(),
			},
			TenantID: uuid.NewString(), WidgetID: widgetID, ConversationID: uuid.NewString(), Origin: origin,
		}
		return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(w.tokenKey)
	}
	return open, sign
}
