package app

import (
	"context"
	"fmt"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// ListConversationsInput selects a page of conversations.
type ListConversationsInput struct {
	// Status is "open", "closed" or "" (any).
	Status string
	// Query matches the contact's name, email or external id, case-insensitively, anywhere in
	// them; "" matches everything.
	Query string
	// Limit is the page size, 1 to MaxConversationPageLimit; 0 means DefaultConversationPageLimit.
	Limit int
	// Cursor is the NextCursor of the previous page, "" for the first.
	Cursor string
}

// ConversationPage is a page of conversations, most recent activity first.
type ConversationPage struct {
	Items []Conversation
	// NextCursor continues the listing; "" on the last page.
	NextCursor string
}

// Get returns a conversation of p's tenant; a missing one, or another tenant's, is ENOTFOUND.
func (s *Conversations) Get(ctx context.Context, p domain.Principal, id string) (Conversation, error) {
	if err := convCaller(p); err != nil {
		return Conversation{}, err
	}
	id, err := convID(id)
	if err != nil {
		return Conversation{}, err
	}
	return s.reader.Get(ctx, p.TenantID, id)
}

// List returns a page of p's tenant's conversations, ordered by last activity (the last message,
// or the creation before any), most recent first, then by id. Pages are keyset pages: following
// the cursors returns every conversation once, however many are created meanwhile (new ones sort
// first, before the pages still to come); a conversation that gets a message meanwhile moves to
// the front, so it may be missed by the remaining pages but is never returned twice.
func (s *Conversations) List(ctx context.Context, p domain.Principal, in ListConversationsInput) (ConversationPage, error) {
	if err := convCaller(p); err != nil {
		return ConversationPage{}, err
	}
	limit, err := convPageLimit(in.Limit)
	if err != nil {
		return ConversationPage{}, err
	}
	switch in.Status {
	case "", domain.ConversationStatusOpen, domain.ConversationStatusClosed:
	default:
		return ConversationPage{}, domain.Invalid("Invalid status.", domain.FieldError{Field: "status", Message: "must be open or closed"})
	}
	if len([]rune(in.Query)) > maxConversationQueryLen {
		return ConversationPage{}, domain.Invalid("Invalid query.", domain.FieldError{Field: "q", Message: "must be at most 200 characters"})
	}
	f := projections.ConversationFilter{Status: in.Status, Query: in.Query, Limit: limit + 1}
	if in.Cursor != "" {
		key, err := ParseConversationCursor(in.Cursor)
		if err != nil {
			return ConversationPage{}, err
		}
		f.After = &key
	}
	items, err := s.reader.List(ctx, p.TenantID, f)
	if err != nil {
		return ConversationPage{}, fmt.Errorf("list conversations: %w", err)
	}
	page := ConversationPage{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.NextCursor = ConversationCursor(items[limit-1].Key())
	}
	return page, nil
}

// maxConversationQueryLen bounds a search query, in characters.
const maxConversationQueryLen = 200
