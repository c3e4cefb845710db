package projections_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

func TestRunnerProjectsTenants(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	tp := projections.NewTenantProjection(h.reg)
	if err := h.manager(t, tp).Ensure(ctx); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	const n = 25
	ids := make([]string, n)
	for i := range ids {
		ids[i], _ = h.createTenant(t, fmt.Sprintf("Tenant %d", i))
	}
	var last uint64
	for i := 0; i < n; i += 5 {
		last = h.renameTenant(t, ids[i], fmt.Sprintf("Renamed %d", i))
	}
	// A tenant.created stored at schema version 1, before plans existed, is upcast on the way.
	oldID := uuid.NewString()
	res, err := h.store.Append(ctx, tenantRef(oldID), 0, domain.Envelope{
		ID:            uuid.Must(uuid.NewV7()).String(),
		Type:          domain.EventTenantCreated,
		SchemaVersion: 1,
		Payload:       []byte(`{"tenant_id":"` + oldID + `","name":"Old","created_at":"2024-01-02T03:04:05Z"}`),
	})
	if err != nil {
		t.Fatalf("append a version 1 event: %v", err)
	}
	last = res.LastSequence

	r := h.runner(t, tp, 1, projections.Tuning{BatchSize: 10}, projections.Hooks{})
	stop := start(t, r.Run)
	eventually(t, 10*time.Second, "the runner to catch up", func() bool { return r.Status().Checkpoint == last })

	if got := queryInt(t, h.pools.Projector, "SELECT count(*) FROM tenants"); got != n+1 {
		t.Errorf("tenants view holds %d rows, want %d", got, n+1)
	}
	if cp := readCheckpoint(t, h.pools.Owner, "tenants", 1); cp.LastSeq != last || cp.Stopped {
		t.Errorf("checkpoint row = %+v, want last_seq %d and not stopped", cp, last)
	}
	got, err := projections.NewTenants(h.pools.App).Get(ctx, ids[5])
	if err != nil {
		t.Fatalf("get tenant: %v", err)
	}
	if got.ID != ids[5] || got.Name != "Renamed 5" || got.Plan != domain.DefaultPlan || got.Version == 0 {
		t.Errorf("tenant = %+v, want id %s renamed on plan %s", got, ids[5], domain.DefaultPlan)
	}
	if !got.UpdatedAt.After(got.CreatedAt) && !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Errorf("updated_at %v before created_at %v", got.UpdatedAt, got.CreatedAt)
	}
	if _, err := projections.NewTenants(h.pools.App).Get(ctx, "8f0c4a4e-0000-4000-8000-000000000000"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("get missing tenant: %v, want ENOTFOUND", err)
	}
	old, err := projections.NewTenants(h.pools.App).Get(ctx, oldID)
	if err != nil || old.Plan != domain.DefaultPlan || old.Name != "Old" || old.Version != last ||
		!old.CreatedAt.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("upcast tenant = %+v, %v; want plan %s, version %d", old, err, domain.DefaultPlan, last)
	}
	st := r.Status()
	if !st.Running || st.Lag != 0 || st.StreamLastSeq != last {
		t.Errorf("status = %+v, want running with no lag at %d", st, last)
	}
	if err := stop(); err != nil {
		t.Errorf("run returned %v after cancel, want nil", err)
	}
	if st := r.Status(); st.Running || st.Waiting {
		t.Errorf("status after stop = %+v", st)
	}
	if err := r.Run(ctx); err == nil {
		t.Error("a second Run of one runner succeeded")
	}
}

func TestRunnerCrashRecovery(t *testing.T) {
	t.Parallel()
	errCrash := errors.New("simulated crash")
	tests := []struct {
		name  string
		hooks func(crashAt uint64) projections.Hooks
		// committed reports whether the crashed batch is in the checkpoint.
		committed bool
	}{
		{
			name: "between apply and commit",
			hooks: func(crashAt uint64) projections.Hooks {
				return projections.Hooks{AfterApply: func(seq uint64) error {
					if seq >= crashAt {
						return errCrash
					}
					return nil
				}}
			},
		},
		{
			name: "between commit and ack",
			hooks: func(crashAt uint64) projections.Hooks {
				return projections.Hooks{AfterCommit: func(seq uint64) error {
					if seq >= crashAt {
						return errCrash
					}
					return nil
				}}
			},
			committed: true,
		},
	}
	for _, tc := range tests {
		for _, queuing := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, pipelined %v", tc.name, queuing), func(t *testing.T) {
				t.Parallel()
				testRunnerCrashRecovery(t, errCrash, tc.hooks, tc.committed, queuing)
			})
		}
	}
}

