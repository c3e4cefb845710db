package app

import (
	"context"
	"fmt"

	"github.com/metachat/metachat/domain"
)

// UpdateConversationInput changes a conversation; nil fields are left alone. Every field sets an
// absolute value, so an update is safe to retry.
type UpdateConversationInput struct {
	// Status is "open" or "closed".
	Status *string
	// AssistantEnabled switches the assistant on or off (off: a human takes over).
	AssistantEnabled *bool
	// SetAssignee changes the assignee to AssigneeID, a user id, or to nobody when it is "". The
	// id is not checked against the tenant's users here (the identity read model is not this
	// service's): any UUID is accepted.
	SetAssignee bool
	AssigneeID  string
}

// Update changes a conversation of p's tenant and returns it once the read model has the change.
// Values equal to the current ones change nothing. A missing conversation (or another tenant's)
// is ENOTFOUND.
func (s *Conversations) Update(ctx context.Context, p domain.Principal, id string, in UpdateConversationInput) (Conversation, error) {
	if err := convCaller(p); err != nil {
		return Conversation{}, err
	}
	id, err := convID(id)
	if err != nil {
		return Conversation{}, err
	}
	res, err := s.handle(ctx, p, id, domain.UpdateConversation{
		Status: in.Status, AssistantEnabled: in.AssistantEnabled, SetAssignee: in.SetAssignee, AssigneeID: in.AssigneeID,
		At: s.cfg.Now(),
	})
	if err != nil {
		return Conversation{}, fmt.Errorf("update conversation: %w", err)
	}
	if err := s.waitFor(ctx, res.Version); err != nil {
		return Conversation{}, err
	}
	return conversationOf(res.State, res.Version), nil
}
