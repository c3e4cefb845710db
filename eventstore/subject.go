package eventstore

import (
	"fmt"
	"strings"

	"github.com/metachat/metachat/domain"
)

// DefaultSubjectPrefix is the first token (or tokens) of every event subject.
const DefaultSubjectPrefix = "ev"

// Subject returns the subject of an aggregate's events: "<prefix>.<tenant>.<type>.<id>". It does
// not validate agg; callers check it with AggregateRef.Validate first.
func Subject(prefix string, agg domain.AggregateRef) string {
	return prefix + "." + agg.TenantID + "." + agg.Type + "." + agg.ID
}

// FilterSubject returns the subject filter selecting the events that match f: "<prefix>.>" for
// everything, "<prefix>.<tenant>.>" for a tenant, "<prefix>.<tenant>.<type>.*" for an aggregate
// type, "<prefix>.<tenant>.*.<id>" for an id of any type and the aggregate's own subject when every
// field is set. An invalid filter is an EINVALID error.
func FilterSubject(prefix string, f domain.Filter) (string, error) {
	if err := validateFilter(f); err != nil {
		return "", err
	}
	switch {
	case f.TenantID == "" && f.AggregateType != "":
		return prefix + ".*." + f.AggregateType + ".*", nil
	case f.TenantID == "":
		return prefix + ".>", nil
	case f.AggregateType == "" && f.AggregateID == "":
		return prefix + "." + f.TenantID + ".>", nil
	}
	typ, id := f.AggregateType, f.AggregateID
	if typ == "" {
		typ = "*"
	}
	if id == "" {
		id = "*"
	}
	return prefix + "." + f.TenantID + "." + typ + "." + id, nil
}

// validateFilter checks that every set field of f is a valid token and that an aggregate id comes
// with a tenant.
func validateFilter(f domain.Filter) error {
	if f.TenantID == "" && f.AggregateID != "" {
		return domain.Invalid("An aggregate filter needs a tenant.",
			domain.FieldError{Field: "tenant_id", Message: "must not be empty when filtering by aggregate id"})
	}
	if f == (domain.Filter{}) {
		return nil
	}
	// Reuse the reference rules: fill the unset parts with a valid placeholder.
	ref := domain.AggregateRef{TenantID: f.TenantID, Type: f.AggregateType, ID: f.AggregateID}
	if ref.TenantID == "" {
		ref.TenantID = "x"
	}
	if ref.Type == "" {
		ref.Type = "x"
	}
	if ref.ID == "" {
		ref.ID = "x"
	}
	if err := ref.Validate(); err != nil {
		return domain.Invalid("Invalid event filter.", domain.ErrorFields(err)...)
	}
	return nil
}

// matchFilter reports whether an aggregate is selected by a (valid) filter.
func matchFilter(f domain.Filter, agg domain.AggregateRef) bool {
	return (f.TenantID == "" || f.TenantID == agg.TenantID) &&
		(f.AggregateType == "" || f.AggregateType == agg.Type) &&
		(f.AggregateID == "" || f.AggregateID == agg.ID)
}

// aggregateOfSubject returns the aggregate named by the last three tokens of an event subject.
func aggregateOfSubject(subject string) (domain.AggregateRef, error) {
	tokens := strings.Split(subject, ".")
	if len(tokens) < 4 {
		return domain.AggregateRef{}, fmt.Errorf("subject %q is not <prefix>.<tenant>.<type>.<id>", subject)
	}
	n := len(tokens)
	return domain.AggregateRef{TenantID: tokens[n-3], Type: tokens[n-2], ID: tokens[n-1]}, nil
}

// validPrefix reports a problem with a subject prefix: one or more non-empty tokens without
// wildcards or whitespace.
func validPrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("subject prefix must not be empty")
	}
	for tok := range strings.SplitSeq(prefix, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return fmt.Errorf("subject prefix %q: tokens must be non-empty, without wildcards or whitespace", prefix)
		}
	}
	return nil
}
