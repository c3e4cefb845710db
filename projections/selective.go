package projections

import (
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// Selective is a Projection that applies the events of some aggregate types only. Its runner's
// consumer asks the server for those aggregates' subjects alone (subjectsOf), so the other events
// cost it nothing: no delivery, no decoding, no transaction. Its checkpoint is then the last of its
// own events applied, and "applied up to sequence s" holds for every event of its aggregate types
// up to s, which is what the services wait for (each waits only for the sequence of an event of
// the projection's own aggregate types). Its lag counts its own events only (Manager.Status).
// Every projection of this package is one: each used to consume the whole stream, and receiving
// every write in every projection multiplied the cost of a write by the number of projections.
type Selective interface {
	// AggregateTypes are the aggregate types whose events Apply folds in.
	AggregateTypes() []string
}

// AggregateTypes implements Selective.
func (*TenantProjection) AggregateTypes() []string { return []string{domain.TenantAggregate} }

// AggregateTypes implements Selective.
func (*UserProjection) AggregateTypes() []string { return []string{domain.UserDirectoryAggregate} }

// AggregateTypes implements Selective.
func (*APIKeyProjection) AggregateTypes() []string { return []string{domain.APIKeyAggregate} }

// AggregateTypes implements Selective.
func (*ConversationProjection) AggregateTypes() []string {
	return []string{domain.ConversationAggregate}
}

// AggregateTypes implements Selective.
func (*WidgetProjection) AggregateTypes() []string { return []string{domain.WidgetAggregate} }

// AggregateTypes implements Selective.
func (*KnowledgeProjection) AggregateTypes() []string { return []string{domain.DocumentAggregate} }

// subjectsOf returns the subject filters of p's consumer under the stream's subject prefix: one
// per aggregate type of a Selective projection (eventstore.FilterSubject), else every event.
func subjectsOf(p Projection, prefix string) []string {
	all := []string{prefix + ".>"}
	sel, ok := p.(Selective)
	if !ok || len(sel.AggregateTypes()) == 0 {
		return all
	}
	out := make([]string, 0, len(sel.AggregateTypes()))
	for _, t := range sel.AggregateTypes() {
		subject, err := eventstore.FilterSubject(prefix, domain.Filter{AggregateType: t})
		if err != nil {
			return all // not a valid type token: the projection sees every event rather than none
		}
		out = append(out, subject)
	}
	return out
}
