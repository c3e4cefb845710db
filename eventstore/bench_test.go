package eventstore_test

import (
	"fmt"
	"testing"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/internal/testkit"
)

// BenchmarkJetStreamLoad loads aggregates of 10 and 200 events out of a stream where they are
// interleaved with 20 other aggregates' events.
func BenchmarkJetStreamLoad(b *testing.B) {
	s := openStore(b, testkit.StartNATS(b, "").Connect(b))
	versions := map[domain.AggregateRef]uint64{}
	appendTo := func(agg domain.AggregateRef) {
		res, err := s.Append(b.Context(), agg, versions[agg], event("thing.happened"))
		if err != nil {
			b.Fatal(err)
		}
		versions[agg] = res.LastSequence
	}
	small := domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: "small"}
	big := domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: "big"}
	for i := range 200 {
		appendTo(big)
		if i < 10 {
			appendTo(small)
		}
		for j := range 20 {
			appendTo(domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: fmt.Sprintf("other-%d", j)})
		}
	}
	for _, agg := range []domain.AggregateRef{small, big} {
		b.Run(agg.ID, func(b *testing.B) {
			for b.Loop() {
				if _, v, err := s.Load(b.Context(), agg, 0); err != nil || v != versions[agg] {
					b.Fatalf("Load: version %d, %v", v, err)
				}
			}
		})
	}
}

// BenchmarkJetStreamAppend appends one event, then atomic batches of 3, to one aggregate.
func BenchmarkJetStreamAppend(b *testing.B) {
	s := openStore(b, testkit.StartNATS(b, "").Connect(b))
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			agg := domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: fmt.Sprintf("n%d", n)}
			var version uint64
			for b.Loop() {
				events := make([]domain.Envelope, n)
				for i := range events {
					events[i] = event("thing.happened")
				}
				res, err := s.Append(b.Context(), agg, version, events...)
				if err != nil {
					b.Fatal(err)
				}
				version = res.LastSequence
			}
		})
	}
}
