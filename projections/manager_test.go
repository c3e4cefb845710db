package projections_test

import (
	"strings"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// TestManagerPoisonAndResume shows a poison event stopping a managed projection without a retry
// loop, and Resume continuing it at that event once fixed.
func TestManagerPoisonAndResume(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	c := &counter{reg: h.reg}
	c.broken.Store(true)
	tp := projections.NewTenantProjection(h.reg)
	m := h.manager(t, c, tp)
	if err := m.Resume("counter"); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("resume before Run: %v, want EUNAVAILABLE", err)
	}
	start(t, m.Run)
	h.createTenant(t, "fine")
	_, poisonSeq := h.createTenant(t, "poison")
	_, last := h.createTenant(t, "later")

	status := func(name string) projections.Status {
		st, err := m.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.Projection == name {
				return s
			}
		}
		t.Fatalf("no status of %s in %+v", name, st)
		return projections.Status{}
	}
	eventually(t, 10*time.Second, "the counter to stop", func() bool { return status("counter").Stopped })
	st := status("counter")
	if st.StopSeq != poisonSeq || st.Checkpoint != poisonSeq-1 || st.Lag != last-poisonSeq+1 ||
		!strings.Contains(st.Error, "poison") || st.Running || st.State != projections.StateActive {
		t.Errorf("status = %+v, want stopped at %d, lag %d", st, poisonSeq, last-poisonSeq+1)
	}
	// The other projection is not affected.
	eventually(t, 10*time.Second, "tenants to catch up", func() bool { return status("tenants").Checkpoint == last })

	time.Sleep(500 * time.Millisecond)
	if n := c.refused.Load(); n != 1 {
		t.Errorf("the poison event was tried %d times while stopped, want once", n)
	}

	c.broken.Store(false)
	if err := m.Resume("counter"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the counter to resume", func() bool {
		s := status("counter")
		return s.Checkpoint == last && !s.Stopped && s.Running
	})
	if events, apps, most := counts(t, h, 1); events != 3 || apps != 3 || most != 1 {
		t.Errorf("%d events, %d applications, at most %d of one; want 3, 3, 1", events, apps, most)
	}
	if err := m.Resume("nope"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("resume of an unknown projection: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	err := projections.RunnerConfig{Tuning: projections.Tuning{BatchSize: -1}}.Validate()
	for _, want := range []string{"no projection", "generation 0", "no event store", "no projector pool", "batch size"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("runner config error %v does not mention %q", err, want)
		}
	}
	bad := &counter{}
	err = projections.ManagerConfig{Projections: []projections.Projection{bad, bad, unsafeName{}}}.Validate()
	for _, want := range []string{"listed twice", "projection name", "no owner pool"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("manager config error %v does not mention %q", err, want)
		}
	}
	if err := (projections.PoolsConfig{}).Validate(); err == nil {
		t.Error("pools config without a URL is valid")
	}
	if err := (projections.WaiterConfig{}).Validate(); err == nil {
		t.Error("waiter config without a pool is valid")
	}
}

type unsafeName struct{ unsafeProjection }

func (unsafeName) Name() string { return `x"; DROP SCHEMA public; --` }
