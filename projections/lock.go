package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lockWaitSlice bounds one wait for an advisory lock (lock_timeout of the lock session). The wait
// is repeated until the lock is free or the context ends; the bound only matters when the waiting
// client goes away, because the server notices that only when the statement ends.
const lockWaitSlice = 2 * time.Second

// advisoryKey derives a 64-bit advisory lock key from its parts (FNV-1a of "metachat" and the parts).
func advisoryKey(parts ...string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("metachat"))
	for _, p := range parts {
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(p))
	}
	return int64(h.Sum64())
}

// runnerLockKey is the session lock a runner of one projection generation holds while it runs.
func runnerLockKey(projection string, generation int) int64 {
	return advisoryKey("runner", projection, strconv.Itoa(generation))
}

// generationsLockKey serializes creating and switching the generations of one projection.
func generationsLockKey(projection string) int64 {
	return advisoryKey("generations", projection)
}

// rebuildLockKey is held by a rebuild of one projection, so two rebuilds never overlap.
func rebuildLockKey(projection string) int64 {
	return advisoryKey("rebuild", projection)
}

// sessionLock is a session-level advisory lock held on a connection of its own, taken out of a
// pool (Hijack) so that it neither counts against the pool nor returns to it. Closing the
// connection releases the lock, also when the process dies.
type sessionLock struct {
	conn *pgx.Conn
	key  int64
}

// acquireSessionLock takes the lock, waiting for it as long as ctx allows when wait is true. With
// wait false it returns (nil, nil) when another session holds the lock.
func acquireSessionLock(ctx context.Context, pool *pgxpool.Pool, key int64, wait bool) (*sessionLock, error) {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire lock connection: %w", err)
	}
	conn := pc.Hijack()
	l := &sessionLock{conn: conn, key: key}
	ok, err := l.lock(ctx, wait)
	if err != nil || !ok {
		l.release()
		return nil, err
	}
	return l, nil
}

func (l *sessionLock) lock(ctx context.Context, wait bool) (bool, error) {
	if !wait {
		var ok bool
		if err := l.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&ok); err != nil {
			return false, fmt.Errorf("try advisory lock: %w", err)
		}
		return ok, nil
	}
	if _, err := l.conn.Exec(ctx, "SELECT set_config('lock_timeout', $1, false)",
		strconv.FormatInt(lockWaitSlice.Milliseconds(), 10)); err != nil {
		return false, fmt.Errorf("set lock timeout: %w", err)
	}
	for {
		_, err := l.conn.Exec(ctx, "SELECT pg_advisory_lock($1)", l.key)
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			return true, nil
		case errors.As(err, &pgErr) && pgErr.Code == "55P03" && ctx.Err() == nil: // lock_not_available
			continue
		case ctx.Err() != nil:
			return false, ctx.Err()
		default:
			return false, fmt.Errorf("advisory lock: %w", err)
		}
	}
}

// check reports whether the lock's session is still alive (and so still holds the lock).
func (l *sessionLock) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := l.conn.Exec(ctx, "SELECT 1"); err != nil {
		return fmt.Errorf("lock session lost: %w", err)
	}
	return nil
}

// release unlocks explicitly, then ends the lock's session. Closing alone would release the lock
// only once the server notices the session ended, asynchronously: a caller taking the lock right
// after release returned could still find it held.
func (l *sessionLock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.conn.Exec(ctx, "SELECT pg_advisory_unlock_all()")
	_ = l.conn.Close(ctx)
}
