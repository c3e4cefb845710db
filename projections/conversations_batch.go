package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
)

var (
	_ BatchApplier = (*ConversationProjection)(nil)
	_ BatchQueuer  = (*ConversationProjection)(nil)
)

// QueueBatch implements BatchQueuer for batches of message.sent events only (the steady traffic):
// it queues the insert of their messages and the update of their conversations. Any other event
// in envs, or one that does not decode or does not follow its conversation's previous message in
// the batch, leaves b as it was and answers false; the runner then applies the batch another way.
func (p *ConversationProjection) QueueBatch(b *pgx.Batch, schema string, envs []domain.Envelope) bool {
	run := newMessageRun()
	for _, env := range envs {
		if added, err := p.addMessage(run, env); !added || err != nil {
			return false
		}
	}
	if len(run.seqs) == 0 {
		return false
	}
	run.queue(b, schema)
	return true
}

// ApplyBatch applies envs in order with the same result as Apply on each, in far fewer
// statements: every run of consecutive message.sent events is one insert of all its messages and
// one update of each of their conversations (the projector's cost per message is otherwise one
// round trip to Postgres, which bounds it, and every send waiting for it, to a few thousand
// messages a second). Other events are applied one by one. A message whose seq does not follow its
// conversation's previous one is an error, as in Apply; after an error the transaction is unusable,
// and applying the events one at a time with Apply finds the one at fault.
func (p *ConversationProjection) ApplyBatch(ctx context.Context, tx pgx.Tx, schema string, envs []domain.Envelope) error {
	run := newMessageRun()
	for _, env := range envs {
		if added, err := p.addMessage(run, env); err != nil {
			return err
		} else if added {
			continue
		}
		if err := run.flush(ctx, tx, schema); err != nil {
			return err
		}
		if err := p.Apply(ctx, tx, schema, env); err != nil {
			return err
		}
	}
	return run.flush(ctx, tx, schema)
}

// addMessage adds env to run and reports true when it is a message.sent event; the error is one
// of decoding it, or of a message that does not follow its conversation's previous one in run.
func (p *ConversationProjection) addMessage(run *messageRun, env domain.Envelope) (bool, error) {
	if env.AggregateType != domain.ConversationAggregate || env.Type != domain.EventMessageSent {
		return false, nil
	}
	ev, err := p.reg.Decode(env)
	if err != nil {
		return true, fmt.Errorf("decode %s at %d: %w", env.Type, env.Sequence, err)
	}
	e, ok := ev.(*domain.MessageSent)
	if !ok {
		return true, fmt.Errorf("decode %s at %d: got %T", env.Type, env.Sequence, ev)
	}
	return true, run.add(env, e)
}

// messageRun collects consecutive messages as columns for one insert, and per conversation the
// first and last seq for one update.
type messageRun struct {
	tenants, convs, ids, texts, authorTypes, authorIDs []string
	clientIDs, citations                               []*string
	seqs                                               []int64
	ats                                                []time.Time
	byConv                                             map[domain.AggregateRef]int
	counts                                             []messageCount
}

// messageCount is what a run does to one conversation.
type messageCount struct {
	tenant, id   string
	first, last  int64
	lastAt       time.Time
	lastEventSeq int64
}

func newMessageRun() *messageRun {
	return &messageRun{byConv: make(map[domain.AggregateRef]int)}
}

// add appends a message; it must follow the conversation's previous message in the run.
func (r *messageRun) add(env domain.Envelope, e *domain.MessageSent) error {
	at := eventTime(e.SentAt, env)
	seq := int64(e.Seq)
	k := env.Aggregate()
	if i, ok := r.byConv[k]; ok {
		c := &r.counts[i]
		if seq != c.last+1 {
			return messageGap(env.AggregateID, e.Seq)
		}
		c.last, c.lastAt, c.lastEventSeq = seq, at, int64(env.Sequence)
	} else {
		r.byConv[k] = len(r.counts)
		r.counts = append(r.counts, messageCount{tenant: env.TenantID, id: env.AggregateID, first: seq, last: seq,
			lastAt: at, lastEventSeq: int64(env.Sequence)})
	}
	var clientID *string
	if e.ClientMessageID != "" {
		clientID = &e.ClientMessageID
	}
	r.tenants = append(r.tenants, env.TenantID)
	r.convs = append(r.convs, env.AggregateID)
	r.ids = append(r.ids, e.MessageID)
	r.texts = append(r.texts, e.Text)
	r.authorTypes = append(r.authorTypes, e.Author.Type)
	r.authorIDs = append(r.authorIDs, e.Author.ID)
	r.clientIDs = append(r.clientIDs, clientID)
	r.citations = append(r.citations, citationsJSON(e.Citations))
	r.seqs = append(r.seqs, seq)
	r.ats = append(r.ats, at)
	return nil
}

// flush writes the run, if any, and empties it: the messages, then each conversation's counters
// where its message count is the one before the run's first seq.
func (r *messageRun) flush(ctx context.Context, tx pgx.Tx, schema string) error {
	if len(r.seqs) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	r.queue(b, schema)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	*r = *newMessageRun()
	return nil
}

// queue queues on b the two statements that write the run: the insert of its messages, and the
// update of each of their conversations' counters where the conversation's message count is the
// one before the run's first seq. Any other count fails the statement in Postgres (the check
// must not wait for the client: in a pipelined batch the COMMIT comes right after): a message
// does not follow its previous one, or the conversation is unknown.
func (r *messageRun) queue(b *pgx.Batch, schema string) {
	conv := pgx.Identifier{schema, "conversations"}.Sanitize()
	msgs := pgx.Identifier{schema, "messages"}.Sanitize()
	n := len(r.counts)
	b.Queue(`INSERT INTO `+msgs+` (tenant_id, conversation_id, seq, id, text, author_type, author_id,
			client_message_id, created_at, citations)
		SELECT t, c, s, i, x, a, ai, cm, at, ci::jsonb FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[],
			$6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[]) AS u(t, c, s, i, x, a, ai, cm, at, ci)`,
		r.tenants, r.convs, r.seqs, r.ids, r.texts, r.authorTypes, r.authorIDs, r.clientIDs, r.ats, r.citations)
	tenants, ids := make([]string, n), make([]string, n)
	firsts, lasts, versions := make([]int64, n), make([]int64, n), make([]int64, n)
	ats := make([]time.Time, n)
	for i, c := range r.counts {
		tenants[i], ids[i], firsts[i], lasts[i], ats[i], versions[i] = c.tenant, c.id, c.first, c.last, c.lastAt, c.lastEventSeq
	}
	b.Queue(`WITH counted AS (UPDATE `+conv+` c SET message_count = u.last, last_message_at = u.at, version = u.version
			FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::bigint[])
				AS u(tenant_id, id, first, last, at, version)
			WHERE c.tenant_id = u.tenant_id AND c.id = u.id AND c.message_count = u.first - 1
			RETURNING 1)
		SELECT public.metachat_check(count(*) = $7, format('messages of %s of %s conversations do not follow their '
			|| 'previous messages (or the conversation is unknown)', $7 - count(*), $7)) FROM counted`,
		tenants, ids, firsts, lasts, ats, versions, int64(n))
}