// testRunnerCrashRecovery is one case of TestRunnerCrashRecovery: queuing runs the counter as a
// BatchQueuer, whose batches the runner sends as one pipeline.
func testRunnerCrashRecovery(t *testing.T, errCrash error, hooks func(crashAt uint64) projections.Hooks, committed, queuing bool) {
	h := newHarness(t)
	ctx := t.Context()
	var c projections.Projection = &counter{reg: h.reg}
	queued := &atomic.Int64{}
	if queuing {
		c = queuingCounter{counter: c.(*counter), queued: queued}
	}
	if err := h.manager(t, c).Ensure(ctx); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	const n = 30
	var seqs []uint64
	for i := range n {
		_, seq := h.createTenant(t, fmt.Sprintf("T%d", i))
		seqs = append(seqs, seq)
	}
	last := seqs[n-1]
	tune := projections.Tuning{BatchSize: 7}

	// The first runner dies in the batch that contains the 12th event.
	crashAt := seqs[11]
	r1 := h.runner(t, c, 1, tune, hooks(crashAt))
	err := r1.Run(ctx)
	if !errors.Is(err, errCrash) {
		t.Fatalf("first run returned %v, want the injected crash", err)
	}
	cp := readCheckpoint(t, h.pools.Owner, "counter", 1).LastSeq
	if committed && cp < crashAt {
		t.Fatalf("checkpoint %d after a crash after commit, want at least %d", cp, crashAt)
	}
	if !committed && cp >= crashAt {
		t.Fatalf("checkpoint %d after a crash before commit, want below %d", cp, crashAt)
	}
	events, apps, most := counts(t, h, 1)
	if uint64(events) != uint64(apps) || (events > 0 && most != 1) {
		t.Fatalf("after the crash: %d events, %d applications, at most %d of one", events, apps, most)
	}

	// A new runner on the same consumer resumes: nothing lost, nothing twice.
	r2 := h.runner(t, c, 1, tune, projections.Hooks{})
	stop := start(t, r2.Run)
	eventually(t, 10*time.Second, "the second runner to catch up", func() bool {
		return r2.Status().Checkpoint == last
	})
	if err := stop(); err != nil {
		t.Fatalf("second run: %v", err)
	}
	events, apps, most = counts(t, h, 1)
	if events != n || apps != n || most != 1 {
		t.Errorf("after recovery: %d events, %d applications, at most %d of one; want %d, %d, 1", events, apps, most, n, n)
	}
	if queuing && queued.Load() == 0 {
		t.Error("no batch went through the pipelined path")
	}
}

// TestRunnerSkipsRedelivered replays the whole stream to a runner whose events are all applied
// already: the checkpoint, not the consumer, decides, so nothing is applied twice.
func TestRunnerSkipsRedelivered(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	c := &counter{reg: h.reg}
	if err := h.manager(t, c).Ensure(ctx); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	const n = 12
	var last uint64
	for i := range n {
		_, last = h.createTenant(t, fmt.Sprintf("T%d", i))
	}
	r1 := h.runner(t, c, 1, projections.Tuning{BatchSize: 5}, projections.Hooks{})
	stop := start(t, r1.Run)
	eventually(t, 10*time.Second, "catch up", func() bool { return r1.Status().Checkpoint == last })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Rewind the consumer to the start of the stream.
	name := projections.ConsumerName("counter", 1)
	if err := h.store.Stream().DeleteConsumer(ctx, name); err != nil {
		t.Fatalf("delete consumer: %v", err)
	}
	if _, err := h.store.Stream().CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       name,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
		FilterSubject: h.store.Config().SubjectPrefix + ".>",
		MaxAckPending: 1000,
	}); err != nil {
		t.Fatalf("create rewound consumer: %v", err)
	}
	_, extra := h.createTenant(t, "after the rewind")

	r2 := h.runner(t, c, 1, projections.Tuning{BatchSize: 5}, projections.Hooks{})
	stop = start(t, r2.Run)
	eventually(t, 10*time.Second, "catch up again", func() bool { return r2.Status().Checkpoint == extra })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	info, err := h.store.Stream().Consumer(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if d := info.CachedInfo().Delivered.Stream; d != extra {
		t.Errorf("consumer delivered up to %d, want %d (the rewound consumer was kept)", d, extra)
	}
	events, apps, most := counts(t, h, 1)
	if events != n+1 || apps != n+1 || most != 1 {
		t.Errorf("%d events, %d applications, at most %d of one; want %d, %d, 1", events, apps, most, n+1, n+1)
	}
}

func TestRunnerPoisonEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	c := &counter{reg: h.reg}
	c.broken.Store(true)
	m := h.manager(t, c)
	if err := m.Ensure(ctx); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	for i := range 4 {
		h.createTenant(t, fmt.Sprintf("good %d", i))
	}
	_, poisonSeq := h.createTenant(t, "poison pill")
	var last uint64
	for i := range 3 {
		_, last = h.createTenant(t, fmt.Sprintf("later %d", i))
	}

	// The whole stream is one batch: the events before the poison one are still applied.
	r1 := h.runner(t, c, 1, projections.Tuning{BatchSize: 100}, projections.Hooks{})
	runCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := r1.Run(runCtx)
	var stopped *projections.StoppedError
	if !errors.As(err, &stopped) || stopped.Seq != poisonSeq || !errors.Is(err, errRefused) {
		t.Fatalf("run returned %v, want a StoppedError at %d caused by the refusal", err, poisonSeq)
	}
	cp := readCheckpoint(t, h.pools.Owner, "counter", 1)
	if cp.LastSeq != poisonSeq-1 || !cp.Stopped || cp.StopSeq != poisonSeq || cp.StopError == "" {
		t.Errorf("checkpoint row = %+v, want last_seq %d, stopped at %d with the error", cp, poisonSeq-1, poisonSeq)
	}
	st := r1.Status()
	if !st.Stopped || st.StopSeq != poisonSeq || st.Error == "" || st.Checkpoint != poisonSeq-1 || st.Running {
		t.Errorf("runner status = %+v, want stopped at %d", st, poisonSeq)
	}
	if events, _, _ := counts(t, h, 1); events != 4 {
		t.Errorf("counter holds %d events, want the 4 before the poison one", events)
	}
	ms, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || !ms[0].Stopped || ms[0].StopSeq != poisonSeq || ms[0].Checkpoint != poisonSeq-1 ||
		ms[0].Lag != last-(poisonSeq-1) || ms[0].StreamLastSeq != last {
		t.Errorf("manager status = %+v, want stopped at %d with lag %d", ms, poisonSeq, last-(poisonSeq-1))
	}

	// Fixed: a new runner resumes exactly at the poison event.
	c.broken.Store(false)
	r2 := h.runner(t, c, 1, projections.Tuning{BatchSize: 100}, projections.Hooks{})
	stop := start(t, r2.Run)
	eventually(t, 10*time.Second, "the fixed runner to catch up", func() bool { return r2.Status().Checkpoint == last })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	cp = readCheckpoint(t, h.pools.Owner, "counter", 1)
	if cp.LastSeq != last || cp.Stopped || cp.StopSeq != 0 || cp.StopError != "" {
		t.Errorf("checkpoint row after the fix = %+v, want last_seq %d and the stop cleared", cp, last)
	}
	if events, apps, most := counts(t, h, 1); events != 8 || apps != 8 || most != 1 {
		t.Errorf("after the fix: %d events, %d applications, at most %d of one; want 8, 8, 1", events, apps, most)
	}
}

func TestRunnerUndecodableEventStops(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	tp := projections.NewTenantProjection(h.reg)
	if err := h.manager(t, tp).Ensure(ctx); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	_, good := h.createTenant(t, "good")
	ack, err := h.store.JetStream().Publish(ctx, h.store.Config().SubjectPrefix+".x.tenant.x", []byte("not json"))
	if err != nil {
		t.Fatalf("publish garbage: %v", err)
	}
	h.createTenant(t, "after")
	err = h.runner(t, tp, 1, projections.Tuning{}, projections.Hooks{}).Run(ctx)
	var stopped *projections.StoppedError
	if !errors.As(err, &stopped) || stopped.Seq != ack.Sequence || domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("run returned %v, want a StoppedError at %d with EINVALID", err, ack.Sequence)
	}
	if cp := readCheckpoint(t, h.pools.Owner, "tenants", 1); cp.LastSeq != good || cp.StopSeq != ack.Sequence {
		t.Errorf("checkpoint row = %+v, want last_seq %d stopped at %d", cp, good, ack.Sequence)
	}
}

