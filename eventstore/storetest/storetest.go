// Package storetest is the conformance suite of domain.EventStore implementations: every store
// runs Run and must pass it unchanged. The tests need no particular data: each gets a new, empty
// store from the factory.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
)

// waitTimeout bounds every wait for a subscription.
const waitTimeout = 10 * time.Second

// test is one conformance test, run on a fresh store.
type test struct {
	name string
	fn   func(t *testing.T, s domain.EventStore)
}

// Run runs the conformance suite as parallel subtests of t. newStore must return a new, empty
// store each time it is called, and may be called concurrently; it registers its own cleanup with
// t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) domain.EventStore) {
	t.Helper()
	var tests []test
	tests = append(tests, appendTests()...)
	tests = append(tests, concurrencyTests()...)
	tests = append(tests, readTests()...)
	tests = append(tests, subscribeTests()...)
	tests = append(tests, invalidTests()...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// newEvent returns a valid envelope of type typ with a fresh UUIDv7 id and the given JSON payload.
func newEvent(t testing.TB, typ, payload string) domain.Envelope {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatalf("new event id: %v", err)
	}
	return domain.Envelope{
		ID:            id.String(),
		Type:          typ,
		SchemaVersion: 1,
		Actor:         domain.Actor{Type: "user", ID: "u-1"},
		Payload:       json.RawMessage(payload),
	}
}

// newEvents returns n events of type typ with payloads {"n":0}, {"n":1}, ….
func newEvents(t testing.TB, typ string, n int) []domain.Envelope {
	t.Helper()
	out := make([]domain.Envelope, n)
	for i := range out {
		out[i] = newEvent(t, typ, fmt.Sprintf(`{"n":%d}`, i))
	}
	return out
}

// ref returns the reference of a test aggregate.
func ref(tenant, typ, id string) domain.AggregateRef {
	return domain.AggregateRef{TenantID: tenant, Type: typ, ID: id}
}

// mustAppend appends and fails the test on an error or a duplicate.
func mustAppend(t testing.TB, s domain.EventStore, agg domain.AggregateRef, expected uint64, events ...domain.Envelope) domain.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), agg, expected, events...)
	if err != nil {
		t.Fatalf("Append(%s, expected %d, %d events): %v", agg, expected, len(events), err)
	}
	if res.Duplicate {
		t.Fatalf("Append(%s, expected %d): unexpected duplicate %+v", agg, expected, res)
	}
	if want := res.FirstSequence + uint64(len(events)) - 1; res.FirstSequence == 0 || res.LastSequence != want {
		t.Fatalf("Append(%s, %d events) = %+v: want sequences first..first+%d", agg, len(events), res, len(events)-1)
	}
	return res
}

// mustLoad loads and fails the test on an error.
func mustLoad(t testing.TB, s domain.EventStore, agg domain.AggregateRef, after uint64) ([]domain.Envelope, uint64) {
	t.Helper()
	events, version, err := s.Load(context.Background(), agg, after)
	if err != nil {
		t.Fatalf("Load(%s, after %d): %v", agg, after, err)
	}
	return events, version
}

// mustRead reads and fails the test on an error.
func mustRead(t testing.TB, s domain.EventStore, from uint64, f domain.Filter, limit int) []domain.Envelope {
	t.Helper()
	events, err := s.Read(context.Background(), from, f, limit)
	if err != nil {
		t.Fatalf("Read(from %d, %+v, limit %d): %v", from, f, limit, err)
	}
	return events
}

// mustLastSequence returns the store's last sequence and fails the test on an error.
func mustLastSequence(t testing.TB, s domain.EventStore) uint64 {
	t.Helper()
	seq, err := s.LastSequence(context.Background())
	if err != nil {
		t.Fatalf("LastSequence: %v", err)
	}
	return seq
}

// ids returns the ids of events, in order.
func ids(events []domain.Envelope) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// requireIDs fails the test unless got has exactly the ids of want, in order.
func requireIDs(t testing.TB, what string, got, want []domain.Envelope) {
	t.Helper()
	g, w := ids(got), ids(want)
	if fmt.Sprint(g) != fmt.Sprint(w) {
		t.Fatalf("%s: got ids %v, want %v", what, g, w)
	}
}

// requireIncreasing fails the test unless the events' sequences strictly increase.
func requireIncreasing(t testing.TB, what string, events []domain.Envelope) {
	t.Helper()
	for i := 1; i < len(events); i++ {
		if events[i].Sequence <= events[i-1].Sequence {
			t.Fatalf("%s: sequence %d after %d", what, events[i].Sequence, events[i-1].Sequence)
		}
	}
}

// requireCode fails the test unless err has the given domain error code.
func requireCode(t testing.TB, what string, err error, code string) {
	t.Helper()
	if got := domain.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v has code %q, want %q", what, err, got, code)
	}
}

// requireConflict fails the test unless err is a *domain.ConcurrencyError for agg and expected
// with code ECONFLICT, and, when actual is not 0, the given actual version.
func requireConflict(t testing.TB, what string, err error, agg domain.AggregateRef, expected, actual uint64) {
	t.Helper()
	var ce *domain.ConcurrencyError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: got %v, want a *domain.ConcurrencyError", what, err)
	}
	requireCode(t, what, err, domain.ECONFLICT)
	if ce.Aggregate != agg || ce.Expected != expected {
		t.Fatalf("%s: conflict on %s expecting %d, want %s expecting %d", what, ce.Aggregate, ce.Expected, agg, expected)
	}
	if actual != 0 && ce.Actual != actual {
		t.Fatalf("%s: conflict reports actual version %d, want %d", what, ce.Actual, actual)
	}
}

// jsonEqual reports whether two JSON documents are equal once compacted.
func jsonEqual(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// requireSameEnvelope fails the test unless got is want as stored for agg at sequence seq.
func requireSameEnvelope(t testing.TB, got, want domain.Envelope, agg domain.AggregateRef, seq uint64) {
	t.Helper()
	switch {
	case got.ID != want.ID, got.Type != want.Type, got.SchemaVersion != want.SchemaVersion:
		t.Fatalf("envelope identity: got %s %s v%d, want %s %s v%d", got.ID, got.Type, got.SchemaVersion, want.ID, want.Type, want.SchemaVersion)
	case got.Aggregate() != agg:
		t.Fatalf("envelope aggregate: got %s, want %s", got.Aggregate(), agg)
	case !want.OccurredAt.IsZero() && !got.OccurredAt.Equal(want.OccurredAt):
		t.Fatalf("envelope occurred at: got %v, want %v", got.OccurredAt, want.OccurredAt)
	case got.OccurredAt.IsZero():
		t.Fatal("envelope occurred at: not set")
	case got.Actor != want.Actor:
		t.Fatalf("envelope actor: got %+v, want %+v", got.Actor, want.Actor)
	case got.CorrelationID != want.CorrelationID, got.CausationID != want.CausationID:
		t.Fatalf("envelope correlation/causation: got %q/%q, want %q/%q", got.CorrelationID, got.CausationID, want.CorrelationID, want.CausationID)
	case !jsonEqual(got.Payload, want.Payload):
		t.Fatalf("envelope payload: got %s, want %s", got.Payload, want.Payload)
	case got.Sequence != seq:
		t.Fatalf("envelope sequence: got %d, want %d", got.Sequence, seq)
	}
}
