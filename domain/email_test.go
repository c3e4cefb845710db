package domain_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

func TestCanonicalEmail(t *testing.T) {
	good := map[string]string{
		"ada@example.com":             "ada@example.com",
		"  Ada.Lovelace@Example.COM ": "ada.lovelace@example.com",
		"a+tag@sub.example.org":       "a+tag@sub.example.org",
	}
	for in, want := range good {
		got, err := domain.CanonicalEmail(in)
		if err != nil || got != want {
			t.Errorf("CanonicalEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{
		"", "   ", "ada", "ada@", "@example.com", "a@b@example.com", "ada@example", "ada@.example.com",
		"ada@example.com.", "ada@example..com", "a da@example.com", "ada@exa\tmple.com", "ada\x00@example.com",
		strings.Repeat("a", 65) + "@example.com", "ada@" + strings.Repeat("e", 250) + ".com", "\xff@example.com",
	} {
		if _, err := domain.CanonicalEmail(bad); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("CanonicalEmail(%q) accepted (%v)", bad, err)
		}
	}
}

func TestEmailClaimRef(t *testing.T) {
	a := domain.EmailClaimRef("ada@example.com")
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if a.TenantID != domain.SystemTenantID || !domain.IsUUID(a.TenantID) || a.Type != domain.EmailClaimAggregate {
		t.Errorf("ref %+v", a)
	}
	if strings.Contains(a.ID, "ada") || len(a.ID) != 64 {
		t.Errorf("claim id %q must be a hash of the address", a.ID)
	}
	if b := domain.EmailClaimRef("bob@example.com"); b.ID == a.ID {
		t.Error("two addresses share a claim")
	}
}

func TestEmailClaimDecider(t *testing.T) {
	d := domain.EmailClaimDecider()
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	const (
		tid  = "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5a02"
		uid  = "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5aff"
		uid2 = "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5afe"
	)
	claimed := &domain.EmailClaimed{Email: "ada@example.com", TenantID: tid, UserID: uid, Purpose: domain.ClaimForSignup, ClaimedAt: at}
	claim := func(email, tenant, user, purpose string) domain.ClaimEmail {
		return domain.ClaimEmail{Email: email, TenantID: tenant, UserID: user, Purpose: purpose, At: at}
	}
	tests := []struct {
		name     string
		history  []domain.Event
		cmd      domain.EmailClaimCommand
		want     []domain.Event
		wantCode string
	}{
		{"claim", nil, claim(" Ada@Example.com", tid, uid, domain.ClaimForSignup), []domain.Event{claimed}, ""},
		{"claim again by the same user", []domain.Event{claimed}, claim("ada@example.com", tid, uid, domain.ClaimForSignup), nil, ""},
		{"claim by another user", []domain.Event{claimed}, claim("ada@example.com", tid, uid2, domain.ClaimForInvite), nil, domain.ECONFLICT},
		{"claim by another tenant", []domain.Event{claimed}, claim("ada@example.com", uid2, uid, domain.ClaimForSignup), nil, domain.ECONFLICT},
		{"bad email", nil, claim("ada", tid, uid, domain.ClaimForSignup), nil, domain.EINVALID},
		{"bad tenant", nil, claim("ada@example.com", "acme", uid, domain.ClaimForSignup), nil, domain.EINVALID},
		{"bad user", nil, claim("ada@example.com", tid, "", domain.ClaimForSignup), nil, domain.EINVALID},
		{"bad purpose", nil, claim("ada@example.com", tid, uid, "steal"), nil, domain.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Decide(d.Fold(tt.history), tt.cmd)
			if code := domain.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("error code %q (%v), want %q", code, err, tt.wantCode)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("events %#v, want %#v", got, tt.want)
			}
		})
	}
	s := d.Fold([]domain.Event{claimed})
	if !s.Claimed || s.TenantID != tid || s.UserID != uid || s.Purpose != domain.ClaimForSignup {
		t.Errorf("folded state %+v", s)
	}
}
