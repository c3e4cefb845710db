package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

// concurrentWriters is how many writers race for the same aggregate version.
const concurrentWriters = 20

func concurrencyTests() []test {
	return []test{
		{"ConcurrentWritersOneWins", testConcurrentWritersOneWins},
		{"AtomicBatchContiguous", testAtomicBatchContiguous},
		{"OrderAcrossManyAppends", testOrderAcrossManyAppends},
		{"LoadDuringAppends", testLoadDuringAppends},
	}
}

// appendOutcome is one racing writer's result.
type appendOutcome struct {
	events []domain.Envelope
	res    domain.AppendResult
	err    error
}

// race has n writers append size events each to agg at expected, all at once.
func race(t *testing.T, s domain.EventStore, agg domain.AggregateRef, expected uint64, n, size int) []appendOutcome {
	t.Helper()
	out := make([]appendOutcome, n)
	for i := range out {
		out[i].events = newEvents(t, "ticket.noted", size)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			<-start
			out[i].res, out[i].err = s.Append(context.Background(), agg, expected, out[i].events...)
		})
	}
	close(start)
	wg.Wait()
	return out
}

func testConcurrentWritersOneWins(t *testing.T, s domain.EventStore) {
	agg := ref("acme", "ticket", "t-1")
	var version uint64
	var stored []domain.Envelope
	for round, size := range []int{1, 2} {
		outcomes := race(t, s, agg, version, concurrentWriters, size)
		var winner *appendOutcome
		for i, o := range outcomes {
			if o.err == nil {
				if winner != nil {
					t.Fatalf("round %d: writers %v and %v both won", round, ids(winner.events), ids(o.events))
				}
				winner = &outcomes[i]
				continue
			}
			var ce *domain.ConcurrencyError
			if !errors.As(o.err, &ce) || domain.ErrorCode(o.err) != domain.ECONFLICT {
				t.Fatalf("round %d: losing writer got %v, want a *domain.ConcurrencyError", round, o.err)
			}
		}
		if winner == nil {
			t.Fatalf("round %d: no writer won", round)
		}
		stored = append(stored, winner.events...)
		events, v := mustLoad(t, s, agg, 0)
		requireIDs(t, fmt.Sprintf("round %d: Load", round), events, stored)
		if v != winner.res.LastSequence {
			t.Fatalf("round %d: version %d, want the winner's %d", round, v, winner.res.LastSequence)
		}
		version = v
	}
}

func testAtomicBatchContiguous(t *testing.T, s domain.EventStore) {
	const writers, batches, size = 4, 5, 4
	var wg sync.WaitGroup
	results := make([][]appendOutcome, writers)
	for w := range results {
		results[w] = make([]appendOutcome, batches)
		for b := range results[w] {
			results[w][b].events = newEvents(t, "ticket.noted", size)
		}
	}
	for w, rs := range results {
		wg.Go(func() {
			agg := ref("acme", "ticket", fmt.Sprintf("w-%d", w))
			var version uint64
			for b := range rs {
				rs[b].res, rs[b].err = s.Append(context.Background(), agg, version, rs[b].events...)
				if rs[b].err != nil {
					return
				}
				version = rs[b].res.LastSequence
			}
		})
	}
	wg.Wait()
	for w, rs := range results {
		for _, o := range rs {
			if o.err != nil || o.res.FirstSequence == 0 {
				t.Fatalf("writer %d: %+v, %v", w, o.res, o.err)
			}
			if o.res.LastSequence-o.res.FirstSequence != size-1 {
				t.Fatalf("writer %d: batch of %d stored at %d..%d", w, size, o.res.FirstSequence, o.res.LastSequence)
			}
			got := mustRead(t, s, o.res.FirstSequence, domain.Filter{}, size)
			requireIDs(t, fmt.Sprintf("writer %d: events at %d..%d", w, o.res.FirstSequence, o.res.LastSequence), got, o.events)
		}
	}
	if last := mustLastSequence(t, s); last != writers*batches*size {
		t.Fatalf("last sequence %d, want %d", last, writers*batches*size)
	}
}

func testOrderAcrossManyAppends(t *testing.T, s domain.EventStore) {
	aggs := []domain.AggregateRef{ref("acme", "ticket", "a"), ref("acme", "ticket", "b"), ref("globex", "user", "a")}
	versions := make([]uint64, len(aggs))
	var all []domain.Envelope
	for i := range 30 {
		k := i % len(aggs)
		e := newEvent(t, "ticket.noted", fmt.Sprintf(`{"i":%d}`, i))
		versions[k] = mustAppend(t, s, aggs[k], versions[k], e).LastSequence
		all = append(all, e)
	}
	got := mustRead(t, s, 0, domain.Filter{}, 1000)
	requireIDs(t, "Read", got, all)
	requireIncreasing(t, "Read", got)
	for k, agg := range aggs {
		events, version := mustLoad(t, s, agg, 0)
		if len(events) != 10 || version != versions[k] {
			t.Fatalf("Load(%s): %d events at version %d, want 10 at %d", agg, len(events), version, versions[k])
		}
		requireIncreasing(t, "Load", events)
	}
}

// testLoadDuringAppends: a load racing appends never answers "no events after v, version w > v".
// A state folded from those events would pass for version w, and a command decided on it would be
// appended at w without having seen the event at w.
func testLoadDuringAppends(t *testing.T, s domain.EventStore) {
	agg := ref("acme", "ticket", "raced")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var appendErr error
	wg.Go(func() {
		var v uint64
		for ctx.Err() == nil {
			res, err := s.Append(context.Background(), agg, v, newEvents(t, "ticket.noted", 1)...)
			if err != nil {
				appendErr = err
				return
			}
			v = res.LastSequence
		}
	})
	var after uint64
	var problem error
	for ctx.Err() == nil && problem == nil {
		events, version, err := s.Load(context.Background(), agg, after)
		switch {
		case err != nil:
			problem = err
		case len(events) > 0 && version != events[len(events)-1].Sequence:
			problem = fmt.Errorf("load after %d: events up to %d but version %d", after, events[len(events)-1].Sequence, version)
		case len(events) == 0 && version > after:
			problem = fmt.Errorf("load after %d: no events, yet version %d", after, version)
		}
		after = version
	}
	cancel()
	wg.Wait()
	if err := errors.Join(problem, appendErr); err != nil {
		t.Fatal(err)
	}
	if after == 0 {
		t.Fatal("no append was seen by a load")
	}
}
