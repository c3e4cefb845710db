package storetest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/metachat/metachat/domain"
)

func invalidTests() []test {
	return []test{
		{"InvalidAggregateRef", testInvalidAggregateRef},
		{"InvalidEnvelopes", testInvalidEnvelopes},
		{"InvalidReads", testInvalidReads},
		{"TooManyEvents", testTooManyEvents},
	}
}

func testTooManyEvents(t *testing.T, s domain.EventStore) {
	_, err := s.Append(context.Background(), ref("acme", "ticket", "a"), 0, newEvents(t, "thing.happened", 1001)...)
	requireCode(t, "Append of 1001 events", err, domain.ETOOLARGE)
	if last := mustLastSequence(t, s); last != 0 {
		t.Fatalf("last sequence %d after a refused append, want 0", last)
	}
}

func testInvalidAggregateRef(t *testing.T, s domain.EventStore) {
	for _, agg := range []domain.AggregateRef{
		{},
		ref("", "ticket", "a"),
		ref("acme", "", "a"),
		ref("acme", "ticket", ""),
		ref("ac.me", "ticket", "a"),
		ref("acme", "tick*", "a"),
		ref("acme", "ticket", ">"),
		ref("acme", "ticket", "a b"),
		ref("acme", "ticket", "ä"),
		ref("acme", "ticket", strings.Repeat("x", 129)),
	} {
		_, err := s.Append(context.Background(), agg, 0, newEvent(t, "thing.happened", `{}`))
		requireCode(t, "Append to "+agg.String(), err, domain.EINVALID)
		_, _, err = s.Load(context.Background(), agg, 0)
		requireCode(t, "Load "+agg.String(), err, domain.EINVALID)
	}
	if last := mustLastSequence(t, s); last != 0 {
		t.Fatalf("last sequence %d after invalid appends, want 0", last)
	}
}

func testInvalidEnvelopes(t *testing.T, s domain.EventStore) {
	agg := ref("acme", "ticket", "a")
	valid := func() domain.Envelope { return newEvent(t, "thing.happened", `{}`) }
	for _, tc := range []struct {
		name   string
		events func() []domain.Envelope
	}{
		{"no events", func() []domain.Envelope { return nil }},
		{"no id", func() []domain.Envelope { e := valid(); e.ID = ""; return []domain.Envelope{e} }},
		{"no type", func() []domain.Envelope { e := valid(); e.Type = ""; return []domain.Envelope{e} }},
		{"schema version 0", func() []domain.Envelope { e := valid(); e.SchemaVersion = 0; return []domain.Envelope{e} }},
		{"negative schema version", func() []domain.Envelope { e := valid(); e.SchemaVersion = -1; return []domain.Envelope{e} }},
		{"malformed payload", func() []domain.Envelope {
			e := valid()
			e.Payload = json.RawMessage(`{"a":`)
			return []domain.Envelope{e}
		}},
		{"other tenant", func() []domain.Envelope { e := valid(); e.TenantID = "globex"; return []domain.Envelope{e} }},
		{"other aggregate id", func() []domain.Envelope { e := valid(); e.AggregateID = "b"; return []domain.Envelope{e} }},
		{"repeated id in a batch", func() []domain.Envelope { e := valid(); return []domain.Envelope{e, e} }},
		{"one bad event in a batch", func() []domain.Envelope { e := valid(); e.Type = ""; return []domain.Envelope{valid(), e, valid()} }},
	} {
		_, err := s.Append(context.Background(), agg, 0, tc.events()...)
		requireCode(t, tc.name, err, domain.EINVALID)
	}
	if last := mustLastSequence(t, s); last != 0 {
		t.Fatalf("last sequence %d after invalid appends, want 0", last)
	}
}

func testInvalidReads(t *testing.T, s domain.EventStore) {
	ctx := context.Background()
	for _, f := range []domain.Filter{
		{AggregateID: "a"},
		{AggregateType: "*"},
		{AggregateType: "ti.cket"},
		{TenantID: "ac.me"},
		{TenantID: "acme", AggregateType: "*"},
		{TenantID: "acme", AggregateID: ">"},
	} {
		_, err := s.Read(ctx, 1, f, 10)
		requireCode(t, "Read with an invalid filter", err, domain.EINVALID)
		err = s.Subscribe(ctx, 1, f, func(domain.Envelope) error { return nil })
		requireCode(t, "Subscribe with an invalid filter", err, domain.EINVALID)
	}
	for _, limit := range []int{0, -1} {
		_, err := s.Read(ctx, 1, domain.Filter{}, limit)
		requireCode(t, "Read with a limit below 1", err, domain.EINVALID)
	}
}
