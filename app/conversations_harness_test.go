package app_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// convProjections are the read models the conversations service needs.
func convProjections(reg *domain.Registry) []projections.Projection {
	return []projections.Projection{projections.NewConversationProjection(reg)}
}

// convHarness is an env with a conversations service on it.
type convHarness struct {
	*env
	svc *app.Conversations
}

func newConvHarness(t *testing.T) *convHarness {
	t.Helper()
	h := &convHarness{env: newEnv(t, convProjections)}
	h.svc = h.service(t)
	return h
}

// service returns another conversations service on the harness's env: another instance, with
// its own state cache.
func (h *convHarness) service(t *testing.T) *app.Conversations {
	t.Helper()
	svc, err := app.NewConversations(app.ConversationsConfig{
		Store: h.Store, Registry: h.Registry, DB: h.Pools.App, Waiter: h.Waiter, Logger: h.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// convAgent returns a user principal of a new tenant; convKey an API key principal of tenant.
func convAgent() domain.Principal {
	return domain.Principal{TenantID: uuid.NewString(), UserID: uuid.NewString(), Role: domain.RoleAgent}
}

func convKey(tenant string) domain.Principal {
	return domain.Principal{TenantID: tenant, APIKeyID: uuid.NewString(), Role: domain.RoleAPIKey}
}

// create starts a conversation with the given contact.
func (h *convHarness) create(t *testing.T, p domain.Principal, contact domain.Contact) app.Conversation {
	t.Helper()
	c, err := h.svc.Create(t.Context(), p, app.CreateConversationInput{Channel: domain.ChannelAPI, Contact: contact})
	if err != nil {
		t.Fatalf("create conversation: %v", err)
	}
	return c
}
