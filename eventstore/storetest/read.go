package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/metachat/metachat/domain"
)

func readTests() []test {
	return []test{
		{"LoadUnknownAggregate", testLoadUnknown},
		{"LoadAfter", testLoadAfter},
		{"ReadFromAnySequence", testReadFromAnySequence},
		{"ReadLimit", testReadLimit},
		{"ReadTenantFilter", testReadTenantFilter},
		{"ReadAggregateFilter", testReadAggregateFilter},
		{"LastSequence", testLastSequence},
		{"Version", testVersion},
	}
}

func testVersion(t *testing.T, s domain.EventStore) {
	ctx := context.Background()
	a, b := ref("acme", "ticket", "a"), ref("acme", "ticket", "b")
	if v, err := s.Version(ctx, a); err != nil || v != 0 {
		t.Fatalf("version of an unknown aggregate: %d, %v; want 0", v, err)
	}
	all := appendEach(t, s, 3, a, b)
	for _, agg := range []domain.AggregateRef{a, b} {
		want := only(all, func(r domain.AggregateRef) bool { return r == agg })
		v, err := s.Version(ctx, agg)
		if err != nil || v != want[len(want)-1].Sequence {
			t.Fatalf("version of %s: %d, %v; want %d", agg, v, err, want[len(want)-1].Sequence)
		}
		if _, loaded, err := s.Load(ctx, agg, 0); err != nil || loaded != v {
			t.Fatalf("Load's version %d, Version %d (%v)", loaded, v, err)
		}
	}
	if _, err := s.Version(ctx, ref("ac.me", "ticket", "a")); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("invalid reference: %v, want EINVALID", err)
	}
}

// appendEach appends n single events to each aggregate in turn (round robin) and returns every
// event in stream order.
func appendEach(t *testing.T, s domain.EventStore, n int, aggs ...domain.AggregateRef) []domain.Envelope {
	t.Helper()
	versions := make(map[domain.AggregateRef]uint64, len(aggs))
	var all []domain.Envelope
	for i := range n {
		for _, agg := range aggs {
			e := newEvent(t, "thing.happened", fmt.Sprintf(`{"i":%d}`, i))
			res := mustAppend(t, s, agg, versions[agg], e)
			versions[agg] = res.LastSequence
			e.Sequence = res.LastSequence
			e.TenantID, e.AggregateType, e.AggregateID = agg.TenantID, agg.Type, agg.ID
			all = append(all, e)
		}
	}
	return all
}

// only returns the events of all that match keep, in order.
func only(all []domain.Envelope, keep func(domain.AggregateRef) bool) []domain.Envelope {
	var out []domain.Envelope
	for _, e := range all {
		if keep(e.Aggregate()) {
			out = append(out, e)
		}
	}
	return out
}

func testLoadUnknown(t *testing.T, s domain.EventStore) {
	appendEach(t, s, 1, ref("acme", "ticket", "t-1"))
	for _, after := range []uint64{0, 1, 100} {
		events, version := mustLoad(t, s, ref("acme", "ticket", "t-2"), after)
		if len(events) != 0 || version != 0 {
			t.Fatalf("Load(unknown, after %d): %d events at version %d, want none at 0", after, len(events), version)
		}
	}
}

func testLoadAfter(t *testing.T, s domain.EventStore) {
	a, b := ref("acme", "ticket", "a"), ref("acme", "ticket", "b")
	all := appendEach(t, s, 5, a, b)
	mine := only(all, func(r domain.AggregateRef) bool { return r == a })
	version := mine[len(mine)-1].Sequence
	for _, tc := range []struct {
		name  string
		after uint64
		want  []domain.Envelope
	}{
		{"from the start", 0, mine},
		{"after the second event", mine[1].Sequence, mine[2:]},
		{"between two events", mine[1].Sequence + 1, mine[2:]},
		{"after the last event", version, nil},
		{"after the end of the stream", version + 100, nil},
	} {
		events, v := mustLoad(t, s, a, tc.after)
		requireIDs(t, tc.name, events, tc.want)
		if v != version {
			t.Fatalf("%s: version %d, want %d", tc.name, v, version)
		}
		for i, e := range events {
			requireSameEnvelope(t, e, tc.want[i], a, tc.want[i].Sequence)
		}
	}
}

