package projections_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

func TestRebuildSwitchesWhileReading(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	m := h.manager(t, projections.NewTenantProjection(h.reg))
	start(t, m.Run)
	w := newWaiter(t, h, 10*time.Second)

	const n = 150
	ids := make([]string, n)
	names := make(map[string]string, n)
	var last uint64
	for i := range ids {
		ids[i], last = h.createTenant(t, fmt.Sprintf("Tenant %d", i))
		names[ids[i]] = fmt.Sprintf("Tenant %d", i)
	}
	for i := 0; i < n; i += 3 {
		names[ids[i]] = fmt.Sprintf("Renamed %d", i)
		last = h.renameTenant(t, ids[i], names[ids[i]])
	}
	if err := w.WaitFor(ctx, projections.TenantsProjection, last); err != nil {
		t.Fatalf("wait for generation 1: %v", err)
	}

	// Readers run through the whole rebuild and switch: every read must succeed and be right.
	var (
		reads   atomic.Int64
		readErr = make(chan error, 8)
		wg      sync.WaitGroup
	)
	rctx, stopReads := context.WithCancel(ctx)
	tenants := projections.NewTenants(h.pools.App)
	for range 3 {
		wg.Go(func() {
			for rctx.Err() == nil {
				id := ids[rand.IntN(n)]
				got, err := tenants.Get(rctx, id)
				if err == nil && got.Name != names[id] {
					err = fmt.Errorf("tenant %s is named %q, want %q", id, got.Name, names[id])
				}
				if err == nil {
					var count int64
					err = h.pools.Projector.QueryRow(rctx, "SELECT count(*) FROM tenants").Scan(&count)
					if err == nil && count != n {
						err = fmt.Errorf("tenants holds %d rows, want %d", count, n)
					}
				}
				if err != nil && rctx.Err() == nil {
					select {
					case readErr <- err:
					default:
					}
					return
				}
				reads.Add(1)
			}
		})
	}

	var (
		mu    sync.Mutex
		calls [][2]uint64
	)
	gen, err := m.Rebuild(ctx, projections.TenantsProjection, func(done, total uint64) {
		mu.Lock()
		calls = append(calls, [2]uint64{done, total})
		mu.Unlock()
	})
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if gen != 2 {
		t.Errorf("rebuild made generation %d, want 2", gen)
	}
	time.Sleep(100 * time.Millisecond) // reads after the switch too
	stopReads()
	wg.Wait()
	close(readErr)
	for err := range readErr {
		t.Errorf("read during the rebuild: %v", err)
	}
	if reads.Load() == 0 {
		t.Error("no read ran during the rebuild")
	}
	t.Logf("%d reads during the rebuild", reads.Load())

	mu.Lock()
	if len(calls) < 2 || calls[0] != [2]uint64{0, last} || calls[len(calls)-1] != [2]uint64{last, last} ||
		!slices.IsSortedFunc(calls, func(a, b [2]uint64) int { return int(a[0]) - int(b[0]) }) {
		t.Errorf("progress calls %v, want 0 to %d of %d, increasing", calls, last, last)
	}
	mu.Unlock()

	// Reads now go to generation 2, which holds exactly what generation 1 holds.
	var def string
	if err := h.pools.Owner.QueryRow(ctx, "SELECT pg_get_viewdef('public.tenants'::regclass)").Scan(&def); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(def, "rm_tenants_g2.tenants") {
		t.Errorf("public.tenants reads %q, want rm_tenants_g2.tenants", def)
	}
	if diff := queryInt(t, h.pools.Owner, `SELECT count(*) FROM (
			(SELECT * FROM rm_tenants_g1.tenants EXCEPT SELECT * FROM rm_tenants_g2.tenants)
			UNION ALL
			(SELECT * FROM rm_tenants_g2.tenants EXCEPT SELECT * FROM rm_tenants_g1.tenants)) d`); diff != 0 {
		t.Errorf("generations 1 and 2 differ in %d rows", diff)
	}
	states := map[int]string{}
	rows, err := h.pools.Owner.Query(ctx, "SELECT generation, state FROM projection_generations WHERE projection = 'tenants'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var g int
		var s string
		if err := rows.Scan(&g, &s); err != nil {
			t.Fatal(err)
		}
		states[g] = s
	}
	if states[1] != projections.StateRetired || states[2] != projections.StateActive {
		t.Errorf("generation states %v, want 1 retired and 2 active", states)
	}

	// The live manager follows generation 2: a new event shows up there, and not in generation 1.
	id, seq := h.createTenant(t, "after the switch")
	if err := w.WaitFor(ctx, projections.TenantsProjection, seq); err != nil {
		t.Fatalf("wait for generation 2: %v", err)
	}
	if got, err := tenants.Get(ctx, id); err != nil || got.Name != "after the switch" {
		t.Fatalf("new tenant after the switch: %+v, %v", got, err)
	}
	if c := queryInt(t, h.pools.Owner, "SELECT count(*) FROM rm_tenants_g1.tenants WHERE tenant_id = $1", id); c != 0 {
		t.Error("the retired generation 1 still receives events")
	}
	eventually(t, 5*time.Second, "the manager to run generation 2", func() bool {
		st, err := m.Status(ctx)
		if err != nil {
			return false
		}
		active := 0
		for _, s := range st {
			if s.State == projections.StateActive {
				active++
				if s.Generation != 2 || !s.Running || s.Checkpoint != seq || s.Lag != 0 {
					return false
				}
			}
		}
		return active == 1
	})

	if st, err := m.Status(ctx); err != nil || !slices.ContainsFunc(st, func(s projections.Status) bool {
		return s.Generation == 1 && s.State == projections.StateRetired
	}) {
		t.Errorf("status before drop does not list retired generation 1: %+v, %v", st, err)
	}
	dropped, err := m.DropRetired(ctx, projections.TenantsProjection)
	if err != nil || !slices.Equal(dropped, []int{1}) {
		t.Fatalf("drop retired: %v, %v; want [1]", dropped, err)
	}
	if c := queryInt(t, h.pools.Owner, "SELECT count(*) FROM pg_namespace WHERE nspname = 'rm_tenants_g1'"); c != 0 {
		t.Error("schema rm_tenants_g1 still exists")
	}
	if _, err := h.store.Stream().Consumer(ctx, projections.ConsumerName("tenants", 1)); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("consumer of generation 1: %v, want not found", err)
	}
	if _, err := tenants.Get(ctx, ids[0]); err != nil {
		t.Errorf("read after dropping generation 1: %v", err)
	}
	if again, err := m.DropRetired(ctx, projections.TenantsProjection); err != nil || len(again) != 0 {
		t.Errorf("second drop retired: %v, %v; want nothing", again, err)
	}
}

