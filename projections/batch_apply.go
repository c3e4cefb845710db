package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// BatchApplier is a Projection that can apply several events with fewer statements than one per
// event (one round trip to Postgres per event bounds a projection, and every write that waits for
// it, to a few thousand events a second). The runner then applies each batch of two or more events
// with one ApplyBatch call, inside a savepoint; ApplyBatch must leave the read model exactly as
// Apply on each event in order would. When it fails other than transiently, the savepoint is
// rolled back and the batch is applied again one event at a time with Apply, which finds the
// poison event.
type BatchApplier interface {
	ApplyBatch(ctx context.Context, tx pgx.Tx, schema string, envs []domain.Envelope) error
}

// applyAll applies the events of batch above res.checkpoint with one ApplyBatch call when the
// projection is a BatchApplier, and records them in res. It reports false, having changed nothing,
// when the projection is not one, when there are fewer than two events, when one does not decode
// or when ApplyBatch failed other than transiently: the caller then applies the events one by one.
// A transient failure is returned.
func (r *Runner) applyAll(ctx context.Context, tx pgx.Tx, batch []delivered, res *batchResult, debug bool) (bool, error) {
	ba, ok := r.cfg.Projection.(BatchApplier)
	if !ok {
		return false, nil
	}
	envs, ok := decodeAfter(batch, res.checkpoint)
	if !ok || len(envs) < 2 {
		return false, nil
	}
	sp, err := tx.Begin(ctx) // a savepoint
	if err != nil {
		return false, fmt.Errorf("savepoint before batch apply: %w", err)
	}
	if err := ba.ApplyBatch(ctx, sp, r.schema, envs); err != nil {
		_ = sp.Rollback(ctx)
		if transient(ctx, err) {
			return false, fmt.Errorf("apply events %d to %d: %w", envs[0].Sequence, envs[len(envs)-1].Sequence, err)
		}
		r.log.DebugContext(ctx, "batch apply failed; applying the events one by one",
			"first_seq", envs[0].Sequence, "last_seq", envs[len(envs)-1].Sequence, "error", err)
		return false, nil
	}
	if err := sp.Commit(ctx); err != nil {
		return false, fmt.Errorf("release savepoint after batch apply: %w", err)
	}
	for _, env := range envs {
		res.applied++
		if debug {
			res.events = append(res.events, appliedEvent{id: env.ID, typ: env.Type, correlationID: env.CorrelationID, seq: env.Sequence})
		}
	}
	res.checkpoint = max(res.checkpoint, batch[len(batch)-1].seq)
	return true, nil
}

// BatchQueuer is a projection that can apply a batch of events as statements queued on a
// pgx.Batch. The runner sends them in a single round trip to Postgres together with the
// transaction's begin, the checkpoint update, its notification and the commit
// (runner_pipeline.go): for the steady traffic of one projection (messages, for conversations)
// that is one round trip per batch instead of one per statement.
type BatchQueuer interface {
	// QueueBatch queues on b statements that apply envs (in order, with the same result as Apply
	// on each), and reports true; or it queues nothing and reports false when it cannot apply
	// these events that way (the runner then applies them with ApplyBatch or Apply). A queued
	// statement that must hold must fail in Postgres (public.metachat_check, migration 0004), never
	// through an Exec callback: the COMMIT is queued after it, so a check made by the client would
	// come after the commit. A failed batch is applied again another way, which finds the poison
	// event if there is one.
	QueueBatch(b *pgx.Batch, schema string, envs []domain.Envelope) bool
}

// decodeAfter decodes the events of batch after the checkpoint cp (those at or below it are
// redeliveries), or reports false when one does not decode: applied one by one, that one then
// becomes the poison event.
func decodeAfter(batch []delivered, cp uint64) ([]domain.Envelope, bool) {
	envs := make([]domain.Envelope, 0, len(batch))
	for _, d := range batch {
		if d.seq <= cp {
			continue
		}
		env, err := eventstore.DecodeMsg(d.msg.Subject(), d.msg.Data(), d.seq)
		if err != nil {
			return nil, false
		}
		envs = append(envs, env)
	}
	return envs, true
}
