// Package migrations holds Metachat's Postgres schema changes for the read-model database as
// embedded SQL files (0001_base.sql, 0002_….sql, …) and applies them with Apply.
//
// The runner is deliberately small instead of goose or golang-migrate: it is about sixty lines,
// needs no extra dependency, and takes a transaction-scoped advisory lock (pg_advisory_xact_lock)
// around every file, so several instances starting at once against the same database apply each
// file exactly once without racing. Each file runs in its own transaction together with its row in
// schema_migrations(version, name, applied_at); a file that fails leaves nothing behind. Applying
// again is a no-op, so every process may call Apply at start-up.
//
// Migrations run as the connecting user, which becomes the owner of every object they create. The
// runtime roles AppRole and ProjectorRole created by the base migration own nothing: reads run as
// AppRole and projectors write as ProjectorRole (see package projections), so row-level security,
// which table owners would otherwise escape, always applies to them.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// Role names created by the base migration. Roles are cluster-wide in Postgres.
const (
	// AppRole is the runtime role of API reads: NOLOGIN, owns nothing, cannot bypass row-level
	// security, and sees only the rows of the tenant set in its transaction.
	AppRole = "metachat_app"
	// ProjectorRole is the role projectors write read models as: it owns nothing either and is
	// allowed every tenant's rows by an explicit policy on each read-model table.
	ProjectorRole = "metachat_projector"
)

// lockKey is the pg_advisory_xact_lock key serializing migrations ("metachat" in ASCII).
const lockKey int64 = 0x6d65746163686174

//go:embed *.sql
var files embed.FS

// DB is what Apply needs: *pgx.Conn, *pgxpool.Pool and pgx.Tx all satisfy it.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Migration is one embedded schema change.
type Migration struct {
	// Version is the number the file name starts with.
	Version int64
	// Name is the file name, such as "0001_base.sql".
	Name string
	// SQL is the file's content, run as one multi-statement string.
	SQL string
}

// All returns the embedded migrations in version order.
func All() ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	// A migration file is named by a four-digit version and a description.
	fileName := regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)
	out := make([]Migration, 0, len(names))
	seen := make(map[int64]string, len(names))
	for _, name := range names {
		m := fileName.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("migration file %q: name must look like 0001_description.sql", name)
		}
		v, _ := strconv.ParseInt(m[1], 10, 64) // four digits always parse
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migration files %q and %q share version %d", prev, name, v)
		}
		seen[v] = name
		body, err := files.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(body)})
	}
	return out, nil
}

// Apply applies every embedded migration not applied yet, in version order, each in its own
// transaction under an advisory lock. It is idempotent and safe to run concurrently.
func Apply(ctx context.Context, db DB) error {
	all, err := All()
	if err != nil {
		return err
	}
	for _, m := range all {
		if err := applyOne(ctx, db, m); err != nil {
			return err
		}
	}
	return nil
}

// applyOne applies m unless schema_migrations says it was applied before.
func applyOne(ctx context.Context, db DB, m Migration) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
		return fmt.Errorf("migration %s: lock: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS public.schema_migrations (
		version    bigint PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migration %s: create schema_migrations: %w", m.Name, err)
	}
	var done bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM public.schema_migrations WHERE version = $1)",
		m.Version).Scan(&done); err != nil {
		return fmt.Errorf("migration %s: read schema_migrations: %w", m.Name, err)
	}
	if done {
		return nil
	}
	// Without arguments pgx sends the file with the simple protocol, so it may hold many statements.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO public.schema_migrations (version, name) VALUES ($1, $2)",
		m.Version, m.Name); err != nil {
		return fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return nil
}
