package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// delivered is one fetched message with its stream position.
type delivered struct {
	msg jetstream.Msg
	seq uint64
	// pending is how many events the consumer still had to deliver after this one.
	pending uint64
}

// poison is an event the projection could not decode or apply.
type poison struct {
	index int
	seq   uint64
	env   domain.Envelope
	err   error
}

// batchResult is what one batch transaction did.
type batchResult struct {
	checkpoint uint64
	applied    int
	// advanced is true when the checkpoint moved: events were applied.
	advanced bool
	poison   *poison
	// events are the applied events, kept only when the runner logs at debug level.
	events []appliedEvent
}

// appliedEvent is what the debug log says of one applied event.
type appliedEvent struct {
	id, typ, correlationID string
	seq                    uint64
}

// handle applies one fetched batch and acknowledges it. A poison event rolls the batch back; the
// events before it are then applied alone, and the runner stops at the poison event.
func (r *Runner) handle(ctx context.Context, msgs []jetstream.Msg) error {
	batch := make([]delivered, 0, len(msgs))
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("message metadata: %w", err)
		}
		// The consumer numbers its deliveries 1, 2, 3, …; a number skipped is a delivery that went
		// to a pull request this runner no longer reads (lost in a reconnect), and the events after
		// it must not be applied before it. Starting again recreates the consumer at the checkpoint.
		if md.Sequence.Consumer != r.deliveries+1 {
			return fmt.Errorf("%w: delivery %d came after %d; starting again from the checkpoint",
				errDeliveryLost, md.Sequence.Consumer, r.deliveries)
		}
		r.deliveries = md.Sequence.Consumer
		batch = append(batch, delivered{msg: m, seq: md.Sequence.Stream, pending: md.NumPending})
	}
	// One consumer delivers in order; redeliveries may interleave, and the checkpoint skips them.
	slices.SortStableFunc(batch, func(a, b delivered) int { return cmp.Compare(a.seq, b.seq) })
	start := time.Now()
	var stop *poison
	for len(batch) > 0 {
		res, err := r.applyBatch(ctx, batch)
		if err != nil {
			return err
		}
		if res.poison == nil {
			last := batch[len(batch)-1]
			r.ack(ctx, last)
			r.committed(res, last)
			r.observed(ctx, res, len(batch), last, time.Since(start)) // metrics and debug logs
			break
		}
		stop = res.poison
		batch = batch[:stop.index]
	}
	if stop != nil {
		return r.stop(ctx, stop)
	}
	return nil
}

