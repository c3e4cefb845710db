package projections_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

func TestRowLevelSecurity(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	m := h.manager(t, projections.NewTenantProjection(h.reg), &counter{reg: h.reg})
	start(t, m.Run)
	w := newWaiter(t, h, 10*time.Second)
	a, _ := h.createTenant(t, "Tenant A")
	b, seq := h.createTenant(t, "Tenant B")
	if err := w.WaitFor(ctx, projections.TenantsProjection, seq); err != nil {
		t.Fatal(err)
	}
	app := h.pools.App

	t.Run("no tenant set sees nothing", func(t *testing.T) {
		if c := queryInt(t, app, "SELECT count(*) FROM tenants"); c != 0 {
			t.Errorf("metachat_app without a tenant sees %d rows", c)
		}
		if c := queryInt(t, app, "SELECT count(*) FROM rm_tenants_g1.tenants"); c != 0 {
			t.Errorf("metachat_app without a tenant sees %d rows of the table itself", c)
		}
		if c := queryInt(t, h.pools.Projector, "SELECT count(*) FROM tenants"); c != 2 {
			t.Errorf("metachat_projector sees %d rows, want 2", c)
		}
	})

	t.Run("a tenant sees only itself", func(t *testing.T) {
		err := projections.WithTenant(ctx, app, a, func(tx pgx.Tx) error {
			if c := queryInt(t, tx, "SELECT count(*) FROM tenants"); c != 1 {
				t.Errorf("tenant A sees %d rows, want 1", c)
			}
			if c := queryInt(t, tx, "SELECT count(*) FROM tenants WHERE tenant_id = $1", b); c != 0 {
				t.Errorf("tenant A sees tenant B's row")
			}
			var role string
			if err := tx.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil || role != "metachat_app" {
				t.Errorf("app pool runs as %q (%v), want metachat_app", role, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := projections.NewTenants(app).Get(ctx, b); err != nil {
			t.Errorf("get B as B: %v", err)
		}
	})

	t.Run("the tenant does not outlive its transaction", func(t *testing.T) {
		conn, err := app.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		if err := projections.WithTenant(ctx, conn, a, func(pgx.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if c := queryInt(t, conn, "SELECT count(*) FROM tenants"); c != 0 {
			t.Errorf("after WithTenant the same connection sees %d rows", c)
		}
	})

	t.Run("writing another tenant's row fails", func(t *testing.T) {
		insert := "INSERT INTO rm_tenants_g1.tenants (tenant_id, name, plan, created_at, updated_at, version) " +
			"VALUES ($1, 'x', 'free', now(), now(), 1)"
		err := projections.WithTenant(ctx, app, a, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, insert, b)
			return err
		})
		if !isInsufficientPrivilege(err) {
			t.Errorf("metachat_app inserting: %v, want permission denied", err)
		}
		// Even with a write grant, WITH CHECK keeps a tenant to its own rows.
		if _, err := h.pools.Owner.Exec(ctx, "GRANT INSERT ON rm_tenants_g1.tenants TO metachat_app"); err != nil {
			t.Fatal(err)
		}
		err = projections.WithTenant(ctx, app, a, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, insert, b)
			return err
		})
		if !isInsufficientPrivilege(err) || !strings.Contains(err.Error(), "row-level security") {
			t.Errorf("tenant A inserting a row of B: %v, want a row-level security violation", err)
		}
		c := "0b9e2f4c-8d1a-4c55-9d7e-1f3a5b7c9d2e"
		errRollback := errors.New("rollback")
		err = projections.WithTenant(ctx, app, c, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, insert, c); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Errorf("tenant C inserting its own row: %v, want it allowed", err)
		}
		if _, err := h.pools.Owner.Exec(ctx, "REVOKE INSERT ON rm_tenants_g1.tenants FROM metachat_app"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("invalid tenant id", func(t *testing.T) {
		err := projections.WithTenant(ctx, app, "'; DROP TABLE tenants; --", func(pgx.Tx) error { return nil })
		if domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("WithTenant with a bad id: %v, want EINVALID", err)
		}
		if _, err := projections.NewTenants(app).Get(ctx, "acme"); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("Get with a bad id: %v, want ENOTFOUND", err)
		}
	})

	t.Run("runtime roles own nothing and bypass nothing", func(t *testing.T) {
		if c := queryInt(t, h.pools.Owner, `SELECT count(*) FROM pg_class
			WHERE relowner IN ('metachat_app'::regrole, 'metachat_projector'::regrole)`); c != 0 {
			t.Errorf("the runtime roles own %d relations", c)
		}
		if c := queryInt(t, h.pools.Owner, `SELECT count(*) FROM pg_namespace
			WHERE nspowner IN ('metachat_app'::regrole, 'metachat_projector'::regrole)`); c != 0 {
			t.Errorf("the runtime roles own %d schemas", c)
		}
		if c := queryInt(t, h.pools.Owner, `SELECT count(*) FROM pg_roles
			WHERE rolname IN ('metachat_app', 'metachat_projector')
			AND NOT (rolsuper OR rolbypassrls OR rolcanlogin OR rolcreatedb OR rolcreaterole)`); c != 2 {
			t.Errorf("%d of the 2 runtime roles are plain NOLOGIN roles without BYPASSRLS", c)
		}
	})

	t.Run("every tenant table forces row-level security", func(t *testing.T) {
		rows, err := h.pools.Owner.Query(ctx, `SELECT n.nspname, c.relname, c.relkind::text,
				c.relrowsecurity, c.relforcerowsecurity,
				coalesce('security_invoker=true' = ANY (c.reloptions), false)
			FROM information_schema.columns col
			JOIN pg_namespace n ON n.nspname = col.table_schema
			JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = col.table_name
			WHERE col.column_name = 'tenant_id' AND col.table_schema NOT IN ('pg_catalog', 'information_schema')`)
		if err != nil {
			t.Fatal(err)
		}
		var tables, views int
		for rows.Next() {
			var schema, name, kind string
			var rls, force, invoker bool
			if err := rows.Scan(&schema, &name, &kind, &rls, &force, &invoker); err != nil {
				t.Fatal(err)
			}
			switch kind {
			case "r", "p":
				tables++
				if !rls || !force {
					t.Errorf("table %s.%s has a tenant_id but row-level security enabled=%v forced=%v", schema, name, rls, force)
				}
			case "v":
				views++
				if !invoker {
					t.Errorf("view %s.%s has a tenant_id but is not security_invoker", schema, name)
				}
			default:
				t.Errorf("%s.%s (kind %s) has a tenant_id", schema, name, kind)
			}
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		if tables < 2 || views < 2 {
			t.Errorf("found %d tables and %d views with a tenant_id, want at least 2 of each", tables, views)
		}
	})
}

func isInsufficientPrivilege(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// unsafeProjection creates a table without row-level security.
type unsafeProjection struct{ withTenant bool }

func (unsafeProjection) Name() string { return "unsafe" }

func (p unsafeProjection) Setup(ctx context.Context, tx pgx.Tx, schema string) error {
	cols := "id int"
	if p.withTenant {
		cols = "tenant_id uuid NOT NULL, id int"
	}
	_, err := tx.Exec(ctx, "CREATE TABLE "+pgx.Identifier{schema, "things"}.Sanitize()+" ("+cols+")")
	return err
}

func (unsafeProjection) Apply(context.Context, pgx.Tx, string, domain.Envelope) error { return nil }

func TestSetupRefusesTablesWithoutRLS(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, p := range []unsafeProjection{{withTenant: false}, {withTenant: true}} {
		err := h.manager(t, p).Ensure(t.Context())
		if err == nil || !strings.Contains(err.Error(), "row-level security") {
			t.Errorf("ensure of a projection without RLS (tenant_id %v): %v, want refused", p.withTenant, err)
		}
		if p.withTenant == false && !strings.Contains(err.Error(), "tenant_id") {
			t.Errorf("ensure of a projection without tenant_id: %v, want tenant_id named", err)
		}
	}
	if c := queryInt(t, h.pools.Owner, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rm_unsafe%'"); c != 0 {
		t.Error("a refused generation left its schema behind")
	}
}
