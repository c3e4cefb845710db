package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
)

// Conversation is one row of the conversations read model.
type Conversation struct {
	ID               string
	Channel          string
	Status           string
	Contact          domain.Contact
	AssistantEnabled bool
	// AssigneeID is the assigned user's id, "" when nobody is assigned.
	AssigneeID string
	CreatedAt  time.Time
	// LastMessageAt is the time of the last message, zero when there is none.
	LastMessageAt time.Time
	// LastActivityAt is LastMessageAt, or CreatedAt before the first message: the list order.
	LastActivityAt time.Time
	MessageCount   uint64
	// Version is the stream sequence of the conversation's last event.
	Version uint64
}

// Key returns the conversation's position in the list order.
func (c Conversation) Key() ConversationKey {
	return ConversationKey{LastActivityAt: c.LastActivityAt, ID: c.ID}
}

// ConversationKey is a position in the list order: last activity descending, then id descending.
type ConversationKey struct {
	LastActivityAt time.Time
	ID             string
}

// Message is one row of the messages read model.
type Message struct {
	ID             string
	ConversationID string
	Seq            uint64
	Text           string
	Author         domain.Author
	// ClientMessageID is the sender's de-duplication key, "" when it gave none.
	ClientMessageID string
	CreatedAt       time.Time
	// Citations are the knowledge chunks an assistant's reply draws on (none for other messages).
	Citations []domain.Citation
}

// ConversationFilter selects a page of conversations.
type ConversationFilter struct {
	// Status is "open", "closed" or "" (any).
	Status string
	// Query matches the contact's name, email or external id, case-insensitively, anywhere in them
	// ("" matches everything).
	Query string
	// After is the key of the last conversation of the previous page (nil: the first page).
	After *ConversationKey
	// Limit is the most conversations returned, at least 1.
	Limit int
}

// Conversations reads the conversations read model (conversations and messages), always through
// WithTenant, so row-level security shows only the given tenant's rows: another tenant's
// conversation is not found exactly as a missing one.
type Conversations struct {
	db Beginner
}

// NewConversations returns the conversations reader on db, the app pool (metachat_app).
func NewConversations(db Beginner) *Conversations { return &Conversations{db: db} }

const conversationColumns = `id::text, channel, status, contact_external_id, contact_name, contact_email,
	assistant_enabled, coalesce(assignee_id::text, ''), created_at, last_message_at, last_activity_at,
	message_count, version`

func scanConversation(row pgx.Row) (Conversation, error) {
	var (
		c              Conversation
		lastMessage    *time.Time
		count, version int64
	)
	err := row.Scan(&c.ID, &c.Channel, &c.Status, &c.Contact.ExternalID, &c.Contact.Name, &c.Contact.Email,
		&c.AssistantEnabled, &c.AssigneeID, &c.CreatedAt, &lastMessage, &c.LastActivityAt, &count, &version)
	if err != nil {
		return Conversation{}, err
	}
	if lastMessage != nil {
		c.LastMessageAt = lastMessage.UTC()
	}
	c.CreatedAt, c.LastActivityAt = c.CreatedAt.UTC(), c.LastActivityAt.UTC()
	c.MessageCount, c.Version = uint64(count), uint64(version)
	return c, nil
}

func conversationNotFound() error { return domain.Errorf(domain.ENOTFOUND, "Conversation not found.") }

