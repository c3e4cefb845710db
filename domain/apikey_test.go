package domain_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

func TestAPIKeyDecider(t *testing.T) {
	d := domain.APIKeyDecider()
	at := time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC)
	const (
		kid  = "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5b10"
		hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	)
	created := &domain.APIKeyCreated{KeyID: kid, Name: "CI", Prefix: "mck_Ab3dE5gH", KeyHash: hash, CreatedAt: at}
	revoked := &domain.APIKeyRevoked{RevokedAt: at.Add(time.Hour)}
	used := &domain.APIKeyUsed{UsedAt: at.Add(time.Minute)}
	create := func(name, prefix, h string) domain.CreateAPIKey {
		return domain.CreateAPIKey{KeyID: kid, Name: name, Prefix: prefix, KeyHash: h, At: at}
	}
	use := func(after time.Duration) domain.RecordAPIKeyUse {
		return domain.RecordAPIKeyUse{At: at.Add(after), MinInterval: time.Minute}
	}
	tests := []struct {
		name     string
		history  []domain.Event
		cmd      domain.APIKeyCommand
		want     []domain.Event
		wantCode string
	}{
		{"create", nil, create(" CI ", "mck_Ab3dE5gH", hash), []domain.Event{created}, ""},
		{"create twice", []domain.Event{created}, create("CI", "mck_Ab3dE5gH", hash), nil, domain.ECONFLICT},
		{"create without name", nil, create(" ", "mck_Ab3dE5gH", hash), nil, domain.EINVALID},
		{"create long name", nil, create(strings.Repeat("n", 101), "mck_Ab3dE5gH", hash), nil, domain.EINVALID},
		{"create bad prefix", nil, create("CI", "mck.x", hash), nil, domain.EINVALID},
		{"create bad hash", nil, create("CI", "mck_Ab3dE5gH", "secret"), nil, domain.EINVALID},
		{"create bad id", nil, domain.CreateAPIKey{KeyID: "k", Name: "CI", Prefix: "mck_A", KeyHash: hash, At: at}, nil, domain.EINVALID},
		{"revoke", []domain.Event{created}, domain.RevokeAPIKey{At: at.Add(time.Hour)}, []domain.Event{revoked}, ""},
		{"revoke twice", []domain.Event{created, revoked}, domain.RevokeAPIKey{At: at}, nil, ""},
		{"revoke missing", nil, domain.RevokeAPIKey{At: at}, nil, domain.ENOTFOUND},
		{"first use", []domain.Event{created}, use(time.Minute), []domain.Event{used}, ""},
		{"use within the interval", []domain.Event{created, used}, use(time.Minute + 59*time.Second), nil, ""},
		{"use after the interval", []domain.Event{created, used}, use(2 * time.Minute), []domain.Event{&domain.APIKeyUsed{UsedAt: at.Add(2 * time.Minute)}}, ""},
		{"use of a revoked key", []domain.Event{created, revoked}, use(time.Hour), nil, ""},
		{"use of a missing key", nil, use(0), nil, domain.ENOTFOUND},
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
	s := d.Fold([]domain.Event{created, used, revoked})
	if !s.Exists || !s.Revoked || s.Name != "CI" || !s.LastUsedAt.Equal(used.UsedAt) || s.KeyHash != hash {
		t.Errorf("folded state %+v", s)
	}
}
