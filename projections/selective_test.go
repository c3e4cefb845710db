package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// tenantsOnly is the counter made Selective: it wants tenant events only.
type tenantsOnly struct{ *counter }

func (tenantsOnly) AggregateTypes() []string { return []string{domain.TenantAggregate} }

// TestSelectiveRunnerReceivesOnlyItsAggregates shows that a Selective projection's consumer is
// handed only its own aggregates' events, each once (an undecodable event of another aggregate
// never reaches it), that its checkpoint is its last own event, that its lag counts its own
// events only, and that a rebuild ends although the stream ends with someone else's event.
func TestSelectiveRunnerReceivesOnlyItsAggregates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	p := tenantsOnly{&counter{reg: h.reg}}
	m := h.manager(t, p)
	if err := m.Ensure(ctx); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	prefix := h.store.Config().SubjectPrefix
	var lastTenant uint64
	for i := range 6 {
		_, lastTenant = h.createTenant(t, "tenant")
		// Not JSON, on another aggregate's subject: the tenant projection has no business with it.
		if _, err := h.store.JetStream().Publish(ctx, prefix+".x.widget.w"+string(rune('a'+i)), []byte("not json")); err != nil {
			t.Fatalf("publish another aggregate's event: %v", err)
		}
	}
	ack, err := h.store.JetStream().Publish(ctx, prefix+".x.conversation.c", []byte("{}"))
	if err != nil {
		t.Fatalf("publish the last event: %v", err)
	}
	r := h.runner(t, p, 1, projections.Tuning{BatchSize: 4}, projections.Hooks{})
	stop := start(t, r.Run)
	eventually(t, 10*time.Second, "the checkpoint to reach the last tenant event", func() bool {
		return r.Status().Checkpoint == lastTenant
	})
	cons, err := h.store.Stream().Consumer(ctx, projections.ConsumerName("counter", 1))
	if err != nil {
		t.Fatal(err)
	}
	info := cons.CachedInfo()
	if info.Config.FilterSubject != prefix+".*.tenant.*" || info.Delivered.Consumer != 6 {
		t.Errorf("consumer filters %q and delivered %d events; want %q and the 6 tenant events",
			info.Config.FilterSubject, info.Delivered.Consumer, prefix+".*.tenant.*")
	}
	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Checkpoint != lastTenant || st[0].StreamLastSeq != ack.Sequence || st[0].Lag != 0 {
		t.Errorf("status = %+v; want checkpoint %d, stream at %d, no lag", st, lastTenant, ack.Sequence)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if cp := readCheckpoint(t, h.pools.Owner, "counter", 1); cp.LastSeq != lastTenant || cp.Stopped {
		t.Errorf("checkpoint row = %+v, want last_seq %d, not stopped", cp, lastTenant)
	}
	if events, apps, most := counts(t, h, 1); events != 6 || apps != 6 || most != 1 {
		t.Errorf("%d events, %d applications, at most %d of one; want the 6 tenant events once each", events, apps, most)
	}

	// A new event of its own after a stop counts in the lag of a generation nobody runs.
	_, next := h.createTenant(t, "later")
	if st, err := m.Status(ctx); err != nil || len(st) != 1 || st[0].Lag != 1 {
		t.Errorf("status after one more tenant = %+v, %v; want a lag of 1", st, err)
	}
	// A rebuild ends (the stream's last event is not the projection's) with every tenant event.
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	gen, err := m.Rebuild(rctx, "counter", nil)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if events, apps, most := counts(t, h, gen); events != 7 || apps != 7 || most != 1 {
		t.Errorf("rebuilt generation %d: %d events, %d applications, at most %d of one; want 7, 7, 1", gen, events, apps, most)
	}
	if cp := readCheckpoint(t, h.pools.Owner, "counter", gen); cp.LastSeq != next {
		t.Errorf("rebuilt checkpoint %d, want %d", cp.LastSeq, next)
	}
}

// TestEveryProjectionIsSelective keeps the runner's shortcut in use: a projection that is not
// Selective would decode every event of the stream.
func TestEveryProjectionIsSelective(t *testing.T) {
	t.Parallel()
	for _, p := range projections.All(domain.NewDefaultRegistry()) {
		s, ok := p.(projections.Selective)
		if !ok || len(s.AggregateTypes()) == 0 {
			t.Errorf("projection %s does not say which aggregates it applies", p.Name())
		}
	}
}
