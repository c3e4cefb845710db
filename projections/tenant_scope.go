package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
)

// Beginner starts transactions: *pgxpool.Pool and *pgx.Conn satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// WithTenant runs fn in a transaction scoped to one tenant: it begins a transaction on db, sets
// app.tenant_id for that transaction only (set_config(…, true), never a session-level SET, so the
// pooled connection keeps no tenant afterwards), calls fn and commits. With the app pool the
// row-level security policies then show fn exactly that tenant's rows. tenantID must be a UUID
// (EINVALID otherwise); fn's error is returned as is, after a rollback.
func WithTenant(ctx context.Context, db Beginner, tenantID string, fn func(pgx.Tx) error) error {
	id, err := uuid.Parse(tenantID)
	if err != nil {
		return domain.Invalid("Invalid tenant id.", domain.FieldError{Field: "tenant_id", Message: "must be a UUID"})
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return &domain.Error{Code: domain.EUNAVAILABLE, Message: "The database is unavailable.",
			Err: fmt.Errorf("begin tenant transaction: %w", err)}
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1, true)", id.String()); err != nil {
		return fmt.Errorf("set tenant of transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit tenant transaction: %w", err)
	}
	return nil
}

// getOne reads one row of a tenant through WithTenant: an id that is not a UUID and a missing row
// (absent, or another tenant's, which row-level security hides) are both ENOTFOUND with the message
// notFound, so the two can never be told apart.
func getOne[T any](ctx context.Context, db Beginner, tenantID, id, notFound string, scan func(pgx.Row) (T, error), query string, args ...any) (T, error) {
	var zero T
	if _, err := uuid.Parse(id); err != nil {
		return zero, domain.Errorf(domain.ENOTFOUND, "%s", notFound)
	}
	var out T
	err := WithTenant(ctx, db, tenantID, func(tx pgx.Tx) error {
		var err error
		out, err = scan(tx.QueryRow(ctx, query, args...))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return zero, domain.Errorf(domain.ENOTFOUND, "%s", notFound)
	}
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", id, err)
	}
	return out, nil
}
