package projections_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
	"github.com/metachat/metachat/projections"
)

// harness is one test's world: an embedded JetStream with the event store, a fresh database with
// the migrations applied and the three pools.
type harness struct {
	nc      *nats.Conn
	store   *eventstore.JetStream
	pools   *projections.Pools
	reg     *domain.Registry
	tenants *eventstore.Handler[domain.Tenant, domain.TenantCommand]
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := t.Context()
	n := testkit.StartNATS(t, "")
	nc := n.Connect(t)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatalf("open event store: %v", err)
	}
	url := testkit.Postgres(t)
	pools, err := projections.OpenPools(ctx, projections.PoolsConfig{DatabaseURL: url})
	if err != nil {
		t.Fatalf("open pools: %v", err)
	}
	t.Cleanup(pools.Close)
	reg := domain.NewDefaultRegistry()
	return &harness{
		nc:      nc,
		store:   store,
		pools:   pools,
		reg:     reg,
		tenants: eventstore.NewHandler(store, reg, domain.TenantDecider()),
	}
}

// testLogger logs to the test's output when METACHAT_TEST_LOG is set, else nowhere.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("METACHAT_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func tenantRef(id string) domain.AggregateRef {
	return domain.AggregateRef{TenantID: id, Type: domain.TenantAggregate, ID: id}
}

// createTenant appends a tenant.created event and returns the new tenant's id and the sequence.
func (h *harness) createTenant(t testing.TB, name string) (string, uint64) {
	t.Helper()
	id := uuid.NewString()
	res, err := h.tenants.Handle(context.Background(), tenantRef(id),
		domain.CreateTenant{TenantID: id, Name: name, At: time.Now()}, eventstore.Metadata{})
	if err != nil {
		t.Fatalf("create tenant %q: %v", name, err)
	}
	return id, res.Version
}

// renameTenant appends a tenant.renamed event and returns its sequence.
func (h *harness) renameTenant(t testing.TB, id, name string) uint64 {
	t.Helper()
	res, err := h.tenants.Handle(context.Background(), tenantRef(id),
		domain.RenameTenant{Name: name, At: time.Now()}, eventstore.Metadata{})
	if err != nil {
		t.Fatalf("rename tenant %s: %v", id, err)
	}
	return res.Version
}

func (h *harness) manager(t testing.TB, ps ...projections.Projection) *projections.Manager {
	t.Helper()
	m, err := projections.NewManager(projections.ManagerConfig{
		Projections: ps,
		Store:       h.store,
		Owner:       h.pools.Owner,
		Projector:   h.pools.Projector,
		Tuning:      projections.Tuning{IdleWait: 100 * time.Millisecond},
		RetryDelay:  100 * time.Millisecond,
		Logger:      testLogger(t),
	})
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	return m
}

func (h *harness) runner(t testing.TB, p projections.Projection, gen int, tune projections.Tuning, hooks projections.Hooks) *projections.Runner {
	t.Helper()
	if tune.IdleWait == 0 {
		tune.IdleWait = 100 * time.Millisecond
	}
	r, err := projections.NewRunner(projections.RunnerConfig{
		Projection: p,
		Generation: gen,
		Store:      h.store,
		Pool:       h.pools.Projector,
		Tuning:     tune,
		Hooks:      hooks,
		Logger:     testLogger(t),
	})
	if err != nil {
		t.Fatalf("new runner: %v", err)
	}
	return r
}

