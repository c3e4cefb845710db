package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// errCheckpointMoved is a checkpoint that is not where the runner left it: something else wrote
// it (it holds the generation's lock, so nothing should). The runner starts again from the
// database's checkpoint.
var errCheckpointMoved = errors.New("the checkpoint moved under the runner")

// Statements of the pipelined batch. The checkpoint update names the checkpoint the runner
// expects, which takes the row's lock as SELECT ... FOR UPDATE would, and fails in Postgres (so
// that the COMMIT queued after it does not happen) unless it finds the checkpoint there.
const (
	sqlBegin          = `BEGIN`
	sqlAsyncCommit    = `SET LOCAL synchronous_commit TO off`
	sqlCommit         = `COMMIT`
	sqlMoveCheckpoint = `WITH moved AS (UPDATE public.projection_checkpoints
			SET last_seq = $3, updated_at = now(), stopped_at = NULL, stop_error = NULL, stop_seq = NULL
			WHERE projection = $1 AND generation = $2 AND last_seq = $4
			RETURNING 1)
		SELECT public.metachat_check(count(*) = 1, '` + checkpointMoved + `') FROM moved`
	sqlNotifyCheckpoint = `SELECT pg_notify($1, $2)`
	// checkpointMoved is the message of the failed check.
	checkpointMoved = "the checkpoint moved under the runner"
)

// queueCheckpoint queues on b the move of the checkpoint from from (where it must be) to to, and
// its notification to the waiters.
func (r *Runner) queueCheckpoint(b *pgx.Batch, from, to uint64) {
	b.Queue(sqlMoveCheckpoint, r.name, r.cfg.Generation, int64(to), int64(from))
	b.Queue(sqlNotifyCheckpoint, CheckpointChannel, r.name+":"+strconv.Itoa(r.cfg.Generation)+":"+strconv.FormatUint(to, 10))
}

// isCheckpointMoved reports whether err is the failed check of sqlMoveCheckpoint.
func isCheckpointMoved(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514" && pgErr.Message == checkpointMoved
}

// applyPipelined applies a batch whose events a BatchQueuer projection can queue, in one round
// trip: BEGIN, the projection's statements, the checkpoint update (which must find the checkpoint
// where this runner left it), the notification and COMMIT, sent as one pipeline. With an
// AfterApply hook the COMMIT is a second round trip after the hook. It reports false, having
// changed nothing, when the batch is not for this path (a projection that does not queue, events
// it does not queue, redeliveries only) or when the pipeline failed for a reason that applying the
// events one by one will name (a poison event); then the caller applies the batch the other way.
func (r *Runner) applyPipelined(ctx context.Context, batch []delivered) (batchResult, bool, error) {
	q, ok := r.cfg.Projection.(BatchQueuer)
	if !ok {
		return batchResult{}, false, nil
	}
	cp := r.checkpoint
	envs, ok := decodeAfter(batch, cp)
	last := batch[len(batch)-1].seq
	if !ok || len(envs) == 0 {
		return batchResult{}, false, nil
	}
	b := &pgx.Batch{}
	b.Queue(sqlBegin)
	b.Queue(sqlAsyncCommit)
	if !q.QueueBatch(b, r.schema, envs) {
		return batchResult{}, false, nil
	}
	r.queueCheckpoint(b, cp, last)
	hook := r.cfg.Hooks.AfterApply
	if hook == nil {
		b.Queue(sqlCommit)
	}
	conn, err := r.cfg.Pool.Acquire(ctx)
	if err != nil {
		return batchResult{}, false, fmt.Errorf("begin batch: %w", err)
	}
	defer conn.Release() // a connection left inside a transaction is closed, not reused
	err = conn.SendBatch(ctx, b).Close()
	if err == nil && hook != nil {
		if err = hook(last); err != nil {
			rollback(ctx, conn.Conn())
			return batchResult{}, false, fmt.Errorf("after apply hook: %w", err)
		}
		if _, err = conn.Exec(ctx, sqlCommit); err != nil {
			err = fmt.Errorf("commit batch: %w", err)
		}
	}
	if err != nil {
		rollback(ctx, conn.Conn())
		if isCheckpointMoved(err) {
			return batchResult{}, false, fmt.Errorf("apply events %d to %d: %w: expected %d", envs[0].Sequence, last, errCheckpointMoved, cp)
		}
		if transient(ctx, err) {
			return batchResult{}, false, fmt.Errorf("apply events %d to %d: %w", envs[0].Sequence, last, err)
		}
		r.log.DebugContext(ctx, "pipelined batch failed; applying it another way",
			"first_seq", envs[0].Sequence, "last_seq", last, "error", err)
		return batchResult{}, false, nil
	}
	if h := r.cfg.Hooks.AfterCommit; h != nil {
		if err := h(last); err != nil {
			return batchResult{}, false, fmt.Errorf("after commit hook: %w", err)
		}
	}
	res := batchResult{checkpoint: last, applied: len(envs), advanced: true}
	if r.log.Enabled(ctx, slog.LevelDebug) {
		for _, env := range envs {
			res.events = append(res.events, appliedEvent{id: env.ID, typ: env.Type, correlationID: env.CorrelationID, seq: env.Sequence})
		}
	}
	return res, true, nil
}

// rollback ends whatever transaction conn is in; an error leaves the connection out of a
// transaction state the pool accepts, and the pool then closes it on release.
func rollback(ctx context.Context, conn *pgx.Conn) {
	if conn.PgConn().TxStatus() == 'I' {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = conn.Exec(rctx, "ROLLBACK")
}
