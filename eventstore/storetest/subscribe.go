package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

func subscribeTests() []test {
	return []test{
		{"SubscribeStoredThenLive", testSubscribeStoredThenLive},
		{"SubscribeFromWithFilter", testSubscribeFromWithFilter},
		{"SubscribeReturnsHandlerError", testSubscribeHandlerError},
		{"SubscribeStopsOnCancel", testSubscribeStopsOnCancel},
		{"SubscribePassing", testSubscribePassing},
	}
}

// subscription is a Subscribe running in its own goroutine.
type subscription struct {
	events chan domain.Envelope
	done   chan error
	cancel context.CancelFunc
}

// subscribe starts Subscribe, collecting events, until stop or the end of the test.
func subscribe(t *testing.T, s domain.EventStore, from uint64, f domain.Filter) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub := &subscription{events: make(chan domain.Envelope, 1000), done: make(chan error, 1), cancel: cancel}
	go func() {
		sub.done <- s.Subscribe(ctx, from, f, func(e domain.Envelope) error {
			sub.events <- e
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-sub.done:
			if err != nil {
				t.Errorf("Subscribe returned %v after its context was canceled, want nil", err)
			}
		case <-time.After(waitTimeout):
			t.Error("Subscribe did not return after its context was canceled")
		}
	})
	return sub
}

// next returns the next n events, failing the test if they do not come in time.
func (sub *subscription) next(t *testing.T, n int) []domain.Envelope {
	t.Helper()
	out := make([]domain.Envelope, 0, n)
	timeout := time.After(waitTimeout)
	for len(out) < n {
		select {
		case e := <-sub.events:
			out = append(out, e)
		case err := <-sub.done:
			t.Fatalf("Subscribe returned %v after %d of %d events", err, len(out), n)
		case <-timeout:
			t.Fatalf("got %d of %d events in %v", len(out), n, waitTimeout)
		}
	}
	return out
}

// stop cancels the subscription and returns what Subscribe returned.
func (sub *subscription) stop(t *testing.T) error {
	t.Helper()
	sub.cancel()
	select {
	case err := <-sub.done:
		sub.done <- err // for the cleanup
		return err
	case <-time.After(waitTimeout):
		t.Fatal("Subscribe did not return after its context was canceled")
		return nil
	}
}

func testSubscribeStoredThenLive(t *testing.T, s domain.EventStore) {
	a, b := ref("acme", "ticket", "a"), ref("globex", "ticket", "b")
	stored := appendEach(t, s, 2, a, b)
	sub := subscribe(t, s, 0, domain.Filter{})
	got := sub.next(t, len(stored))
	requireIDs(t, "stored events", got, stored)
	for i, e := range got {
		requireSameEnvelope(t, e, stored[i], stored[i].Aggregate(), stored[i].Sequence)
	}

	var live []domain.Envelope
	single := newEvent(t, "thing.happened", `{"live":1}`)
	mustAppend(t, s, a, stored[len(stored)-2].Sequence, single)
	live = append(live, single)
	batch := newEvents(t, "thing.happened", 2)
	mustAppend(t, s, b, stored[len(stored)-1].Sequence, batch...)
	live = append(live, batch...)
	gotLive := sub.next(t, len(live))
	requireIDs(t, "live events", gotLive, live)
	requireIncreasing(t, "all events", append(got, gotLive...))
	if gotLive[0].Sequence <= got[len(got)-1].Sequence {
		t.Fatalf("live event at %d, not after the stored %d", gotLive[0].Sequence, got[len(got)-1].Sequence)
	}

	if err := sub.stop(t); err != nil {
		t.Fatalf("Subscribe returned %v after cancel, want nil", err)
	}
	select {
	case e := <-sub.events:
		t.Fatalf("unexpected event %s", e.ID)
	default:
	}
}

func testSubscribeFromWithFilter(t *testing.T, s domain.EventStore) {
	acme, globex := ref("acme", "ticket", "a"), ref("globex", "ticket", "a")
	all := appendEach(t, s, 3, acme, globex)
	from := all[2].Sequence
	var want []domain.Envelope
	for _, e := range all {
		if e.Sequence >= from && e.TenantID == "acme" {
			want = append(want, e)
		}
	}
	sub := subscribe(t, s, from, domain.Filter{TenantID: "acme"})
	requireIDs(t, "stored acme events", sub.next(t, len(want)), want)

	other := newEvent(t, "thing.happened", `{}`)
	mustAppend(t, s, globex, all[len(all)-1].Sequence, other)
	mine := newEvent(t, "thing.happened", `{}`)
	mustAppend(t, s, acme, all[len(all)-2].Sequence, mine)
	requireIDs(t, "live acme events", sub.next(t, 1), []domain.Envelope{mine})
	if err := sub.stop(t); err != nil {
		t.Fatalf("Subscribe returned %v after cancel, want nil", err)
	}
}

