package projections

import (
	"context"
	"time"
)

// A batch that holds none of the projection's events changes nothing but the checkpoint. Under a
// steady stream of other aggregates' events (messages, for every projection but conversations),
// committing each such batch would cost a transaction, a checkpoint update and a notification per
// batch per projection. So the runner acknowledges such a batch at once and defers its checkpoint:
// the next batch with an event of its own commits it along, and otherwise it is committed once
// the stream has been quiet for deferIdle, or once it has been deferred for deferLimit. Waiting for
// the sequence of an event the projection does not apply can therefore take up to deferLimit; the
// services wait only for their own projections' events. After a crash the consumer has
// acknowledged past the checkpoint, so it is recreated there and the events are passed over again.
const (
	deferIdle  = 20 * time.Millisecond
	deferLimit = 250 * time.Millisecond
)

// passOver acknowledges a batch with none of the projection's events (last is its last event)
// and defers its checkpoint, committing it when it has waited deferLimit.
func (r *Runner) passOver(ctx context.Context, last delivered) error {
	r.ack(ctx, last)
	if r.deferred == nil {
		r.deferredSince = time.Now()
	}
	r.deferred = &last
	r.update(func(s *Status) { s.Lag = last.pending })
	if time.Since(r.deferredSince) < deferLimit {
		return nil
	}
	return r.commitDeferred(ctx)
}

// idleWait is how long the runner waits for the next batch: briefly while a checkpoint is
// deferred, so that it is committed soon after the stream goes quiet.
func (r *Runner) idleWait() time.Duration {
	if r.deferred != nil {
		return min(deferIdle, r.cfg.Tuning.IdleWait)
	}
	return r.cfg.Tuning.IdleWait
}

// commitDeferred commits the deferred checkpoint, if any.
func (r *Runner) commitDeferred(ctx context.Context) error {
	d := r.deferred
	if d == nil {
		return nil
	}
	res, err := r.applyBatch(ctx, []delivered{*d})
	if err != nil {
		return err
	}
	r.deferred = nil
	r.committed(res, *d)
	return nil
}

// flushDeferred commits the deferred checkpoint on the way out, even when ctx has ended, so that
// a clean stop leaves the checkpoint where the acknowledgements are.
func (r *Runner) flushDeferred(ctx context.Context) {
	if r.deferred == nil {
		return
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := r.commitDeferred(fctx); err != nil {
		r.log.WarnContext(ctx, "commit the deferred checkpoint; the events will be passed over again", "error", err)
	}
}
