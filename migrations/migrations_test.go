package migrations_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/metachat/metachat/internal/testkit"
	"github.com/metachat/metachat/migrations"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func count(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestAll(t *testing.T) {
	t.Parallel()
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[0].Version != 1 || all[0].Name != "0001_base.sql" || all[0].SQL == "" {
		t.Fatalf("migrations = %+v, want 0001_base.sql first", all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Version <= all[i-1].Version {
			t.Errorf("migration %s is not after %s", all[i].Name, all[i-1].Name)
		}
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	t.Parallel()
	conn := connect(t, testkit.Postgres(t))
	for range 2 {
		if err := migrations.Apply(t.Context(), conn); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	all, _ := migrations.All()
	if n := count(t, conn, "SELECT count(*) FROM schema_migrations"); n != len(all) {
		t.Errorf("schema_migrations holds %d rows, want %d", n, len(all))
	}
	for _, table := range []string{"projection_checkpoints", "projection_generations"} {
		if n := count(t, conn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = $1", table); n != 1 {
			t.Errorf("table %s missing", table)
		}
	}
	if n := count(t, conn, `SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)
		AND NOT rolcanlogin AND NOT rolbypassrls AND NOT rolsuper`,
		[]string{migrations.AppRole, migrations.ProjectorRole}); n != 2 {
		t.Errorf("%d of the 2 runtime roles exist as NOLOGIN NOBYPASSRLS roles", n)
	}
	if n := count(t, conn, "SELECT count(*) FROM pg_class WHERE relowner IN ($1::regrole, $2::regrole)",
		migrations.AppRole, migrations.ProjectorRole); n != 0 {
		t.Errorf("the runtime roles own %d relations", n)
	}
	// The app may read the bookkeeping but not change it.
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(t.Context(), "SET LOCAL ROLE "+migrations.AppRole); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "SELECT count(*) FROM projection_checkpoints"); err != nil {
		t.Errorf("metachat_app reading checkpoints: %v", err)
	}
	if _, err := tx.Exec(t.Context(), "DELETE FROM projection_checkpoints"); err == nil {
		t.Error("metachat_app may delete checkpoints")
	}
}

func TestApplyConcurrently(t *testing.T) {
	t.Parallel()
	url := testkit.Postgres(t)
	const n = 4
	conns := make([]*pgx.Conn, n)
	for i := range conns {
		conns[i] = connect(t, url)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = migrations.Apply(t.Context(), conns[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("apply %d: %v", i, err)
		}
	}
	all, _ := migrations.All()
	if got := count(t, conns[0], "SELECT count(*) FROM schema_migrations"); got != len(all) {
		t.Errorf("schema_migrations holds %d rows, want %d", got, len(all))
	}
}

// TestApplyOnManyDatabasesAtOnce applies the base migration to several fresh databases of one
// server at the same time: the cluster-wide roles must not make them fail.
func TestApplyOnManyDatabasesAtOnce(t *testing.T) {
	t.Parallel()
	const n = 4
	conns := make([]*pgx.Conn, n)
	for i := range conns {
		conns[i] = connect(t, testkit.Postgres(t))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = migrations.Apply(t.Context(), conns[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("apply on database %d: %v", i, err)
		}
	}
}
