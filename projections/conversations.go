package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
)

// ConversationsProjection is the name of the conversations read model (tables conversations and
// messages, one checkpoint for both).
const ConversationsProjection = "conversations"

// ConversationProjection keeps two tables from the conversation aggregate's events:
//
//   - conversations (tenant_id, id, channel, status, contact_external_id, contact_name,
//     contact_email, assistant_enabled, assignee_id, created_at, last_message_at, message_count,
//     version; generated: last_activity_at = coalesce(last_message_at, created_at), and search =
//     the lower-cased contact fields), indexed for the list order (tenant, last activity desc,
//     id desc), with and without a status; and, when the pg_trgm extension is installed in the
//     database, a trigram index for substring search on the contact fields (otherwise a search
//     scans the tenant's conversations in list order).
//   - messages (tenant_id, conversation_id, seq, id, text, author_type, author_id,
//     client_message_id, created_at, citations: a JSON array of {document_id, chunk_id, title}
//     for the assistant's replies, NULL otherwise), primary key (tenant_id, conversation_id, seq).
//     Generations created before citations existed get the column from migration
//     0003_assistant.sql.
//
// Both have row-level security by tenant.
//
// A message.sent is one statement: the message's insert and its conversation's counters
// (message_count, last_message_at, version), which it updates only if the seq follows the
// conversation's message count, so a gap or a repeat in the stream stops the projection instead
// of showing a hole. ApplyBatch applies a batch with a few statements instead of one per message
// (see conversations_batch.go). A conversation row is rewritten at every message (its indexed
// last activity changes, so every index gets a new entry and the old version stays until
// vacuum): autovacuum visits conversations after every thousand dead row versions rather than
// after a fifth of the table.
type ConversationProjection struct {
	reg *domain.Registry
}

var _ Projection = (*ConversationProjection)(nil)

// NewConversationProjection returns the conversations projection, decoding payloads with reg.
func NewConversationProjection(reg *domain.Registry) *ConversationProjection {
	return &ConversationProjection{reg: reg}
}

// Name implements Projection.
func (*ConversationProjection) Name() string { return ConversationsProjection }

// Setup implements Projection.
func (*ConversationProjection) Setup(ctx context.Context, tx pgx.Tx, schema string) error {
	conv := pgx.Identifier{schema, "conversations"}.Sanitize()
	msgs := pgx.Identifier{schema, "messages"}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE TABLE `+conv+` (
		tenant_id           uuid        NOT NULL,
		id                  uuid        NOT NULL,
		channel             text        NOT NULL,
		status              text        NOT NULL,
		contact_external_id text        NOT NULL,
		contact_name        text        NOT NULL DEFAULT '',
		contact_email       text        NOT NULL DEFAULT '',
		assistant_enabled   boolean     NOT NULL,
		assignee_id         uuid,
		created_at          timestamptz NOT NULL,
		last_message_at     timestamptz,
		message_count       bigint      NOT NULL DEFAULT 0,
		version             bigint      NOT NULL,
		last_activity_at    timestamptz NOT NULL GENERATED ALWAYS AS (coalesce(last_message_at, created_at)) STORED,
		search              text        NOT NULL GENERATED ALWAYS AS
			(lower(contact_external_id || E'\n' || contact_name || E'\n' || contact_email)) STORED,
		PRIMARY KEY (tenant_id, id)
	) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
	CREATE INDEX conversations_by_activity ON `+conv+` (tenant_id, last_activity_at DESC, id DESC);
	CREATE INDEX conversations_by_status_activity ON `+conv+` (tenant_id, status, last_activity_at DESC, id DESC);
	CREATE TABLE `+msgs+` (
		tenant_id         uuid        NOT NULL,
		conversation_id   uuid        NOT NULL,
		seq               bigint      NOT NULL,
		id                uuid        NOT NULL,
		text              text        NOT NULL,
		author_type       text        NOT NULL,
		author_id         text        NOT NULL DEFAULT '',
		client_message_id text,
		created_at        timestamptz NOT NULL,
		citations         jsonb,
		PRIMARY KEY (tenant_id, conversation_id, seq)
	)`); err != nil {
		return fmt.Errorf("create conversations and messages: %w", err)
	}
	if err := trigramIndex(ctx, tx, conv); err != nil {
		return err
	}
	if err := EnableTenantRLS(ctx, tx, schema, "conversations"); err != nil {
		return err
	}
	return EnableTenantRLS(ctx, tx, schema, "messages")
}

// trigramIndex adds a trigram index on conversations.search when the database has the pg_trgm
// extension installed (it is not installed here: that takes privileges the read models do not
// assume).
func trigramIndex(ctx context.Context, tx pgx.Tx, conv string) error {
	var extSchema string
	err := tx.QueryRow(ctx, `SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE e.extname = 'pg_trgm'`).Scan(&extSchema)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look for pg_trgm: %w", err)
	}
	ops := pgx.Identifier{extSchema, "gin_trgm_ops"}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE INDEX conversations_search ON `+conv+` USING gin (search `+ops+`)`); err != nil {
		return fmt.Errorf("create the trigram index of conversations: %w", err)
	}
	return nil
}