// TestRunnerFailover runs two runners of one generation: the second waits for the first's lock and
// takes over when the first stops.
func TestRunnerFailover(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	c := &counter{reg: h.reg}
	if err := h.manager(t, c).Ensure(ctx); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	_, first := h.createTenant(t, "one")
	r1 := h.runner(t, c, 1, projections.Tuning{}, projections.Hooks{})
	stop1 := start(t, r1.Run)
	eventually(t, 10*time.Second, "the first runner to apply", func() bool { return r1.Status().Checkpoint == first })
	r2 := h.runner(t, c, 1, projections.Tuning{}, projections.Hooks{})
	stop2 := start(t, r2.Run)
	eventually(t, 5*time.Second, "the second runner to wait", func() bool { return r2.Status().Waiting })

	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	_, second := h.createTenant(t, "two")
	eventually(t, 10*time.Second, "the standby to take over", func() bool { return r2.Status().Checkpoint == second })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if events, apps, most := counts(t, h, 1); events != 2 || apps != 2 || most != 1 {
		t.Errorf("%d events, %d applications, at most %d of one; want 2, 2, 1", events, apps, most)
	}
}

// TestRunnerIgnoresADeadRunnersPullRequest: a runner killed while its pull request was open leaves
// that request in the server until it expires. The next runner recreates the consumer, so no
// event is delivered to the dead request — none is lost or applied out of order.
func TestRunnerIgnoresADeadRunnersPullRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	c := &counter{reg: h.reg}
	if err := h.manager(t, c).Ensure(ctx); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	_, first := h.createTenant(t, "before")
	r1 := h.runner(t, c, 1, projections.Tuning{}, projections.Hooks{})
	stop1 := start(t, r1.Run)
	eventually(t, 10*time.Second, "the first runner to apply", func() bool { return r1.Status().Checkpoint == first })
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	// What a killed process leaves behind: a pull request for ten events, open for a minute, whose
	// reply subject nobody reads any more.
	cfg := h.store.Config()
	req := `{"batch":10,"expires":60000000000}`
	if err := h.nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+cfg.Stream+"."+projections.ConsumerName("counter", 1),
		"_INBOX.dead-runner", []byte(req)); err != nil {
		t.Fatalf("leave a pull request behind: %v", err)
	}
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for range 5 {
		_, last = h.createTenant(t, "after")
	}
	r2 := h.runner(t, c, 1, projections.Tuning{}, projections.Hooks{})
	stop2 := start(t, r2.Run)
	eventually(t, 10*time.Second, "the next runner to apply every event", func() bool { return r2.Status().Checkpoint == last })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if events, apps, most := counts(t, h, 1); events != 6 || apps != 6 || most != 1 {
		t.Errorf("%d events, %d applications, at most %d of one; want 6, 6, 1", events, apps, most)
	}
}

// TestRunnerPipelineRefusesAMovedCheckpoint: the pipelined batch applies the events after the
// checkpoint the runner last committed, and proves the checkpoint still there in the same
// pipeline. A checkpoint moved by anything else fails the batch, which then applies nothing, and
// the runner stops with the error (its supervisor starts it again from the database's checkpoint).
func TestRunnerPipelineRefusesAMovedCheckpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	queued := &atomic.Int64{}
	c := queuingCounter{counter: &counter{reg: h.reg}, queued: queued}
	if err := h.manager(t, c).Ensure(ctx); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	var last uint64
	for i := range 5 {
		_, last = h.createTenant(t, fmt.Sprintf("T%d", i))
	}
	r := h.runner(t, c, 1, projections.Tuning{BatchSize: 10}, projections.Hooks{})
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	eventually(t, 10*time.Second, "the runner to catch up", func() bool { return r.Status().Checkpoint == last })
	if queued.Load() == 0 {
		t.Fatal("no batch went through the pipelined path")
	}
	if _, err := h.pools.Owner.Exec(ctx, `UPDATE public.projection_checkpoints SET last_seq = last_seq - 2
		WHERE projection = 'counter' AND generation = 1`); err != nil {
		t.Fatal(err)
	}
	h.createTenant(t, "after the move")
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "checkpoint moved") {
			t.Fatalf("run returned %v, want the moved checkpoint", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the runner applied past a moved checkpoint")
	}
	if events, apps, most := counts(t, h, 1); events != 5 || apps != 5 || most != 1 {
		t.Errorf("after the refused batch: %d events, %d applications, at most %d of one; want 5, 5, 1", events, apps, most)
	}
	if cp := readCheckpoint(t, h.pools.Owner, "counter", 1).LastSeq; cp != last-2 {
		t.Errorf("checkpoint %d, want the moved %d", cp, last-2)
	}
}
