package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metachat/metachat/domain"
)

// The load run: twice the expected peak traffic of a mid-sized deployment, for a fixed time, over
// the real HTTP API and real widget sockets, with the checks of a soak: no errors, latency inside
// target, and memory, goroutines and file descriptors back at their baseline afterwards.
//
// A mid-sized deployment, as we size it: 200 tenants with 2,000 conversations active at the busy
// hour, each exchanging a message every 8 s on average — 250 messages/s, 70 % through the REST API
// (integrations, agents) and 30 % from visitors' widget sockets. Twice that is the load below:
// 350 REST sends/s and 150 socket sends/s, 500 messages/s in all.
const (
	loadRESTRate   = 350
	loadSocketRate = 150
	loadDuration   = 30 * time.Second
	loadPairs      = 100 // widget conversations, two sockets each
	loadSettle     = 3 * time.Second
	// loadP99Target is the latency target the run is judged by (the send target).
	loadP99Target = 25 * time.Millisecond
	// loadHeapSlack is how much more live heap there may be after the run than before: the caches
	// grow with the data (each conversation's decided state keeps its client_message_id index).
	// The verdict is on the live heap (what two collections leave allocated), not on the heap's
	// spans in use, which also count the spans a larger heap left partly occupied: with the GC
	// target at 400 (internal/runtimecfg) the heap grows further under load, and its spans in use
	// after it stay about twice the live heap, as they are before it.
	loadHeapSlack = 32 << 20
)

// resources is a snapshot of what the process holds.
type resources struct {
	heap       uint64 // heap spans in use
	live       uint64 // heap allocated: the live objects, after the collections
	goroutines int
	fds        int
}

func snapshot() resources {
	m := collectedMemStats()
	return resources{heap: m.HeapInuse, live: m.HeapAlloc, goroutines: runtime.NumGoroutine(), fds: openFDs()}
}

