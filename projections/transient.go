package projections

import (
	"context"
	"errors"
	"net"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/metachat/metachat/domain"
)

// transient reports whether err is a failure of the environment rather than of the event: the
// context ended, the connection broke, or Postgres reported a condition worth retrying (connection
// exceptions, serialization failures and deadlocks, insufficient resources, operator intervention,
// system errors), or a dependency reported EUNAVAILABLE. Such an error never makes an event a poison event.
func transient(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	// A dependency that is down (an embedding service) may come back.
	var de *domain.Error
	if errors.As(err, &de) && de.Code == domain.EUNAVAILABLE {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "40", "53", "57", "58":
			return true
		}
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var connErr *pgconn.ConnectError
	return errors.As(err, &connErr)
}
