package projections

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/migrations"
)

// switchLockTimeout bounds how long a switch waits for the locks on the views it replaces.
const switchLockTimeout = time.Second

// createGeneration creates generation gen of p in state building: its schema, its tables through
// Setup (checked for tenant_id and forced row-level security), the roles' grants and its
// checkpoint at 0. It runs in the owner's transaction tx.
func createGeneration(ctx context.Context, tx pgx.Tx, p Projection, gen int) error {
	name := p.Name()
	schema := SchemaName(name, gen)
	s := pgx.Identifier{schema}.Sanitize()
	if _, err := tx.Exec(ctx, "CREATE SCHEMA "+s); err != nil {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	if err := p.Setup(ctx, tx, schema); err != nil {
		return fmt.Errorf("set up projection %s in %s: %w", name, schema, err)
	}
	if err := checkTables(ctx, tx, name, schema); err != nil {
		return err
	}
	app := pgx.Identifier{migrations.AppRole}.Sanitize()
	projector := pgx.Identifier{migrations.ProjectorRole}.Sanitize()
	grants := "GRANT USAGE ON SCHEMA " + s + " TO " + app + ", " + projector + ";\n" +
		"GRANT SELECT ON ALL TABLES IN SCHEMA " + s + " TO " + app + ";\n" +
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + s + " TO " + projector + ";\n" +
		"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA " + s + " TO " + projector + ";"
	if _, err := tx.Exec(ctx, grants); err != nil {
		return fmt.Errorf("grant access to %s: %w", schema, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO public.projection_generations (projection, generation, state)
		VALUES ($1, $2, 'building')`, name, gen); err != nil {
		return fmt.Errorf("record generation %d of %s: %w", gen, name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO public.projection_checkpoints (projection, generation)
		VALUES ($1, $2)`, name, gen); err != nil {
		return fmt.Errorf("record checkpoint of %s generation %d: %w", name, gen, err)
	}
	return nil
}

// checkTables refuses a schema with no table, or with a table that lacks tenant_id uuid NOT NULL
// or forced row-level security with policies.
func checkTables(ctx context.Context, tx pgx.Tx, name, schema string) error {
	rows, err := tx.Query(ctx, `SELECT c.relname,
			EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
				AND a.atttypid = 'uuid'::regtype AND a.attnotnull AND NOT a.attisdropped),
			c.relrowsecurity AND c.relforcerowsecurity,
			EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
		ORDER BY c.relname`, schema)
	if err != nil {
		return fmt.Errorf("list tables of %s: %w", schema, err)
	}
	type table struct {
		name                     string
		tenant, forced, policies bool
	}
	tables, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (table, error) {
		var t table
		err := row.Scan(&t.name, &t.tenant, &t.forced, &t.policies)
		return t, err
	})
	if err != nil {
		return fmt.Errorf("list tables of %s: %w", schema, err)
	}
	if len(tables) == 0 {
		return fmt.Errorf("projection %s: Setup created no table in %s", name, schema)
	}
	var errs []error
	for _, t := range tables {
		if !t.tenant {
			errs = append(errs, fmt.Errorf("table %s has no tenant_id uuid NOT NULL column", t.name))
		}
		if !t.forced || !t.policies {
			errs = append(errs, fmt.Errorf("table %s lacks forced row-level security with policies (EnableTenantRLS)", t.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("projection %s: %w", name, err)
	}
	return nil
}

// tablesOf lists the tables of a schema.
func tablesOf(ctx context.Context, tx pgx.Tx, schema string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname`, schema)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", schema, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", schema, err)
	}
	return names, nil
}

// publicRelation describes public.<name>: whether it exists, whether it is a view, and the schemas
// of the relations the view reads.
func publicRelation(ctx context.Context, tx pgx.Tx, name string) (exists, isView bool, targets []string, err error) {
	err = tx.QueryRow(ctx, `SELECT c.relkind = 'v',
			coalesce((SELECT array_agg(DISTINCT tn.nspname::text)
				FROM pg_rewrite r
				JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
					AND d.refclassid = 'pg_class'::regclass
				JOIN pg_class t ON t.oid = d.refobjid AND t.oid <> c.oid
				JOIN pg_namespace tn ON tn.oid = t.relnamespace
				WHERE r.ev_class = c.oid), '{}')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relname = $1`, name).Scan(&isView, &targets)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil, nil
	}
	if err != nil {
		return false, false, nil, fmt.Errorf("look up public.%s: %w", name, err)
	}
	return true, isView, targets, nil
}

// activeGeneration returns the active generation of a projection, 0 when there is none.
func activeGeneration(ctx context.Context, db interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, name string) (int, error) {
	var gen int
	err := db.QueryRow(ctx, `SELECT generation FROM public.projection_generations
		WHERE projection = $1 AND state = 'active'`, name).Scan(&gen)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read active generation of %s: %w", name, err)
	}
	return gen, nil
}

// activate makes generation gen of a projection the active one, in the owner's transaction tx:
// the views in public stop pointing at the old active generation's tables and point at gen's, the
// old generation becomes retired and gen active, and SwitchChannel is notified. Readers see either
// the old views or the new ones, never none: the whole switch commits at once.
func activate(ctx context.Context, tx pgx.Tx, name string, gen int) error {
	// Dropping a view waits for the transactions reading it, and queues new readers behind it:
	// give up instead of stalling every reader behind one long transaction (Rebuild retries).
	if _, err := tx.Exec(ctx, "SELECT set_config('lock_timeout', $1, true)",
		strconv.FormatInt(switchLockTimeout.Milliseconds(), 10)); err != nil {
		return fmt.Errorf("set lock timeout: %w", err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", generationsLockKey(name)); err != nil {
		return fmt.Errorf("lock generations of %s: %w", name, err)
	}
	var state string
	err := tx.QueryRow(ctx, `SELECT state FROM public.projection_generations
		WHERE projection = $1 AND generation = $2 AND dropped_at IS NULL FOR UPDATE`, name, gen).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Errorf(domain.ENOTFOUND, "Projection %s has no generation %d.", name, gen)
	}
	if err != nil {
		return fmt.Errorf("read generation %d of %s: %w", gen, name, err)
	}
	if state != StateBuilding {
		return domain.Errorf(domain.ECONFLICT, "Generation %d of projection %s is %s, not building.", gen, name, state)
	}
	old, err := activeGeneration(ctx, tx, name)
	if err != nil {
		return err
	}
	if old != 0 {
		if err := dropViews(ctx, tx, SchemaName(name, old)); err != nil {
			return err
		}
	}
	if err := createViews(ctx, tx, name, SchemaName(name, gen)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE public.projection_generations SET state = 'retired', retired_at = now()
		WHERE projection = $1 AND state = 'active'`, name); err != nil {
		return fmt.Errorf("retire generation %d of %s: %w", old, name, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE public.projection_generations SET state = 'active', activated_at = now()
		WHERE projection = $1 AND generation = $2`, name, gen); err != nil {
		return fmt.Errorf("activate generation %d of %s: %w", gen, name, err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", SwitchChannel, name+":"+strconv.Itoa(gen)); err != nil {
		return fmt.Errorf("notify switch of %s: %w", name, err)
	}
	return nil
}

// dropViews drops the public views that read the tables of schema.
func dropViews(ctx context.Context, tx pgx.Tx, schema string) error {
	tables, err := tablesOf(ctx, tx, schema)
	if err != nil {
		return err
	}
	for _, t := range tables {
		exists, isView, targets, err := publicRelation(ctx, tx, t)
		if err != nil {
			return err
		}
		if !exists || !isView || len(targets) != 1 || targets[0] != schema {
			continue // not ours
		}
		if _, err := tx.Exec(ctx, "DROP VIEW "+pgx.Identifier{"public", t}.Sanitize()); err != nil {
			return fmt.Errorf("drop view public.%s: %w", t, err)
		}
	}
	return nil
}

// createViews creates public.<table> for every table of schema: a security_invoker view, so the
// row-level security of the table applies to the role that reads the view, not to its owner.
func createViews(ctx context.Context, tx pgx.Tx, name, schema string) error {
	tables, err := tablesOf(ctx, tx, schema)
	if err != nil {
		return err
	}
	app := pgx.Identifier{migrations.AppRole}.Sanitize()
	projector := pgx.Identifier{migrations.ProjectorRole}.Sanitize()
	for _, t := range tables {
		exists, _, targets, err := publicRelation(ctx, tx, t)
		if err != nil {
			return err
		}
		if exists {
			return domain.Errorf(domain.ECONFLICT, "Projection %s cannot publish its table %s: public.%s already exists (reading %s).",
				name, t, t, strings.Join(targets, ", "))
		}
		view := pgx.Identifier{"public", t}.Sanitize()
		sql := "CREATE VIEW " + view + " WITH (security_invoker = true) AS SELECT * FROM " +
			pgx.Identifier{schema, t}.Sanitize() + ";\n" +
			"GRANT SELECT ON " + view + " TO " + app + ", " + projector + ";"
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create view public.%s: %w", t, err)
		}
	}
	return nil
}
