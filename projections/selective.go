package projections

import (
	"strings"

	"github.com/metachat/metachat/domain"
)

// Selective is a Projection that applies the events of some aggregate types only. The runner
// passes over every other event without decoding it, yet moves the checkpoint over it in the same
// transaction, so a checkpoint still means "every event up to here" and waiting for any sequence
// works as before. Every projection of this package is one: each consumes the whole stream, and
// decoding the other aggregates' events multiplied the cost of every write by the number of
// projections.
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