// start runs fn in the background; the returned function cancels it and returns its error.
func start(t testing.TB, fn func(ctx context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			cancel()
			err = <-done
			stopped = true
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// eventually fails the test unless cond becomes true within d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkpoint reads a generation's checkpoint row.
type checkpointRow struct {
	LastSeq   uint64
	Stopped   bool
	StopSeq   uint64
	StopError string
}

func readCheckpoint(t testing.TB, pool *pgxpool.Pool, name string, gen int) checkpointRow {
	t.Helper()
	var (
		c       checkpointRow
		last    int64
		stopSeq *int64
		stopErr *string
	)
	err := pool.QueryRow(context.Background(), `SELECT last_seq, stopped_at IS NOT NULL, stop_seq, stop_error
		FROM projection_checkpoints WHERE projection = $1 AND generation = $2`, name, gen).
		Scan(&last, &c.Stopped, &stopSeq, &stopErr)
	if err != nil {
		t.Fatalf("read checkpoint of %s g%d: %v", name, gen, err)
	}
	c.LastSeq = uint64(last)
	if stopSeq != nil {
		c.StopSeq = uint64(*stopSeq)
	}
	if stopErr != nil {
		c.StopError = *stopErr
	}
	return c
}

func queryInt(t testing.TB, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, sql string, args ...any) int64 {
	t.Helper()
	var n *int64
	if err := db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if n == nil {
		return 0
	}
	return *n
}

// counter is a test projection that counts how often each event was applied, so that a double
// application shows. It refuses tenant.created events whose name starts with "poison" while
// broken is set.
type counter struct {
	reg     *domain.Registry
	broken  atomic.Bool
	refused atomic.Int64
}

var errRefused = errors.New("counter refuses this event")

func (c *counter) Name() string { return "counter" }

func (c *counter) Setup(ctx context.Context, tx pgx.Tx, schema string) error {
	t := pgx.Identifier{schema, "applied"}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE TABLE `+t+` (
		tenant_id uuid NOT NULL,
		event_id  text PRIMARY KEY,
		seq       bigint NOT NULL,
		n         integer NOT NULL)`); err != nil {
		return err
	}
	return projections.EnableTenantRLS(ctx, tx, schema, "applied")
}

func (c *counter) Apply(ctx context.Context, tx pgx.Tx, schema string, env domain.Envelope) error {
	ev, err := c.reg.Decode(env)
	if err != nil {
		return err
	}
	if e, ok := ev.(*domain.TenantCreated); ok && c.broken.Load() && strings.HasPrefix(e.Name, "poison") {
		c.refused.Add(1)
		return fmt.Errorf("%w: %s", errRefused, e.Name)
	}
	t := pgx.Identifier{schema, "applied"}.Sanitize()
	_, err = tx.Exec(ctx, `INSERT INTO `+t+` (tenant_id, event_id, seq, n) VALUES ($1, $2, $3, 1)
		ON CONFLICT (event_id) DO UPDATE SET n = `+t+`.n + 1`, env.TenantID, env.ID, int64(env.Sequence))
	return err
}

// queuingCounter is the counter applying its batches as queued statements (BatchQueuer, the
// runner's pipelined batch); queued counts the events it queued. It leaves a batch with a poison
// event to be applied another way, which refuses it.
type queuingCounter struct {
	*counter
	queued *atomic.Int64
}

func (c queuingCounter) QueueBatch(b *pgx.Batch, schema string, envs []domain.Envelope) bool {
	for _, env := range envs {
		ev, err := c.reg.Decode(env)
		if err != nil {
			return false
		}
		if e, ok := ev.(*domain.TenantCreated); ok && c.broken.Load() && strings.HasPrefix(e.Name, "poison") {
			return false
		}
	}
	t := pgx.Identifier{schema, "applied"}.Sanitize()
	for _, env := range envs {
		b.Queue(`INSERT INTO `+t+` (tenant_id, event_id, seq, n) VALUES ($1, $2, $3, 1)
			ON CONFLICT (event_id) DO UPDATE SET n = `+t+`.n + 1`, env.TenantID, env.ID, int64(env.Sequence))
	}
	c.queued.Add(int64(len(envs)))
	return true
}

// counts returns how many events the counter holds, how many applications it counted and the most
// applications of one event.
func counts(t testing.TB, h *harness, gen int) (events, applications, most int64) {
	t.Helper()
	table := pgx.Identifier{projections.SchemaName("counter", gen), "applied"}.Sanitize()
	events = queryInt(t, h.pools.Projector, "SELECT count(*) FROM "+table)
	applications = queryInt(t, h.pools.Projector, "SELECT sum(n) FROM "+table)
	most = queryInt(t, h.pools.Projector, "SELECT max(n) FROM "+table)
	return events, applications, most
}