func testSubscribeHandlerError(t *testing.T, s domain.EventStore) {
	stored := appendEach(t, s, 3, ref("acme", "ticket", "a"))
	errStop := errors.New("stop here")
	var calls []domain.Envelope
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := s.Subscribe(ctx, 0, domain.Filter{}, func(e domain.Envelope) error {
		calls = append(calls, e)
		if len(calls) == 2 {
			return fmt.Errorf("handler: %w", errStop)
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Subscribe returned %v, want the handler's error", err)
	}
	requireIDs(t, "handled events", calls, stored[:2])
}

func testSubscribeStopsOnCancel(t *testing.T, s domain.EventStore) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Subscribe(canceled, 0, domain.Filter{}, func(domain.Envelope) error { return nil }); err != nil {
		t.Fatalf("Subscribe with a canceled context returned %v, want nil", err)
	}
	sub := subscribe(t, s, 0, domain.Filter{TenantID: "acme"})
	time.Sleep(50 * time.Millisecond) // let it wait for events
	if err := sub.stop(t); err != nil {
		t.Fatalf("Subscribe returned %v after cancel, want nil", err)
	}
}

// testSubscribePassing: a store that is a domain.PassingSubscriber (both of package eventstore
// are) shows pass every matching event's aggregate and sequence in order, stored then live, and
// hands fn exactly the events pass keeps.
func testSubscribePassing(t *testing.T, s domain.EventStore) {
	ps, ok := s.(domain.PassingSubscriber)
	if !ok {
		t.Fatalf("%T is not a domain.PassingSubscriber", s)
	}
	a, b, other := ref("acme", "ticket", "a"), ref("acme", "ticket", "b"), ref("acme", "note", "n")
	stored := appendEach(t, s, 3, a, b, other)
	var want []domain.Envelope
	var wantSeen []uint64
	for _, e := range stored {
		if e.AggregateType != "ticket" {
			continue
		}
		wantSeen = append(wantSeen, e.Sequence)
		if e.AggregateID == "b" {
			want = append(want, e)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan uint64, 100)
	got := make(chan domain.Envelope, 100)
	done := make(chan error, 1)
	go func() {
		done <- ps.SubscribePassing(ctx, 0, domain.Filter{AggregateType: "ticket"}, func(agg domain.AggregateRef, seq uint64) bool {
			seen <- seq
			return agg.ID != "b"
		}, func(e domain.Envelope) error {
			got <- e
			return nil
		})
	}()
	take := func(n int) ([]uint64, []domain.Envelope) {
		var seqs []uint64
		var envs []domain.Envelope
		timeout := time.After(waitTimeout)
		for len(envs) < n {
			select {
			case e := <-got:
				envs = append(envs, e)
			case err := <-done:
				t.Fatalf("SubscribePassing returned %v", err)
			case <-timeout:
				t.Fatalf("got %d of %d events", len(envs), n)
			}
		}
		for len(seen) > 0 {
			seqs = append(seqs, <-seen)
		}
		return seqs, envs
	}
	seqs, envs := take(len(want))
	requireIDs(t, "stored events kept", envs, want)
	if fmt.Sprint(seqs) != fmt.Sprint(wantSeen) {
		t.Errorf("pass saw sequences %v, want %v", seqs, wantSeen)
	}
	passed := newEvent(t, "thing.happened", `{}`)
	ra := mustAppend(t, s, a, stored[len(stored)-3].Sequence, passed)
	kept := newEvent(t, "thing.happened", `{}`)
	rb := mustAppend(t, s, b, stored[len(stored)-2].Sequence, kept)
	seqs, envs = take(1)
	requireIDs(t, "live event kept", envs, []domain.Envelope{kept})
	if len(seqs) != 2 || seqs[0] != ra.LastSequence || seqs[1] != rb.LastSequence {
		t.Errorf("pass saw live sequences %v, want [%d %d]", seqs, ra.LastSequence, rb.LastSequence)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("SubscribePassing returned %v after cancel, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Error("SubscribePassing did not return after cancel")
	}
}
