package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

func appendTests() []test {
	return []test{
		{"AppendLoadRoundTrip", testAppendLoadRoundTrip},
		{"AppendDefaultsOccurredAt", testAppendDefaultsOccurredAt},
		{"AppendSeveralEvents", testAppendSeveralEvents},
		{"VersionIsLastSubjectSequence", testVersionIsLastSubjectSequence},
		{"ExpectedZeroOnExistingAggregate", testExpectedZeroOnExisting},
		{"WrongExpectedVersion", testWrongExpectedVersion},
		{"DuplicateEventStoredOnce", testDuplicateEventStoredOnce},
		{"RetriedBatchStoredOnce", testRetriedBatchStoredOnce},
		{"BatchWithStoredEventRejected", testBatchWithStoredEventRejected},
		{"ConflictingBatchStoresNothing", testConflictingBatchStoresNothing},
	}
}

func testAppendLoadRoundTrip(t *testing.T, s domain.EventStore) {
	agg := ref("acme", "ticket", "t-1")
	loc := time.FixedZone("CEST", 2*60*60)
	want := domain.Envelope{
		ID:            "0190f1f2-7a8b-7c9d-8e0f-123456789abc",
		Type:          "ticket.opened",
		SchemaVersion: 3,
		OccurredAt:    time.Date(2025, 6, 1, 12, 30, 45, 123456789, loc),
		Actor:         domain.Actor{Type: "api_key", ID: "key-9"},
		CorrelationID: "corr-1",
		CausationID:   "cause-1",
		Payload:       json.RawMessage(`{"subject":"Hello, wörld","n":[1,2,3],"nested":{"ok":true}}`),
	}
	res := mustAppend(t, s, agg, 0, want)
	if res.FirstSequence != res.LastSequence {
		t.Fatalf("one event: got sequences %d..%d", res.FirstSequence, res.LastSequence)
	}

	events, version := mustLoad(t, s, agg, 0)
	if len(events) != 1 {
		t.Fatalf("Load: got %d events, want 1", len(events))
	}
	if version != res.LastSequence {
		t.Fatalf("Load: version %d, want %d", version, res.LastSequence)
	}
	requireSameEnvelope(t, events[0], want, agg, res.LastSequence)

	read := mustRead(t, s, 1, domain.Filter{}, 10)
	if len(read) != 1 {
		t.Fatalf("Read: got %d events, want 1", len(read))
	}
	requireSameEnvelope(t, read[0], want, agg, res.LastSequence)
}

func testAppendDefaultsOccurredAt(t *testing.T, s domain.EventStore) {
	agg := ref("acme", "ticket", "t-1")
	e := newEvent(t, "ticket.opened", `{}`)
	// Aggregate fields that agree with the reference are accepted.
	e.TenantID, e.AggregateType, e.AggregateID = agg.TenantID, agg.Type, agg.ID
	before := time.Now().Add(-time.Minute)
	mustAppend(t, s, agg, 0, e)
	events, _ := mustLoad(t, s, agg, 0)
	if len(events) != 1 {
		t.Fatalf("Load: got %d events, want 1", len(events))
	}
	if at := events[0].OccurredAt; at.IsZero() || at.Before(before) {
		t.Fatalf("OccurredAt %v: want it set by the store", at)
	}
}

func testAppendSeveralEvents(t *testing.T, s domain.EventStore) {
	agg := ref("acme", "ticket", "t-1")
	batch := newEvents(t, "ticket.noted", 3)
	res := mustAppend(t, s, agg, 0, batch...)
	events, version := mustLoad(t, s, agg, 0)
	requireIDs(t, "Load", events, batch)
	for i, e := range events {
		requireSameEnvelope(t, e, batch[i], agg, res.FirstSequence+uint64(i))
	}
	if version != res.LastSequence {
		t.Fatalf("version %d, want %d", version, res.LastSequence)
	}
	more := newEvents(t, "ticket.noted", 2)
	res2 := mustAppend(t, s, agg, version, more...)
	if res2.FirstSequence <= res.LastSequence {
		t.Fatalf("second append at %d..%d, not after %d", res2.FirstSequence, res2.LastSequence, res.LastSequence)
	}
	events, _ = mustLoad(t, s, agg, 0)
	requireIDs(t, "Load after second append", events, append(batch, more...))
}

func testVersionIsLastSubjectSequence(t *testing.T, s domain.EventStore) {
	a, b := ref("acme", "ticket", "a"), ref("acme", "ticket", "b")
	ra := mustAppend(t, s, a, 0, newEvent(t, "ticket.opened", `{}`))
	rb := mustAppend(t, s, b, 0, newEvent(t, "ticket.opened", `{}`))
	// b's event does not move a's version.
	_, va := mustLoad(t, s, a, 0)
	if va != ra.LastSequence {
		t.Fatalf("a's version %d, want %d", va, ra.LastSequence)
	}
	ra2 := mustAppend(t, s, a, ra.LastSequence, newEvent(t, "ticket.noted", `{}`))
	if ra2.LastSequence <= rb.LastSequence {
		t.Fatalf("a's second event at %d, not after b's %d", ra2.LastSequence, rb.LastSequence)
	}
	if _, err := s.Append(context.Background(), b, ra2.LastSequence, newEvent(t, "ticket.noted", `{}`)); err == nil {
		t.Fatal("append to b at a's version succeeded")
	}
	mustAppend(t, s, b, rb.LastSequence, newEvent(t, "ticket.noted", `{}`))
}

