package projections_test

import (
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// tenantsOnly is the counter made Selective: it wants tenant events only.
type tenantsOnly struct{ *counter }

func (tenantsOnly) AggregateTypes() []string { return []string{domain.TenantAggregate} }

// TestRunnerPassesOverOtherAggregates shows that a Selective projection is handed only its own
// aggregates' events, each once, that an undecodable event of another aggregate does not stop it,
// and that its checkpoint still reaches the stream's last sequence when that is someone else's
// event (so waiting for any sequence still ends).
func TestRunnerPassesOverOtherAggregates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	p := tenantsOnly{&counter{reg: h.reg}}
	if err := h.manager(t, p).Ensure(ctx); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	prefix := h.store.Config().SubjectPrefix
	for i := range 6 {
		h.createTenant(t, "tenant")
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
	eventually(t, 10*time.Second, "the checkpoint to reach the last event", func() bool {
		return r.Status().Checkpoint == ack.Sequence
	})
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if cp := readCheckpoint(t, h.pools.Owner, "counter", 1); cp.LastSeq != ack.Sequence || cp.Stopped {
		t.Errorf("checkpoint row = %+v, want last_seq %d, not stopped", cp, ack.Sequence)
	}
	if events, apps, most := counts(t, h, 1); events != 6 || apps != 6 || most != 1 {
		t.Errorf("%d events, %d applications, at most %d of one; want the 6 tenant events once each", events, apps, most)
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
