package app

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestVersionFlightsShareOnlyLaterChecks: many requests of one key arriving while a check runs
// share the next check, one fetch for all of them, and every request gets the answer of a check
// that started after it arrived; another key is checked apart; a caller that stops waiting gets
// its context's error while the others still get their answer.
func TestVersionFlightsShareOnlyLaterChecks(t *testing.T) {
	t.Parallel()
	f := newVersionFlights()
	var clock, fetches atomic.Uint64
	release := make(chan struct{})
	// fetch answers the logical time at which it started, once released.
	fetch := func(context.Context) (uint64, error) {
		started := clock.Add(1)
		fetches.Add(1)
		<-release
		return started, nil
	}
	ctx := t.Context()
	first := make(chan uint64, 1)
	arrivedFirst := clock.Add(1)
	go func() {
		v, _ := f.do(ctx, "k", fetch)
		first <- v
	}()
	waitFor(t, func() bool { return fetches.Load() == 1 })

	const n = 50
	var wg sync.WaitGroup
	got, arrived := make([]uint64, n), make([]uint64, n)
	for i := range n {
		wg.Go(func() {
			arrived[i] = clock.Add(1)
			v, err := f.do(ctx, "k", fetch)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			got[i] = v
		})
	}
	// A caller that gives up while the check it joined has not answered.
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() {
		_, err := f.do(cctx, "k", fetch)
		gaveUp <- err
	}()
	waitFor(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.groups["k"] != nil && f.groups["k"].next != nil
	})
	time.Sleep(20 * time.Millisecond) // let the others join the next check
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("the caller that gave up got %v, want its context's error", err)
	}
	close(release)
	wg.Wait()
	if v := <-first; v <= arrivedFirst {
		t.Errorf("first request: answer of a check started at %d, it arrived at %d", v, arrivedFirst)
	}
	for i := range n {
		if got[i] <= arrived[i] {
			t.Errorf("request %d arrived at %d and got the answer of a check started at %d", i, arrived[i], got[i])
		}
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches for 52 requests arriving around one running check, want 2", n)
	}
	// Another key, and the same key again alone: each a check of its own.
	for _, key := range []string{"other", "k"} {
		before := fetches.Load()
		if _, err := f.do(ctx, key, fetch); err != nil {
			t.Fatal(err)
		}
		if fetches.Load() != before+1 {
			t.Errorf("key %s: %d fetches, want 1", key, fetches.Load()-before)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.groups) != 0 {
		t.Errorf("%d keys left behind after every check ended", len(f.groups))
	}
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}
