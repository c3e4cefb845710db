package domain_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

func TestTenantDecider(t *testing.T) {
	d := domain.TenantDecider()
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	const tid = "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5a01"
	created := &domain.TenantCreated{TenantID: tid, Name: "Acme", Plan: "free", CreatedAt: at}
	tests := []struct {
		name     string
		history  []domain.Event
		cmd      domain.TenantCommand
		want     []domain.Event
		wantCode string
	}{
		{"create", nil, domain.CreateTenant{TenantID: tid, Name: "  Acme ", At: at}, []domain.Event{created}, ""},
		{"create twice", []domain.Event{created}, domain.CreateTenant{TenantID: tid, Name: "Acme", At: at}, nil, domain.ECONFLICT},
		{"create empty name", nil, domain.CreateTenant{TenantID: tid, Name: "  ", At: at}, nil, domain.EINVALID},
		{"create long name", nil, domain.CreateTenant{TenantID: tid, Name: strings.Repeat("é", 101), At: at}, nil, domain.EINVALID},
		{"create bad id", nil, domain.CreateTenant{TenantID: "a.b", Name: "x", At: at}, nil, domain.EINVALID},
		{"create non-uuid id", nil, domain.CreateTenant{TenantID: "acme", Name: "x", At: at}, nil, domain.EINVALID},
		{"rename", []domain.Event{created}, domain.RenameTenant{Name: "Globex", At: at}, []domain.Event{&domain.TenantRenamed{Name: "Globex", RenamedAt: at}}, ""},
		{"rename to same name", []domain.Event{created}, domain.RenameTenant{Name: "Acme", At: at}, nil, ""},
		{"rename missing", nil, domain.RenameTenant{Name: "Globex", At: at}, nil, domain.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Decide(d.Fold(tt.history), tt.cmd)
			if code := domain.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("error code %q (%v), want %q", code, err, tt.wantCode)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events, want %d", len(got), len(tt.want))
			}
			if !reflect.DeepEqual(got, tt.want) && len(got) > 0 {
				t.Errorf("events %#v, want %#v", got, tt.want)
			}
		})
	}
	s := d.Fold([]domain.Event{created, &domain.TenantRenamed{Name: "Globex", RenamedAt: at}})
	if !s.Exists || s.Name != "Globex" || s.Plan != "free" || s.ID != tid {
		t.Errorf("folded state %+v", s)
	}
}

func TestErrorCodes(t *testing.T) {
	if domain.ErrorCode(nil) != "" {
		t.Error("nil error has a code")
	}
	if domain.ErrorCode(errors.New("boom")) != domain.EINTERNAL || domain.ErrorMessage(errors.New("secret detail")) == "secret detail" {
		t.Error("plain errors must be internal and hide their text")
	}
	wrapped := errors.Join(errors.New("ctx"), domain.Errorf(domain.ENOTFOUND, "Tenant %s not found.", "x"))
	if domain.ErrorCode(wrapped) != domain.ENOTFOUND || domain.ErrorMessage(wrapped) != "Tenant x not found." {
		t.Errorf("wrapped: %q %q", domain.ErrorCode(wrapped), domain.ErrorMessage(wrapped))
	}
	ce := &domain.ConcurrencyError{Aggregate: domain.AggregateRef{TenantID: "t", Type: "tenant", ID: "t"}, Expected: 3, Actual: 4}
	if domain.ErrorCode(ce) != domain.ECONFLICT {
		t.Errorf("ConcurrencyError code %q", domain.ErrorCode(ce))
	}
	inv := domain.Invalid("bad", domain.FieldError{Field: "name", Message: "empty"})
	if f := domain.ErrorFields(inv); len(f) != 1 || f[0].Field != "name" {
		t.Errorf("fields %+v", f)
	}
}

func TestAggregateRefValidate(t *testing.T) {
	ok := domain.AggregateRef{TenantID: "0193f9b4-2c1a", Type: "tenant", ID: "abc_1"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []domain.AggregateRef{
		{Type: "tenant", ID: "x"},
		{TenantID: "t", Type: "ten.ant", ID: "x"},
		{TenantID: "t", Type: "tenant", ID: "x*"},
		{TenantID: "t", Type: "tenant", ID: ">"},
		{TenantID: "t", Type: "tenant", ID: strings.Repeat("a", 129)},
		{TenantID: "t t", Type: "tenant", ID: "x"},
	} {
		if domain.ErrorCode(bad.Validate()) != domain.EINVALID {
			t.Errorf("%q accepted", bad.String())
		}
	}
}
