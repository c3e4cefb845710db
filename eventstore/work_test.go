package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
)

// workTenant is the tenant of the work tests' events.
const workTenant = "0b4f1f5e-7d1e-4c55-9b1a-6f0e3c2d1a00"

// appendJobs appends n events to the aggregate typ/id, one append each, and returns their ids in
// order.
func appendJobs(t *testing.T, s *eventstore.JetStream, typ, id string, n int) []string {
	t.Helper()
	ref := domain.AggregateRef{TenantID: workTenant, Type: typ, ID: id}
	version, err := s.Version(t.Context(), ref)
	if err != nil {
		t.Fatalf("version of %s: %v", ref, err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
		res, err := s.Append(t.Context(), ref, version, domain.Envelope{ID: ids[i], Type: typ + ".happened", SchemaVersion: 1,
			Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		if err != nil {
			t.Fatalf("append to %s: %v", ref, err)
		}
		version = res.LastSequence
	}
	return ids
}

// runWork runs Work until the returned stop is called; stop returns Work's error.
func runWork(t *testing.T, s *eventstore.JetStream, cfg eventstore.WorkConfig, fn func(context.Context, domain.Envelope) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		err := s.Work(ctx, cfg, fn)
		if ctx.Err() == nil {
			t.Errorf("Work returned before its context ended: %v", err)
		}
		done <- err
	}()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// seen records what a work function was given.
type seen struct {
	mu   sync.Mutex
	ids  []string
	byID map[string]int
}

func (s *seen) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[string]int{}
	}
	s.ids = append(s.ids, id)
	s.byID[id]++
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

func (s *seen) times(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWorkDeliversMatchingEventsOnceAndResumes: every event of the filter's aggregate type is
// worked on once, no other; stopped and started again with the same durable name, Work goes on
// with the events that came meanwhile and does not hand out the acknowledged ones again.
func TestWorkDeliversMatchingEventsOnceAndResumes(t *testing.T) {
	t.Parallel()
	s := openStore(t, testkit.StartNATS(t, "").Connect(t))
	first := appendJobs(t, s, "job", "a", 6)
	appendJobs(t, s, "other", "b", 4)
	cfg := eventstore.WorkConfig{Durable: "work_resume", Filter: domain.Filter{AggregateType: "job"}}
	var got seen
	fn := func(_ context.Context, env domain.Envelope) error {
		if env.AggregateType != "job" {
			return fmt.Errorf("handed a %s event", env.AggregateType)
		}
		got.add(env.ID)
		return nil
	}
	stop := runWork(t, s, cfg, fn)
	waitUntil(t, "the first events", func() bool { return got.count() == len(first) })
	if err := stop(); err != nil {
		t.Fatalf("Work returned %v after its context ended, want nil", err)
	}
	second := appendJobs(t, s, "job", "a", 3)
	stop = runWork(t, s, cfg, fn)
	waitUntil(t, "the later events", func() bool { return got.count() == len(first)+len(second) })
	time.Sleep(200 * time.Millisecond) // anything handed out twice would show by now
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for i, id := range append(first, second...) {
		if n := got.times(id); n != 1 || got.ids[i] != id {
			t.Errorf("event %d (%s) worked on %d times at position %q; want once, in order", i, id, n, got.ids[i])
		}
	}
	if got.count() != len(first)+len(second) {
		t.Errorf("worked on %d events, want %d", got.count(), len(first)+len(second))
	}
}

// TestWorkRetriesAFailedJobAndLeavesAnUndecodableEvent: a job that fails is handed out again after
// the backoff until it succeeds; an event that cannot be decoded is left, and the next one worked on.
func TestWorkRetriesAFailedJobAndLeavesAnUndecodableEvent(t *testing.T) {
	t.Parallel()
	s := openStore(t, testkit.StartNATS(t, "").Connect(t))
	flaky := appendJobs(t, s, "job", "flaky", 1)[0]
	if _, err := s.JetStream().Publish(t.Context(), s.Config().SubjectPrefix+"."+workTenant+".job.garbage", []byte("not json")); err != nil {
		t.Fatalf("publish garbage: %v", err)
	}
	after := appendJobs(t, s, "job", "after", 1)[0]
	var attempts atomic.Int32
	var got seen
	stop := runWork(t, s, eventstore.WorkConfig{Durable: "work_retry", Filter: domain.Filter{AggregateType: "job"},
		Backoff: []time.Duration{20 * time.Millisecond}, Concurrency: 2},
		func(_ context.Context, env domain.Envelope) error {
			if env.ID == flaky && attempts.Add(1) < 3 {
				return errors.New("not yet")
			}
			got.add(env.ID)
			return nil
		})
	waitUntil(t, "the flaky job to succeed and the next to run", func() bool { return got.times(flaky) == 1 && got.times(after) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := attempts.Load(); n != 3 {
		t.Errorf("the flaky job ran %d times, want 3 (two failures, one success)", n)
	}
	if got.count() != 2 {
		t.Errorf("worked on %d events, want the two decodable ones: %v", got.count(), got.ids)
	}
}

// TestWorkConcurrencyKeepsEachAggregateInOrder: with four workers, events of different
// aggregates are worked on at the same time, those of one aggregate one at a time and in order.
func TestWorkConcurrencyKeepsEachAggregateInOrder(t *testing.T) {
	t.Parallel()
	s := openStore(t, testkit.StartNATS(t, "").Connect(t))
	const aggregates, per = 6, 8
	want := map[string][]string{}
	for a := range aggregates {
		id := fmt.Sprintf("agg%d", a)
		want[id] = appendJobs(t, s, "job", id, per)
	}
	var (
		mu            sync.Mutex
		order         = map[string][]string{}
		running       = map[string]bool{}
		now, most     int
		overlapsInAgg int
	)
	var total atomic.Int32
	stop := runWork(t, s, eventstore.WorkConfig{Durable: "work_concurrent", Filter: domain.Filter{AggregateType: "job"}, Concurrency: 4},
		func(_ context.Context, env domain.Envelope) error {
			mu.Lock()
			if running[env.AggregateID] {
				overlapsInAgg++
			}
			running[env.AggregateID] = true
			now++
			most = max(most, now)
			order[env.AggregateID] = append(order[env.AggregateID], env.ID)
			mu.Unlock()
			time.Sleep(15 * time.Millisecond)
			mu.Lock()
			running[env.AggregateID] = false
			now--
			mu.Unlock()
			total.Add(1)
			return nil
		})
	waitUntil(t, "every event", func() bool { return total.Load() == aggregates*per })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if overlapsInAgg != 0 {
		t.Errorf("%d times two events of one aggregate were worked on at once", overlapsInAgg)
	}
	if most < 2 || most > 4 {
		t.Errorf("at most %d events were worked on at once, want between 2 and the 4 workers", most)
	}
	for id, ids := range want {
		if fmt.Sprint(order[id]) != fmt.Sprint(ids) {
			t.Errorf("aggregate %s worked on in the order %v, want %v", id, order[id], ids)
		}
	}
}

// TestWorkLongJobIsNotHandedOutAgain: a job that takes longer than AckWait tells JetStream it is in
// progress, so it is not handed out a second time while it runs.
func TestWorkLongJobIsNotHandedOutAgain(t *testing.T) {
	t.Parallel()
	s := openStore(t, testkit.StartNATS(t, "").Connect(t))
	ids := appendJobs(t, s, "job", "slow", 2)
	var got seen
	stop := runWork(t, s, eventstore.WorkConfig{Durable: "work_long", Filter: domain.Filter{AggregateType: "job"},
		AckWait: time.Second},
		func(_ context.Context, env domain.Envelope) error {
			got.add(env.ID)
			if env.ID == ids[0] {
				time.Sleep(2500 * time.Millisecond) // two and a half times AckWait
			}
			return nil
		})
	waitUntil(t, "both jobs", func() bool { return got.times(ids[1]) >= 1 })
	time.Sleep(1200 * time.Millisecond) // a redelivery would come within AckWait
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if n := got.times(id); n != 1 {
			t.Errorf("job %s worked on %d times, want once", id, n)
		}
	}
}

// TestWorkSharedByTwoInstances: two Work loops with the same durable name split the events; each
// is worked on once in all.
func TestWorkSharedByTwoInstances(t *testing.T) {
	t.Parallel()
	srv := testkit.StartNATS(t, "")
	s := openStore(t, srv.Connect(t))
	other, err := eventstore.Open(t.Context(), connect(t, srv), s.Config())
	if err != nil {
		t.Fatalf("open the second instance's store: %v", err)
	}
	var got seen
	fn := func(_ context.Context, env domain.Envelope) error {
		got.add(env.ID)
		time.Sleep(2 * time.Millisecond)
		return nil
	}
	cfg := eventstore.WorkConfig{Durable: "work_shared", Filter: domain.Filter{AggregateType: "job"}}
	stopA := runWork(t, s, cfg, fn)
	stopB := runWork(t, other, cfg, fn)
	var ids []string
	for a := range 5 {
		ids = append(ids, appendJobs(t, s, "job", fmt.Sprintf("shared%d", a), 6)...)
	}
	waitUntil(t, "every event", func() bool { return got.count() >= len(ids) })
	time.Sleep(200 * time.Millisecond)
	if err := errors.Join(stopA(), stopB()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if n := got.times(id); n != 1 {
			t.Errorf("event %s worked on %d times by the two instances, want once", id, n)
		}
	}
}

// connect opens another connection to srv, closed with the test.
func connect(t *testing.T, srv *testkit.NATS) *nats.Conn {
	t.Helper()
	return srv.Connect(t)
}
