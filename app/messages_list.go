package app

import (
	"context"
	"fmt"

	"github.com/metachat/metachat/domain"
)

// ListMessagesInput selects messages of a conversation.
type ListMessagesInput struct {
	// AfterSeq returns messages with a greater seq (0: from the first).
	AfterSeq uint64
	// Limit is the most messages, 1 to MaxConversationPageLimit; 0 means
	// DefaultConversationPageLimit.
	Limit int
}

// ListMessages returns messages of a conversation of p's tenant in seq order, without gaps: the
// next page is the one after the last seq returned, and fewer than Limit messages means there are
// no more yet. A missing conversation, or another tenant's, is ENOTFOUND.
func (s *Conversations) ListMessages(ctx context.Context, p domain.Principal, conversationID string, in ListMessagesInput) ([]Message, error) {
	if err := convCaller(p); err != nil {
		return nil, err
	}
	id, err := convID(conversationID)
	if err != nil {
		return nil, err
	}
	limit, err := convPageLimit(in.Limit)
	if err != nil {
		return nil, err
	}
	msgs, err := s.reader.Messages(ctx, p.TenantID, id, in.AfterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	return msgs, nil
}
