package app

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
)

// CreateConversationInput starts a conversation.
type CreateConversationInput struct {
	// Channel is domain.ChannelAPI, ChannelWeb or ChannelWhatsApp (the HTTP API offers "api").
	Channel          string
	Contact          domain.Contact
	AssistantEnabled bool
	// IdempotencyKey, when set, makes the create safe to retry: the conversation id is derived
	// from (tenant, key), so a retry finds the conversation it created and answers with it (its
	// current state) instead of starting another. A second request with the same key answers the
	// same conversation whatever its body.
	IdempotencyKey string
}

// convKeyNamespace is the UUID namespace of conversation ids derived from idempotency keys.
var convKeyNamespace = uuid.MustParse("6f1c5a5e-3b0e-5d7e-9c1a-2f8f3c0b9d41")

// conversationIDFor returns the id of a conversation created with an idempotency key: a UUIDv5 of
// the tenant and the key, so equal keys of different tenants never meet.
func conversationIDFor(tenantID, key string) string {
	return uuid.NewSHA1(convKeyNamespace, []byte(tenantID+"\x00"+key)).String()
}

// Create starts a conversation for p's tenant, open, and returns it once the read model has it.
// With an IdempotencyKey a repeated create returns the conversation the first one created.
func (s *Conversations) Create(ctx context.Context, p domain.Principal, in CreateConversationInput) (Conversation, error) {
	if err := convCaller(p); err != nil {
		return Conversation{}, err
	}
	return s.create(ctx, p, in)
}

// create starts a conversation for p, who may also be a visitor starting their own (the widgets
// service checks that).
func (s *Conversations) create(ctx context.Context, p domain.Principal, in CreateConversationInput) (Conversation, error) {
	if err := sendCaller(p); err != nil {
		return Conversation{}, err
	}
	var id string
	if in.IdempotencyKey != "" {
		if len(in.IdempotencyKey) > domain.MaxClientMessageIDLen {
			return Conversation{}, domain.Invalid("Invalid Idempotency-Key.",
				domain.FieldError{Field: "Idempotency-Key", Message: "must be at most 128 characters"})
		}
		id = conversationIDFor(p.TenantID, in.IdempotencyKey)
	} else {
		u, err := uuid.NewV7()
		if err != nil {
			return Conversation{}, fmt.Errorf("create conversation: new id: %w", err)
		}
		id = u.String()
	}
	res, err := s.handle(ctx, p, id, domain.StartConversation{
		ConversationID: id, Channel: in.Channel, Contact: in.Contact, AssistantEnabled: in.AssistantEnabled,
		Idempotent: in.IdempotencyKey != "", At: s.cfg.Now(),
	})
	if err != nil {
		return Conversation{}, fmt.Errorf("create conversation: %w", err)
	}
	if err := s.waitFor(ctx, res.Version); err != nil {
		return Conversation{}, err
	}
	return conversationOf(res.State, res.Version), nil
}

// checkVisitorConversation checks that conversationID is a web conversation of visitor p (its
// contact): any other conversation, of this tenant or another, is ENOTFOUND like a missing one.
func (s *Conversations) checkVisitorConversation(ctx context.Context, p domain.Principal, conversationID string) error {
	id, err := convID(conversationID)
	if err != nil {
		return err
	}
	c, err := s.reader.Get(ctx, p.TenantID, id)
	if err != nil {
		return err
	}
	if c.Channel != domain.ChannelWeb || c.Contact.ExternalID != p.VisitorID {
		return convNotFound()
	}
	return nil
}