func TestRebuildEmptyStreamAndConflicts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	m := h.manager(t, projections.NewTenantProjection(h.reg))
	gen, err := m.Rebuild(ctx, projections.TenantsProjection, nil)
	if err != nil || gen != 2 {
		t.Fatalf("rebuild of an empty stream: generation %d, %v; want 2", gen, err)
	}
	if _, err := m.Rebuild(ctx, "nope", nil); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("rebuild of an unknown projection: %v, want ENOTFOUND", err)
	}
	_, last := h.createTenant(t, "one")

	// A rebuild interrupted half-way leaves its generation building; reads stay on generation 2.
	cctx, cancel := context.WithCancel(ctx)
	if _, err := m.Rebuild(cctx, projections.TenantsProjection, func(done, _ uint64) {
		if done == 0 {
			cancel()
		}
	}); err == nil {
		t.Fatal("a cancelled rebuild succeeded")
	}
	if c := queryInt(t, h.pools.Owner, "SELECT count(*) FROM projection_generations WHERE state = 'building'"); c != 1 {
		t.Errorf("%d generations building after the interrupted rebuild, want 1", c)
	}

	// While one rebuild runs, another is refused.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	type result struct {
		gen int
		err error
	}
	first := make(chan result, 1)
	go func() {
		g, err := m.Rebuild(ctx, projections.TenantsProjection, func(uint64, uint64) {
			once.Do(func() { close(entered) })
			<-release
		})
		once.Do(func() { close(entered) }) // a rebuild that failed early must not leave the test waiting
		first <- result{g, err}
	}()
	<-entered
	if _, err := m.Rebuild(ctx, projections.TenantsProjection, nil); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Errorf("a second concurrent rebuild: %v, want ECONFLICT", err)
	}
	close(release)
	if r := <-first; r.err != nil || r.gen != 4 {
		t.Fatalf("rebuild after the interrupted one: generation %d, %v; want 4", r.gen, r.err)
	}
	states := map[int]string{}
	rows, err := h.pools.Owner.Query(ctx, "SELECT generation, state FROM projection_generations")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var g int
		var s string
		if err := rows.Scan(&g, &s); err != nil {
			t.Fatal(err)
		}
		states[g] = s
	}
	want := map[int]string{1: "retired", 2: "retired", 3: "retired", 4: "active"}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("generations %v, want %v", states, want)
	}
	if cp := readCheckpoint(t, h.pools.Owner, "tenants", 4); cp.LastSeq != last {
		t.Errorf("generation 4 checkpoint %d, want %d", cp.LastSeq, last)
	}
	dropped, err := m.DropRetired(ctx, projections.TenantsProjection)
	if err != nil || !slices.Equal(dropped, []int{1, 2, 3}) {
		t.Errorf("drop retired: %v, %v; want [1 2 3]", dropped, err)
	}
	if c := queryInt(t, h.pools.App, "SELECT count(*) FROM tenants"); c != 0 {
		t.Errorf("metachat_app without a tenant sees %d rows", c)
	}
}

// TestRebuildWaitsForLongReaders holds a reading transaction open across the switch: each attempt
// gives up waiting for it after a short lock timeout (new readers queue behind the attempt only
// that long), and the switch is retried until the reader is done.
func TestRebuildWaitsForLongReaders(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	m := h.manager(t, projections.NewTenantProjection(h.reg))
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	id, _ := h.createTenant(t, "reader")
	tx, err := h.pools.App.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT count(*) FROM tenants"); err != nil {
		t.Fatal(err)
	}
	held := 2 * time.Second
	go func() {
		time.Sleep(held)
		_ = tx.Rollback(context.Background())
	}()
	began := time.Now()
	gen, err := m.Rebuild(ctx, projections.TenantsProjection, nil)
	if err != nil || gen != 2 {
		t.Fatalf("rebuild: %d, %v", gen, err)
	}
	if d := time.Since(began); d < held {
		t.Errorf("the switch finished after %v, while a reader held the view for %v", d, held)
	}
	if _, err := projections.NewTenants(h.pools.App).Get(ctx, id); err != nil {
		t.Errorf("read after the switch: %v", err)
	}
}
