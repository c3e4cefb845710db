package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

func newWaiter(t *testing.T, h *harness, timeout time.Duration) *projections.Waiter {
	t.Helper()
	w, err := projections.NewWaiter(projections.WaiterConfig{Pool: h.pools.App, Timeout: timeout, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("new waiter: %v", err)
	}
	start(t, w.Run)
	return w
}

func TestWaitForReadsYourWrites(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	m := h.manager(t, projections.NewTenantProjection(h.reg))
	start(t, m.Run)
	w := newWaiter(t, h, 5*time.Second)
	tenants := projections.NewTenants(h.pools.App)

	for i := range 5 {
		id, seq := h.createTenant(t, "Read your writes")
		began := time.Now()
		if err := w.WaitFor(ctx, projections.TenantsProjection, seq); err != nil {
			t.Fatalf("wait for %d: %v", seq, err)
		}
		if d := time.Since(began); d > time.Second {
			t.Errorf("write %d: waiting took %v", i, d)
		}
		if _, err := tenants.Get(ctx, id); err != nil {
			t.Fatalf("write %d: the tenant is not readable after WaitFor: %v", i, err)
		}
		// Caught up already: answered from memory or one query.
		began = time.Now()
		if err := w.WaitFor(ctx, projections.TenantsProjection, seq); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(began); d > 100*time.Millisecond {
			t.Errorf("write %d: waiting for a reached sequence took %v", i, d)
		}
	}
	if err := w.WaitFor(ctx, projections.TenantsProjection, 0); err != nil {
		t.Errorf("wait for 0: %v", err)
	}
}

func TestWaitForTimesOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	m := h.manager(t, projections.NewTenantProjection(h.reg))
	start(t, m.Run)
	_, seq := h.createTenant(t, "only one")
	w := newWaiter(t, h, 300*time.Millisecond)
	if err := w.WaitFor(ctx, projections.TenantsProjection, seq); err != nil {
		t.Fatalf("wait for %d: %v", seq, err)
	}
	began := time.Now()
	err := w.WaitFor(ctx, projections.TenantsProjection, seq+100)
	if domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Fatalf("wait for a sequence never written: %v, want EUNAVAILABLE", err)
	}
	if d := time.Since(began); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("timed out after %v, want about 300ms", d)
	}
	if err := w.WaitFor(ctx, "no_such_projection", 1); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("wait for an unknown projection: %v, want EUNAVAILABLE", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := w.WaitFor(cctx, projections.TenantsProjection, seq+100); err == nil || domain.ErrorCode(err) == domain.EUNAVAILABLE {
		t.Errorf("wait with a cancelled context: %v, want the context's error", err)
	}
}

// TestWaitForWakesOnNotification waits before the projection runs; starting it wakes the waiter
// through the checkpoint notification.
func TestWaitForWakesOnNotification(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	m := h.manager(t, projections.NewTenantProjection(h.reg))
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	w := newWaiter(t, h, 10*time.Second)
	_, seq := h.createTenant(t, "late")
	done := make(chan error, 1)
	go func() { done <- w.WaitFor(ctx, projections.TenantsProjection, seq) }()
	select {
	case err := <-done:
		t.Fatalf("WaitFor returned %v before the projection ran", err)
	case <-time.After(300 * time.Millisecond):
	}
	started := time.Now()
	start(t, m.Run)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		t.Logf("woken %v after the projection started", time.Since(started))
	case <-time.After(5 * time.Second):
		t.Fatal("WaitFor did not return after the projection caught up")
	}
}
