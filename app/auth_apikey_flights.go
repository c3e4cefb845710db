package app

import (
	"context"
	"sync"
)

// versionFlights shares the event-store version checks of remembered API keys between the requests
// of one key that arrive together, without weakening what each check proves. A request must see a
// version read after it arrived (so that a revocation stored before it is seen), so it never takes
// the answer of a check already on its way; it joins the next check instead, which starts as soon
// as the running one ends, and which every request arriving meanwhile shares. Under load a key
// then costs about one check per round trip to the event store rather than one per request; alone,
// a request waits for no one.
type versionFlights struct {
	mu     sync.Mutex
	groups map[string]*flightGroup
}

// flightGroup is one key's checks: the one running and the next one, which waits for it.
type flightGroup struct {
	running, next *flight
}

// flight is one check and, once done is closed, its answer.
type flight struct {
	done chan struct{}
	v    uint64
	err  error
}

func newVersionFlights() *versionFlights {
	return &versionFlights{groups: make(map[string]*flightGroup)}
}

// do returns the answer of a check of key by fetch that started after the call. The check runs
// detached from ctx (other requests may share it; fetch bounds its own time); ctx only bounds how
// long this caller waits.
func (f *versionFlights) do(ctx context.Context, key string, fetch func(context.Context) (uint64, error)) (uint64, error) {
	f.mu.Lock()
	g := f.groups[key]
	if g == nil {
		g = &flightGroup{}
		f.groups[key] = g
	}
	if g.running == nil {
		fl := &flight{done: make(chan struct{})}
		g.running = fl
		f.mu.Unlock()
		f.run(ctx, key, g, fl, fetch)
		return fl.v, fl.err
	}
	if fl := g.next; fl != nil {
		f.mu.Unlock()
		return fl.wait(ctx)
	}
	// The first to need the next check starts it once the running one ends (finish makes it the
	// running one then), even if its own caller has stopped waiting: others may share it.
	fl := &flight{done: make(chan struct{})}
	g.next = fl
	prev := g.running
	f.mu.Unlock()
	go func() {
		<-prev.done
		f.run(ctx, key, g, fl, fetch)
	}()
	return fl.wait(ctx)
}

// run performs fl's check and ends it.
func (f *versionFlights) run(ctx context.Context, key string, g *flightGroup, fl *flight, fetch func(context.Context) (uint64, error)) {
	fl.v, fl.err = fetch(context.WithoutCancel(ctx))
	f.mu.Lock()
	g.running, g.next = g.next, nil // the next check, if any, is the running one from now on
	if g.running == nil {
		delete(f.groups, key)
	}
	f.mu.Unlock()
	close(fl.done)
}

// wait returns fl's answer, or ctx's error if ctx ends first.
func (fl *flight) wait(ctx context.Context) (uint64, error) {
	select {
	case <-fl.done:
		return fl.v, fl.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
