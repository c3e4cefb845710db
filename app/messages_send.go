package app

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// SendMessageInput is a message to send.
type SendMessageInput struct {
	// Text is the message, 1 to domain.MaxMessageTextLen characters, not blank.
	Text string
	// ClientMessageID is the sender's de-duplication key: sending the same one again to the
	// conversation returns the original message, at any time, and stores nothing.
	ClientMessageID string
	// IdempotencyKey is the request's Idempotency-Key; it is the ClientMessageID when the body
	// gives none (the body's wins when both are given).
	IdempotencyKey string
}

// SentMessage is the outcome of a send.
type SentMessage struct {
	Message Message
	// Created is false when the message was sent before (same client_message_id): Message is then
	// the original.
	Created bool
	// Sequence is the stream sequence the answer reflects: the message's event, or the
	// conversation's version for a repeat.
	Sequence uint64
}

// SendMessage adds a message to a conversation of p's tenant, with the next seq (1, 2, 3, …
// without gaps), written by p (an API key, a user, or a visitor in their own conversation: the
// conversation's contact). It returns once the read model has the
// message. A conversation that is closed refuses the message with ECONFLICT (reopen it first);
// a missing conversation, or another tenant's, is ENOTFOUND.
func (s *Conversations) SendMessage(ctx context.Context, p domain.Principal, conversationID string, in SendMessageInput) (SentMessage, error) {
	if err := sendCaller(p); err != nil {
		return SentMessage{}, err
	}
	author := domain.Author{Type: domain.AuthorUser, ID: p.UserID}
	switch {
	case p.APIKeyID != "":
		author = domain.Author{Type: domain.AuthorAPIKey, ID: p.APIKeyID}
	case p.Role == domain.RoleVisitor:
		// The decider refuses a contact who is not the conversation's own (ENOTFOUND).
		author = domain.Author{Type: domain.AuthorContact, ID: p.VisitorID}
	}
	if author.ID == "" {
		return SentMessage{}, domain.Errorf(domain.EUNAUTHORIZED, "Authentication required.")
	}
	id, err := convID(conversationID)
	if err != nil {
		return SentMessage{}, err
	}
	clientID := in.ClientMessageID
	if clientID == "" {
		clientID = in.IdempotencyKey
	}
	msgID, err := uuid.NewV7()
	if err != nil {
		return SentMessage{}, fmt.Errorf("send message: new id: %w", err)
	}
	res, err := s.handle(ctx, p, id, domain.SendMessage{
		MessageID: msgID.String(), Text: in.Text, Author: author, ClientMessageID: clientID, At: s.cfg.Now(),
	})
	if err != nil {
		return SentMessage{}, fmt.Errorf("send message: %w", err)
	}
	if len(res.Events) > 0 {
		if err := s.waitFor(ctx, res.Version); err != nil {
			return SentMessage{}, err
		}
		return SentMessage{Created: true, Sequence: res.Version, Message: Message{
			ID: msgID.String(), ConversationID: id, Seq: res.State.LastSeq, Text: in.Text, Author: author,
			ClientMessageID: clientID, CreatedAt: res.State.LastMessageAt,
		}}, nil
	}
	// A repeat: answer with the original, as the read model has it.
	ref, ok := res.State.ClientMessage(clientID)
	if !ok {
		return SentMessage{}, fmt.Errorf("send message: no message decided and no original for client_message_id %q", clientID)
	}
	if err := s.cfg.Waiter.WaitFor(ctx, projections.ConversationsProjection, res.Version); err != nil {
		return SentMessage{}, fmt.Errorf("send message: wait for the original: %w", err)
	}
	orig, err := s.reader.Message(ctx, p.TenantID, id, ref.Seq)
	if err != nil {
		return SentMessage{}, fmt.Errorf("send message: read the original: %w", err)
	}
	return SentMessage{Message: orig, Created: false, Sequence: res.Version}, nil
}