func testExpectedZeroOnExisting(t *testing.T, s domain.EventStore) {
	agg := ref("acme", "ticket", "t-1")
	res := mustAppend(t, s, agg, 0, newEvent(t, "ticket.opened", `{}`))
	for _, n := range []int{1, 3} {
		_, err := s.Append(context.Background(), agg, 0, newEvents(t, "ticket.opened", n)...)
		requireConflict(t, "expected 0 on an existing aggregate", err, agg, 0, res.LastSequence)
	}
	events, version := mustLoad(t, s, agg, 0)
	if len(events) != 1 || version != res.LastSequence {
		t.Fatalf("after conflicts: %d events at version %d, want 1 at %d", len(events), version, res.LastSequence)
	}
}

func testWrongExpectedVersion(t *testing.T, s domain.EventStore) {
	agg := ref("acme", "ticket", "t-1")
	r1 := mustAppend(t, s, agg, 0, newEvent(t, "ticket.opened", `{}`))
	r2 := mustAppend(t, s, agg, r1.LastSequence, newEvent(t, "ticket.noted", `{}`))
	for _, tc := range []struct {
		name     string
		expected uint64
	}{
		{"stale", r1.LastSequence},
		{"ahead", r2.LastSequence + 1},
		{"far ahead", r2.LastSequence + 1000},
	} {
		_, err := s.Append(context.Background(), agg, tc.expected, newEvent(t, "ticket.noted", `{}`))
		requireConflict(t, tc.name, err, agg, tc.expected, r2.LastSequence)
	}
	if last := mustLastSequence(t, s); last != r2.LastSequence {
		t.Fatalf("last sequence %d after rejected appends, want %d", last, r2.LastSequence)
	}
}

func testDuplicateEventStoredOnce(t *testing.T, s domain.EventStore) {
	agg := ref("acme", "ticket", "t-1")
	e := newEvent(t, "ticket.opened", `{}`)
	res := mustAppend(t, s, agg, 0, e)
	for _, tc := range []struct {
		name     string
		expected uint64
	}{
		{"retry at the same expected version", 0},
		{"again at the current version", res.LastSequence},
	} {
		dup, err := s.Append(context.Background(), agg, tc.expected, e)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !dup.Duplicate || dup.FirstSequence != res.FirstSequence || dup.LastSequence != res.LastSequence {
			t.Fatalf("%s: got %+v, want a duplicate at %d", tc.name, dup, res.LastSequence)
		}
	}
	events, version := mustLoad(t, s, agg, 0)
	if len(events) != 1 || version != res.LastSequence {
		t.Fatalf("Load: %d events at version %d, want 1 at %d", len(events), version, res.LastSequence)
	}
	if last := mustLastSequence(t, s); last != res.LastSequence {
		t.Fatalf("last sequence %d, want %d", last, res.LastSequence)
	}
}

func testRetriedBatchStoredOnce(t *testing.T, s domain.EventStore) {
	agg := ref("acme", "ticket", "t-1")
	batch := newEvents(t, "ticket.noted", 3)
	res := mustAppend(t, s, agg, 0, batch...)
	dup, err := s.Append(context.Background(), agg, 0, batch...)
	if err != nil {
		t.Fatalf("retried batch: %v", err)
	}
	if !dup.Duplicate || dup.FirstSequence != res.FirstSequence || dup.LastSequence != res.LastSequence {
		t.Fatalf("retried batch: got %+v, want a duplicate of %+v", dup, res)
	}
	// Still a duplicate once the aggregate has moved on.
	later := mustAppend(t, s, agg, res.LastSequence, newEvent(t, "ticket.noted", `{}`))
	dup, err = s.Append(context.Background(), agg, 0, batch...)
	if err != nil || !dup.Duplicate || dup.FirstSequence != res.FirstSequence {
		t.Fatalf("batch retried after a later event: %+v, %v; want a duplicate of %+v", dup, err, res)
	}
	events, version := mustLoad(t, s, agg, 0)
	if len(events) != 4 || version != later.LastSequence {
		t.Fatalf("Load: %d events at version %d, want 4 at %d", len(events), version, later.LastSequence)
	}
}

func testBatchWithStoredEventRejected(t *testing.T, s domain.EventStore) {
	agg := ref("acme", "ticket", "t-1")
	stored := newEvent(t, "ticket.opened", `{}`)
	res := mustAppend(t, s, agg, 0, stored)
	_, err := s.Append(context.Background(), agg, res.LastSequence, newEvent(t, "ticket.noted", `{}`), stored)
	requireCode(t, "batch repeating a stored event", err, domain.ECONFLICT)
	events, version := mustLoad(t, s, agg, 0)
	if len(events) != 1 || version != res.LastSequence {
		t.Fatalf("Load: %d events at version %d, want 1 at %d", len(events), version, res.LastSequence)
	}
}

func testConflictingBatchStoresNothing(t *testing.T, s domain.EventStore) {
	agg := ref("acme", "ticket", "t-1")
	res := mustAppend(t, s, agg, 0, newEvent(t, "ticket.opened", `{}`))
	for _, expected := range []uint64{0, res.LastSequence + 5} {
		batch := newEvents(t, "ticket.noted", 3)
		_, err := s.Append(context.Background(), agg, expected, batch...)
		requireConflict(t, "conflicting batch", err, agg, expected, res.LastSequence)
	}
	events, version := mustLoad(t, s, agg, 0)
	if len(events) != 1 || version != res.LastSequence {
		t.Fatalf("Load: %d events at version %d, want 1 at %d", len(events), version, res.LastSequence)
	}
	if last := mustLastSequence(t, s); last != res.LastSequence {
		t.Fatalf("last sequence %d after rejected batches, want %d", last, res.LastSequence)
	}
	if all := mustRead(t, s, 1, domain.Filter{}, 100); len(all) != 1 {
		t.Fatalf("Read: %d events, want 1", len(all))
	}
}