// Get returns one conversation of the tenant; ENOTFOUND when it is missing, another tenant's, or
// the id is not a UUID.
func (r *Conversations) Get(ctx context.Context, tenantID, id string) (Conversation, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Conversation{}, conversationNotFound()
	}
	var c Conversation
	err := WithTenant(ctx, r.db, tenantID, func(tx pgx.Tx) error {
		var err error
		c, err = scanConversation(tx.QueryRow(ctx, `SELECT `+conversationColumns+`
			FROM public.conversations WHERE tenant_id = $1 AND id = $2`, tenantID, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Conversation{}, conversationNotFound()
	}
	if err != nil {
		return Conversation{}, fmt.Errorf("get conversation %s: %w", id, err)
	}
	return c, nil
}

// List returns a page of the tenant's conversations in list order (last activity first, then id
// descending), after f.After when set. Pages are keyset pages: a conversation is on the page after
// the key it sorts after, so conversations created meanwhile (which sort first) never shift the
// pages that follow.
func (r *Conversations) List(ctx context.Context, tenantID string, f ConversationFilter) ([]Conversation, error) {
	if f.Limit < 1 {
		return nil, domain.Invalid("Invalid limit.", domain.FieldError{Field: "limit", Message: "must be at least 1"})
	}
	where := []string{"tenant_id = $1"}
	args := []any{tenantID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Status != "" {
		where = append(where, "status = "+arg(f.Status))
	}
	if q := strings.TrimSpace(f.Query); q != "" {
		where = append(where, `search LIKE lower(`+arg("%"+escapeLike(q)+"%")+`) ESCAPE '\'`)
	}
	if f.After != nil {
		where = append(where, "(last_activity_at, id) < ("+arg(f.After.LastActivityAt)+", "+arg(f.After.ID)+"::uuid)")
	}
	sql := `SELECT ` + conversationColumns + ` FROM public.conversations WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY last_activity_at DESC, id DESC LIMIT ` + arg(f.Limit)
	var out []Conversation
	err := WithTenant(ctx, r.db, tenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Conversation, error) { return scanConversation(row) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list conversations: %w", err)
	}
	return out, nil
}

// escapeLike escapes the LIKE wildcards of s (with '\' as the escape character).
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

const messageColumns = `m.seq, m.id::text, m.text, m.author_type, m.author_id, coalesce(m.client_message_id, ''), m.created_at,
	m.citations::text`

// Messages returns up to limit messages of a conversation with a seq above afterSeq, in seq order.
// The messages of a conversation are applied in seq order, so the result has no gaps. A missing
// conversation (or another tenant's) is ENOTFOUND; one without such messages gives none.
func (r *Conversations) Messages(ctx context.Context, tenantID, conversationID string, afterSeq uint64, limit int) ([]Message, error) {
	if _, err := uuid.Parse(conversationID); err != nil {
		return nil, conversationNotFound()
	}
	if limit < 1 {
		return nil, domain.Invalid("Invalid limit.", domain.FieldError{Field: "limit", Message: "must be at least 1"})
	}
	found := false
	var out []Message
	err := WithTenant(ctx, r.db, tenantID, func(tx pgx.Tx) error {
		// One query: the conversation (no row: not found) joined to its page of messages.
		rows, err := tx.Query(ctx, `SELECT `+messageColumns+` FROM public.conversations c
			LEFT JOIN LATERAL (SELECT * FROM public.messages m
				WHERE m.tenant_id = c.tenant_id AND m.conversation_id = c.id AND m.seq > $3
				ORDER BY m.seq LIMIT $4) m ON true
			WHERE c.tenant_id = $1 AND c.id = $2
			ORDER BY m.seq`, tenantID, conversationID, int64(min(afterSeq, 1<<63-1)), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			found = true
			var (
				seq                                *int64
				id, text, authorType, authorID, cm *string
				at                                 *time.Time
				citations                          *string
			)
			if err := rows.Scan(&seq, &id, &text, &authorType, &authorID, &cm, &at, &citations); err != nil {
				return err
			}
			if seq == nil {
				continue // the conversation has no messages after afterSeq
			}
			m := Message{ID: *id, ConversationID: conversationID, Seq: uint64(*seq), Text: *text,
				Author: domain.Author{Type: *authorType, ID: *authorID}, ClientMessageID: *cm, CreatedAt: at.UTC()}
			if citations != nil {
				if err := json.Unmarshal([]byte(*citations), &m.Citations); err != nil {
					return fmt.Errorf("citations of message %d: %w", *seq, err)
				}
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list messages of conversation %s: %w", conversationID, err)
	}
	if !found {
		return nil, conversationNotFound()
	}
	return out, nil
}

// Message returns the message at seq of a conversation; ENOTFOUND when there is none (or the
// conversation is another tenant's).
func (r *Conversations) Message(ctx context.Context, tenantID, conversationID string, seq uint64) (Message, error) {
	msgs, err := r.Messages(ctx, tenantID, conversationID, seq-1, 1)
	if err != nil {
		return Message{}, err
	}
	if len(msgs) == 0 || msgs[0].Seq != seq {
		return Message{}, domain.Errorf(domain.ENOTFOUND, "Message not found.")
	}
	return msgs[0], nil
}