// Apply implements Projection.
func (p *ConversationProjection) Apply(ctx context.Context, tx pgx.Tx, schema string, env domain.Envelope) error {
	if env.AggregateType != domain.ConversationAggregate {
		return nil
	}
	ev, err := p.reg.Decode(env)
	if err != nil {
		return fmt.Errorf("decode %s: %w", env.Type, err)
	}
	conv := pgx.Identifier{schema, "conversations"}.Sanitize()
	version := int64(env.Sequence)
	switch e := ev.(type) {
	case *domain.ConversationStarted:
		if e.ConversationID != env.AggregateID {
			return fmt.Errorf("conversation.started for %q stored under conversation %q", e.ConversationID, env.AggregateID)
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+conv+` (tenant_id, id, channel, status, contact_external_id,
			contact_name, contact_email, assistant_enabled, created_at, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			env.TenantID, env.AggregateID, e.Channel, domain.ConversationStatusOpen, e.Contact.ExternalID,
			e.Contact.Name, e.Contact.Email, e.AssistantEnabled, eventTime(e.StartedAt, env), version)
		if err != nil {
			return fmt.Errorf("insert conversation %s: %w", env.AggregateID, err)
		}
		return nil
	case *domain.ConversationClosed:
		return p.update(ctx, tx, conv, env, "status = $4", domain.ConversationStatusClosed)
	case *domain.ConversationReopened:
		return p.update(ctx, tx, conv, env, "status = $4", domain.ConversationStatusOpen)
	case *domain.ConversationAssigned:
		return p.update(ctx, tx, conv, env, "assignee_id = $4", e.AssigneeID)
	case *domain.ConversationUnassigned:
		return p.update(ctx, tx, conv, env, "assignee_id = NULL")
	case *domain.ConversationAssistantChanged:
		return p.update(ctx, tx, conv, env, "assistant_enabled = $4", e.Enabled)
	case *domain.MessageSent:
		return p.message(ctx, tx, schema, env, e)
	}
	return nil
}

// update sets one column of the event's conversation (set is a fixed assignment, its value $4)
// and its version.
func (p *ConversationProjection) update(ctx context.Context, tx pgx.Tx, conv string, env domain.Envelope, set string, args ...any) error {
	tag, err := tx.Exec(ctx, `UPDATE `+conv+` SET `+set+`, version = $3 WHERE tenant_id = $1 AND id = $2`,
		append([]any{env.TenantID, env.AggregateID, int64(env.Sequence)}, args...)...)
	if err != nil {
		return fmt.Errorf("apply %s to conversation %s: %w", env.Type, env.AggregateID, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%s for unknown conversation %s", env.Type, env.AggregateID)
	}
	return nil
}

// message inserts a message and counts it on its conversation, in one statement.
func (p *ConversationProjection) message(ctx context.Context, tx pgx.Tx, schema string, env domain.Envelope, e *domain.MessageSent) error {
	conv := pgx.Identifier{schema, "conversations"}.Sanitize()
	msgs := pgx.Identifier{schema, "messages"}.Sanitize()
	var clientID *string
	if e.ClientMessageID != "" {
		clientID = &e.ClientMessageID
	}
	at := eventTime(e.SentAt, env)
	tag, err := tx.Exec(ctx, `WITH m AS (
			INSERT INTO `+msgs+` (tenant_id, conversation_id, seq, id, text, author_type, author_id, client_message_id, created_at,
				citations)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $11::jsonb)
		)
		UPDATE `+conv+` SET message_count = $3, last_message_at = $9, version = $10
		WHERE tenant_id = $1 AND id = $2 AND message_count = $3 - 1`,
		env.TenantID, env.AggregateID, int64(e.Seq), e.MessageID, e.Text, e.Author.Type, e.Author.ID, clientID, at,
		int64(env.Sequence), citationsJSON(e.Citations))
	if err != nil {
		return fmt.Errorf("insert message %d of conversation %s: %w", e.Seq, env.AggregateID, err)
	}
	if tag.RowsAffected() != 1 {
		return messageGap(env.AggregateID, e.Seq)
	}
	return nil
}

// messageGap is the error of a message whose seq does not follow its conversation's messages.
func messageGap(conversationID string, seq uint64) error {
	return fmt.Errorf("message.sent with seq %d does not follow the messages of conversation %s (or the conversation is unknown)",
		seq, conversationID)
}

// citationsJSON is a message's citations as stored: a JSON array, nil (NULL) when there are none.
func citationsJSON(c []domain.Citation) *string {
	if len(c) == 0 {
		return nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil // a slice of plain strings always encodes
	}
	s := string(b)
	return &s
}