// openFDs counts the process's open file descriptors (-1 where /proc is not available).
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// benchLoad runs the load and reports throughput, latency percentiles, errors and resources
// before, during and after.
func benchLoad(ctx context.Context, t *table, _ options, logger *slog.Logger) error {
	t.header(fmt.Sprintf("load: 2x a mid-sized deployment's peak (%d REST + %d socket messages/s) for %s; then resources back to baseline",
		loadRESTRate, loadSocketRate, loadDuration))
	w, err := startMessageWorld(ctx, logger)
	if err != nil {
		return err
	}
	defer w.close()
	wd, _, err := w.widgets.CreateWidget(ctx, w.owner, domain.WidgetSettings{Name: "Load", AllowedOrigins: []string{sockOrigin}}, "")
	if err != nil {
		return err
	}
	// Warm up at the full rate (the database pools grow to their working size, the caches fill),
	// then take the baseline.
	if _, err := w.paced(ctx, w.auths[0].token, loadRESTRate+loadSocketRate, 5*time.Second); err != nil {
		return err
	}
	w.client.CloseIdleConnections()
	time.Sleep(loadSettle)
	base := snapshot()

	pairs := make([]*sockPair, 0, loadPairs)
	for range loadPairs {
		p, err := w.openPair(ctx, wd.ID)
		if err != nil {
			return err
		}
		pairs = append(pairs, p)
	}
	var peak atomic.Uint64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	})
	var rest loadResult
	var sock latencies
	var sockErrs int
	var wg sync.WaitGroup
	wg.Go(func() { rest, err = w.paced(ctx, w.auths[0].token, loadRESTRate, loadDuration) })
	wg.Go(func() { sock, sockErrs = pacedSocketSends(ctx, pairs, loadSocketRate, loadDuration) })
	wg.Wait()
	stopSampling()
	sampler.Wait()
	if err != nil {
		return err
	}
	during := snapshot()
	during.heap = max(during.heap, peak.Load())
	for _, p := range pairs {
		p.close()
	}
	w.client.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	var after resources
	for {
		time.Sleep(loadSettle)
		after = snapshot()
		if (after.goroutines <= base.goroutines+5 && after.fds <= base.fds+4) || time.Now().After(deadline) {
			break
		}
	}

	verdict := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "FAIL"
	}
	t.row("traffic", "messages", "msg/s", "P50", "P99", "P99.9", "errors", "P99 target")
	t.row(fmt.Sprintf("REST sends (API key), %d/s offered", loadRESTRate), fmt.Sprint(rest.n), fmt.Sprintf("%.0f", rest.rate),
		ms(rest.lat.pct(50)), ms(rest.lat.pct(99)), ms(rest.lat.pct(99.9)), fmt.Sprint(rest.errors), verdict(rest.errors == 0 && rest.lat.pct(99) <= loadP99Target))
	t.row(fmt.Sprintf("socket sends -> other socket, %d/s offered, %d sockets", loadSocketRate, 2*loadPairs), fmt.Sprint(len(sock)),
		fmt.Sprintf("%.0f", rate(len(sock), loadDuration)), ms(sock.pct(50)), ms(sock.pct(99)), ms(sock.pct(99.9)), fmt.Sprint(sockErrs),
		verdict(sockErrs == 0 && sock.pct(99) <= loadP99Target))
	t.row("resources", "heap in use", "live heap", "goroutines", "open fds", "", "", "back to baseline")
	t.row("before", mib(base.heap), mib(base.live), fmt.Sprint(base.goroutines), fmt.Sprint(base.fds), "", "", "")
	t.row("during (heap: peak)", mib(during.heap), mib(during.live), fmt.Sprint(during.goroutines), fmt.Sprint(during.fds), "", "", "")
	t.row("after", mib(after.heap), mib(after.live), fmt.Sprint(after.goroutines), fmt.Sprint(after.fds), "", "",
		verdict(after.goroutines <= base.goroutines+5 && after.fds <= base.fds+4 && after.live <= base.live+loadHeapSlack))
	return nil
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// paced offers perSecond REST sends per second for d, each at its scheduled time whether or not
// earlier ones were answered (at most msgMaxInFlight in flight), each to a random conversation;
// latency counts from the scheduled time, so a backlog shows in it. Each request in flight has a
// keep-alive connection of a pool to itself; the pool is closed when the run ends.
func (w *messageWorld) paced(ctx context.Context, token string, perSecond int, d time.Duration) (loadResult, error) {
	total := int(float64(perSecond) * d.Seconds())
	interval := time.Second / time.Duration(perSecond)
	sem := make(chan struct{}, msgMaxInFlight)
	pool := newLoadConnPool(w.addr, msgMaxInFlight)
	var (
		mu   sync.Mutex
		lat  = make(latencies, 0, total)
		errs atomic.Int64
		wg   sync.WaitGroup
	)
	start := time.Now()
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			pool.close()
			return loadResult{}, ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c := pool.get()
			defer pool.put(c)
			if err := w.send(ctx, c, token, rand.IntN(len(w.convIDs))); err != nil {
				errs.Add(1)
				return
			}
			mu.Lock()
			lat = append(lat, time.Since(due))
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	pool.close()
	return loadResult{n: len(lat), rate: rate(len(lat), elapsed), lat: lat, errors: errs.Load()}, nil
}

// pacedSocketSends offers perSecond socket sends for d from random pairs' first sockets, timing
// each until the pair's second socket has it.
func pacedSocketSends(ctx context.Context, pairs []*sockPair, perSecond int, d time.Duration) (latencies, int) {
	total := int(float64(perSecond) * d.Seconds())
	interval := time.Second / time.Duration(perSecond)
	var (
		mu   sync.Mutex
		lat  = make(latencies, 0, total)
		errs int
		wg   sync.WaitGroup
	)
	start := time.Now()
	for n := range total {
		due := start.Add(time.Duration(n) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		p := pairs[n%len(pairs)]
		wg.Go(func() {
			err := p.sendAndAwait(ctx, fmt.Sprintf("load-%d", n))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			lat = append(lat, time.Since(due))
		})
	}
	wg.Wait()
	return lat, errs
}
