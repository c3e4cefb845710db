package projections

import (
	"strings"

	"github.com/metachat/metachat/domain"
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

// wants reports whether the runner hands d to its projection: always unless the projection is
// Selective and d's subject names another aggregate type. A subject that names none is handed
// over, so that the projection finds it malformed.
func (r *Runner) wants(d delivered) bool {
	sel, ok := r.cfg.Projection.(Selective)
	if !ok {
		return true
	}
	typ, ok := subjectAggregateType(d.msg.Subject())
	if !ok {
		return true
	}
	for _, t := range sel.AggregateTypes() {
		if t == typ {
			return true
		}
	}
	return false
}

// subjectAggregateType returns the aggregate type of an event subject <prefix>.<tenant>.<type>.<id>
// (the next to last token), without allocating.
func subjectAggregateType(subject string) (string, bool) {
	last := strings.LastIndexByte(subject, '.')
	if last <= 0 {
		return "", false
	}
	prev := strings.LastIndexByte(subject[:last], '.')
	if prev < 0 || strings.Count(subject[:prev], ".") < 1 {
		return "", false
	}
	return subject[prev+1 : last], true
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
// per aggregate type of a Selective projection, else every event.
func subjectsOf(p Projection, prefix string) []string {
	sel, ok := p.(Selective)
	if !ok || len(sel.AggregateTypes()) == 0 {
		return []string{prefix + ".>"}
	}
	out := make([]string, 0, len(sel.AggregateTypes()))
	for _, t := range sel.AggregateTypes() {
		out = append(out, prefix+".*."+t+".*")
	}
	return out
}
