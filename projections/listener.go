package projections

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// listener holds one connection that LISTENs on some channels, and reconnects when it breaks.
type listener struct {
	pool     *pgxpool.Pool
	channels []string
	retry    time.Duration
	log      *slog.Logger
	// onConnect runs after every successful LISTEN, before notifications are delivered; it is
	// where state that notifications keep current is re-read.
	onConnect func(ctx context.Context)
	// onNotify receives every notification.
	onNotify func(channel, payload string)
	// onDisconnect runs when the connection is lost.
	onDisconnect func()
}

// run listens until ctx ends.
func (l *listener) run(ctx context.Context) {
	for {
		err := l.session(ctx)
		if l.onDisconnect != nil {
			l.onDisconnect()
		}
		if ctx.Err() != nil {
			return
		}
		l.log.WarnContext(ctx, "notification listener lost its connection; reconnecting",
			"channels", l.channels, "error", err, "retry_in", l.retry)
		t := time.NewTimer(l.retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session is one connection's life: LISTEN, onConnect, then notifications until an error.
func (l *listener) session(ctx context.Context) error {
	pc, err := l.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire listener connection: %w", err)
	}
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	for _, ch := range l.channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	if l.onConnect != nil {
		l.onConnect(ctx)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		l.onNotify(n.Channel, n.Payload)
	}
}