// applyBatch applies the events of batch above the checkpoint in one transaction with the
// checkpoint update, or finds the first poison event (and then applies nothing).
func (r *Runner) applyBatch(ctx context.Context, batch []delivered) (batchResult, error) {
	if res, ok, err := r.applyPipelined(ctx, batch); err != nil || ok {
		return res, err
	}
	tx, err := r.cfg.Pool.Begin(ctx)
	if err != nil {
		return batchResult{}, fmt.Errorf("begin batch: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// The batch commits without waiting for its WAL to reach the disk: a read model is rebuilt
	// from the stream, and a crash of Postgres can only lose the last commits as a whole, read
	// model and checkpoint together, which the runner then applies again (consumer recreates the
	// consumer at the checkpoint when it acknowledged past it). One round trip with the lock.
	var cp int64
	b := &pgx.Batch{}
	b.Queue(`SET LOCAL synchronous_commit TO off`)
	b.Queue(`SELECT last_seq FROM public.projection_checkpoints
		WHERE projection = $1 AND generation = $2 FOR UPDATE`, r.name, r.cfg.Generation)
	br := tx.SendBatch(ctx, b)
	if _, err = br.Exec(); err == nil {
		err = br.QueryRow().Scan(&cp)
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return batchResult{}, fmt.Errorf("%w: no checkpoint", errGenerationGone)
	}
	if err != nil {
		return batchResult{}, fmt.Errorf("lock checkpoint: %w", err)
	}
	res := batchResult{checkpoint: uint64(cp)}
	debug := r.log.Enabled(ctx, slog.LevelDebug)
	// Projections that apply a whole batch at once (BatchApplier, batch_apply.go).
	if all, err := r.applyAll(ctx, tx, batch, &res, debug); err != nil {
		return batchResult{}, err
	} else if all {
		batch = nil
	}
	for i, d := range batch {
		if d.seq <= res.checkpoint {
			continue // applied before: a redelivery
		}
		env, err := eventstore.DecodeMsg(d.msg.Subject(), d.msg.Data(), d.seq)
		if err == nil {
			// The event's correlation id goes with it, for whatever Apply logs or causes.
			err = r.cfg.Projection.Apply(domain.WithCorrelationID(ctx, env.CorrelationID), tx, r.schema, env)
		}
		if err != nil {
			if transient(ctx, err) {
				return batchResult{}, fmt.Errorf("apply event %d: %w", d.seq, err)
			}
			return batchResult{poison: &poison{index: i, seq: d.seq, env: env, err: err}}, nil
		}
		res.checkpoint = d.seq
		res.applied++
		if debug {
			res.events = append(res.events, appliedEvent{id: env.ID, typ: env.Type, correlationID: env.CorrelationID, seq: d.seq})
		}
	}
	if res.checkpoint == uint64(cp) {
		return res, nil // only redeliveries
	}
	res.advanced = true
	if h := r.cfg.Hooks.AfterApply; h != nil {
		if err := h(res.checkpoint); err != nil {
			return batchResult{}, fmt.Errorf("after apply hook: %w", err)
		}
	}
	// The checkpoint and its notification, in one round trip.
	b = &pgx.Batch{}
	r.queueCheckpoint(b, uint64(cp), res.checkpoint)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return batchResult{}, fmt.Errorf("update checkpoint: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return batchResult{}, fmt.Errorf("commit batch: %w", err)
	}
	if h := r.cfg.Hooks.AfterCommit; h != nil {
		if err := h(res.checkpoint); err != nil {
			return batchResult{}, fmt.Errorf("after commit hook: %w", err)
		}
	}
	return res, nil
}

// ack acknowledges everything up to d (the consumer's policy is AckAll) without waiting for the
// server to confirm: a lost acknowledgement only means the events are redelivered after AckWait and
// skipped, as they are below the checkpoint.
func (r *Runner) ack(ctx context.Context, d delivered) {
	if err := d.msg.Ack(); err != nil && ctx.Err() == nil {
		r.log.WarnContext(ctx, "acknowledge batch; it will be redelivered and skipped", "seq", d.seq, "error", err)
	}
}

// committed records a committed batch in the status and tells OnCommit.
func (r *Runner) committed(res batchResult, last delivered) {
	if res.advanced {
		r.checkpoint = res.checkpoint
	}
	r.update(func(s *Status) {
		if res.checkpoint > s.Checkpoint {
			s.Checkpoint = res.checkpoint
		}
		s.Lag = last.pending
		s.StreamLastSeq = max(last.seq+last.pending, s.Checkpoint)
		if res.advanced {
			s.Stopped, s.StopSeq, s.StoppedAt, s.Error = false, 0, time.Time{}, ""
		}
	})
	if res.advanced && r.cfg.OnCommit != nil {
		r.cfg.OnCommit(res.checkpoint, last.pending)
	}
	if res.advanced && last.pending == 0 && r.cfg.OnCaughtUp != nil {
		r.cfg.OnCaughtUp(res.checkpoint)
	}
}

// observed records a committed batch of n delivered events, the last one last, that took d: in
// the metrics, and at debug level in the log, each applied event (with its correlation id, so a
// request can be followed from the HTTP access log to its projections) and a summary.
func (r *Runner) observed(ctx context.Context, res batchResult, n int, last delivered, d time.Duration) {
	if res.applied > 0 {
		r.cfg.Metrics.batch(r.name, res.applied, d)
	}
	if len(res.events) == 0 {
		return
	}
	for _, e := range res.events {
		r.log.LogAttrs(ctx, slog.LevelDebug, "event applied",
			slog.String("event_id", e.id),
			slog.String("type", e.typ),
			slog.Uint64("seq", e.seq),
			slog.String("correlation_id", e.correlationID))
	}
	r.log.LogAttrs(ctx, slog.LevelDebug, "batch applied",
		slog.Int("events", res.applied),
		slog.Int("skipped", n-res.applied),
		slog.Uint64("checkpoint", res.checkpoint),
		slog.Uint64("pending", last.pending),
		slog.Duration("duration", d))
}

// stop records the poison event in the checkpoint row, logs it and returns the *StoppedError.
func (r *Runner) stop(ctx context.Context, p *poison) error {
	now := r.cfg.Now().UTC()
	// The runner stops consuming now: its status says so before the row does, so a reader never
	// sees the row stopped while the runner still reports itself running.
	r.update(func(s *Status) {
		s.Running = false
		s.Stopped, s.StopSeq, s.StoppedAt, s.Error = true, p.seq, now, p.err.Error()
	})
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := r.cfg.Pool.Exec(sctx, `UPDATE public.projection_checkpoints
		SET stopped_at = $3, stop_error = $4, stop_seq = $5
		WHERE projection = $1 AND generation = $2`,
		r.name, r.cfg.Generation, now, p.err.Error(), int64(p.seq)); err != nil {
		r.log.ErrorContext(ctx, "record projection stop", "error", err)
	}
	r.log.ErrorContext(ctx, "projection stopped: an event cannot be applied; fix the projection, then resume it",
		"seq", p.seq, "event_id", p.env.ID, "event_type", p.env.Type, "tenant_id", p.env.TenantID, "error", p.err)
	return &StoppedError{Projection: r.name, Generation: r.cfg.Generation, Seq: p.seq, Err: p.err}
}