func testReadFromAnySequence(t *testing.T, s domain.EventStore) {
	all := appendEach(t, s, 4, ref("acme", "ticket", "a"), ref("globex", "ticket", "b"))
	last := all[len(all)-1].Sequence
	for from := uint64(0); from <= last+2; from++ {
		got := mustRead(t, s, from, domain.Filter{}, 100)
		var want []domain.Envelope
		for _, e := range all {
			if e.Sequence >= from {
				want = append(want, e)
			}
		}
		requireIDs(t, fmt.Sprintf("Read from %d", from), got, want)
		for i, e := range got {
			requireSameEnvelope(t, e, want[i], want[i].Aggregate(), want[i].Sequence)
		}
	}
}

func testReadLimit(t *testing.T, s domain.EventStore) {
	all := appendEach(t, s, 10, ref("acme", "ticket", "a"))
	requireIDs(t, "first page", mustRead(t, s, 1, domain.Filter{}, 3), all[:3])
	requireIDs(t, "second page", mustRead(t, s, all[2].Sequence+1, domain.Filter{}, 3), all[3:6])
	requireIDs(t, "last page", mustRead(t, s, all[6].Sequence, domain.Filter{}, 100), all[6:])
	requireIDs(t, "limit 1", mustRead(t, s, 1, domain.Filter{}, 1), all[:1])
	// Paging with a filter through interleaved events.
	b := ref("acme", "ticket", "b")
	more := appendEach(t, s, 4, ref("acme", "ticket", "c"), b)
	mineB := only(more, func(r domain.AggregateRef) bool { return r == b })
	f := domain.Filter{TenantID: "acme", AggregateType: "ticket", AggregateID: "b"}
	page := mustRead(t, s, 1, f, 2)
	requireIDs(t, "filtered first page", page, mineB[:2])
	requireIDs(t, "filtered second page", mustRead(t, s, page[1].Sequence+1, f, 2), mineB[2:])
}

func testReadTenantFilter(t *testing.T, s domain.EventStore) {
	aggs := []domain.AggregateRef{
		ref("acme", "ticket", "a"),
		ref("acme-2", "ticket", "a"),
		ref("acme", "user", "u"),
		ref("globex", "ticket", "a"),
		ref("acm", "ticket", "a"),
	}
	all := appendEach(t, s, 3, aggs...)
	for _, tenant := range []string{"acme", "acme-2", "globex", "acm", "initech"} {
		got := mustRead(t, s, 1, domain.Filter{TenantID: tenant}, 100)
		want := only(all, func(r domain.AggregateRef) bool { return r.TenantID == tenant })
		requireIDs(t, "tenant "+tenant, got, want)
		requireIncreasing(t, "tenant "+tenant, got)
	}
}

func testReadAggregateFilter(t *testing.T, s domain.EventStore) {
	aggs := []domain.AggregateRef{
		ref("acme", "ticket", "a"),
		ref("acme", "ticket", "b"),
		ref("acme", "user", "a"),
		ref("globex", "ticket", "a"),
	}
	all := appendEach(t, s, 2, aggs...)
	for _, f := range []domain.Filter{
		{TenantID: "acme", AggregateType: "ticket"},
		{TenantID: "acme", AggregateType: "user"},
		{TenantID: "acme", AggregateType: "ticket", AggregateID: "a"},
		{TenantID: "acme", AggregateID: "a"},
		{TenantID: "globex", AggregateType: "user"},
		{AggregateType: "ticket"},
	} {
		got := mustRead(t, s, 1, f, 100)
		want := only(all, func(r domain.AggregateRef) bool {
			return (f.TenantID == "" || r.TenantID == f.TenantID) && (f.AggregateType == "" || r.Type == f.AggregateType) &&
				(f.AggregateID == "" || r.ID == f.AggregateID)
		})
		requireIDs(t, fmt.Sprintf("filter %+v", f), got, want)
	}
}

func testLastSequence(t *testing.T, s domain.EventStore) {
	if last := mustLastSequence(t, s); last != 0 {
		t.Fatalf("empty store: last sequence %d, want 0", last)
	}
	all := appendEach(t, s, 3, ref("acme", "ticket", "a"), ref("globex", "ticket", "a"))
	if last := mustLastSequence(t, s); last != all[len(all)-1].Sequence {
		t.Fatalf("last sequence %d, want %d", last, all[len(all)-1].Sequence)
	}
	res := mustAppend(t, s, ref("acme", "ticket", "b"), 0, newEvents(t, "thing.happened", 3)...)
	if last := mustLastSequence(t, s); last != res.LastSequence {
		t.Fatalf("after a batch: last sequence %d, want %d", last, res.LastSequence)
	}
}
