package eventstore_test

import (
	"testing"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

func TestSubject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prefix string
		agg    domain.AggregateRef
		want   string
	}{
		{"ev", domain.AggregateRef{TenantID: "acme", Type: "tenant", ID: "acme"}, "ev.acme.tenant.acme"},
		{"metachat.ev", domain.AggregateRef{TenantID: "t_1", Type: "ticket", ID: "0190-ab"}, "metachat.ev.t_1.ticket.0190-ab"},
	} {
		if got := eventstore.Subject(tc.prefix, tc.agg); got != tc.want {
			t.Errorf("Subject(%q, %s) = %q, want %q", tc.prefix, tc.agg, got, tc.want)
		}
	}
}

func TestFilterSubject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		filter domain.Filter
		want   string // "" means EINVALID
	}{
		{"everything", domain.Filter{}, "ev.>"},
		{"tenant", domain.Filter{TenantID: "acme"}, "ev.acme.>"},
		{"aggregate type", domain.Filter{TenantID: "acme", AggregateType: "ticket"}, "ev.acme.ticket.*"},
		{"aggregate", domain.Filter{TenantID: "acme", AggregateType: "ticket", AggregateID: "t-1"}, "ev.acme.ticket.t-1"},
		{"id of any type", domain.Filter{TenantID: "acme", AggregateID: "t-1"}, "ev.acme.*.t-1"},
		{"type in every tenant", domain.Filter{AggregateType: "ticket"}, "ev.*.ticket.*"},
		{"wildcard type without tenant", domain.Filter{AggregateType: "*"}, ""},
		{"id without tenant", domain.Filter{AggregateID: "t-1"}, ""},
		{"wildcard tenant", domain.Filter{TenantID: "*"}, ""},
		{"dotted type", domain.Filter{TenantID: "acme", AggregateType: "a.b"}, ""},
		{"full wildcard id", domain.Filter{TenantID: "acme", AggregateID: ">"}, ""},
	} {
		got, err := eventstore.FilterSubject("ev", tc.filter)
		if tc.want == "" {
			if domain.ErrorCode(err) != domain.EINVALID {
				t.Errorf("%s: FilterSubject = %q, %v; want EINVALID", tc.name, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: FilterSubject = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
