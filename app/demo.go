package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/metachat/metachat/domain"
)

// Demo is the demo tenant `metachat serve` sets up in development, so that a new user sees the
// widget working at /demo within a minute of starting: its owner's credentials and its widget.
type Demo struct {
	TenantID string `json:"tenant_id"`
	UserID   string `json:"user_id"`
	Email    string `json:"email"`
	Password string `json:"password"`
	WidgetID string `json:"widget_id"`
}

// EnsureDemo returns a demo tenant whose widget allows exactly origins. Given the demo from an
// earlier run (prev, zero for none) whose widget still exists, it keeps it, updating the widget's
// origins when they changed; otherwise it signs up a new demo tenant with a random owner address
// and password and creates its widget.
func EnsureDemo(ctx context.Context, id *Identity, w *Widgets, prev Demo, origins []string) (Demo, error) {
	settings := domain.WidgetSettings{
		Name: "Metachat demo", AllowedOrigins: origins, AssistantEnabled: true,
		Greeting: "Hi! This is the Metachat demo. Send a message; it is stored as an event and comes back over the socket.",
	}
	if prev.WidgetID != "" && domain.IsUUID(prev.TenantID) && domain.IsUUID(prev.UserID) {
		owner := domain.Principal{TenantID: prev.TenantID, UserID: prev.UserID, Email: prev.Email, Role: domain.RoleOwner}
		if cur, err := w.GetWidget(ctx, owner, prev.WidgetID); err == nil {
			want, err := settings.Normalize()
			if err != nil {
				return Demo{}, err
			}
			if !slices.Equal(cur.Settings.AllowedOrigins, want.AllowedOrigins) {
				s := cur.Settings
				s.AllowedOrigins = origins
				if _, _, err := w.UpdateWidget(ctx, owner, prev.WidgetID, s); err != nil {
					return Demo{}, fmt.Errorf("update the demo widget's origins: %w", err)
				}
			}
			return prev, nil
		} else if domain.ErrorCode(err) != domain.ENOTFOUND {
			return Demo{}, fmt.Errorf("read the demo widget: %w", err)
		}
	}
	secret := make([]byte, 12)
	if _, err := rand.Read(secret); err != nil {
		return Demo{}, fmt.Errorf("demo password: %w", err)
	}
	d := Demo{Email: "demo-" + hex.EncodeToString(secret[:4]) + "@demo.metachat.invalid", Password: "demo-" + hex.EncodeToString(secret)}
	res, err := id.Signup(ctx, SignupInput{TenantName: "Metachat demo", Email: d.Email, Password: d.Password})
	if err != nil {
		return Demo{}, fmt.Errorf("sign up the demo tenant: %w", err)
	}
	d.TenantID, d.UserID = res.TenantID, res.UserID
	owner := domain.Principal{TenantID: res.TenantID, UserID: res.UserID, Email: d.Email, Role: domain.RoleOwner}
	wd, _, err := w.CreateWidget(ctx, owner, settings, "")
	if err != nil {
		return Demo{}, fmt.Errorf("create the demo widget: %w", err)
	}
	d.WidgetID = wd.ID
	return d, nil
}
