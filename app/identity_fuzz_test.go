package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

func FuzzParseAPIKey(f *testing.F) {
	f.Add("mck_Ab3dE5gH_q8ZkT1vR0mXn5cWb2LpYh7sJd4FgKe9uVt3NaQ6i")
	f.Add("mck_")
	f.Add("mck_Ab3dE5gH_")
	f.Add("mck_Ab3dE5g_Hq8ZkT1vR0mXn5cWb2LpYh7sJd4FgKe9uVt3NaQ6iM")
	f.Add("mck_Ab3dE5gH_q8ZkT1vR0mXn5cWb2LpYh7sJd4FgKe9uVt3NaQ6é")
	f.Add("eyJhbGciOiJFZERTQSJ9.e30.c2ln")
	f.Fuzz(func(t *testing.T, key string) {
		prefix, ok := app.ParseAPIKey(key)
		if !ok {
			if prefix != "" {
				t.Fatalf("rejected %q but returned prefix %q", key, prefix)
			}
			return
		}
		if !strings.HasPrefix(key, prefix+"_") || !strings.HasPrefix(prefix, app.APIKeyPrefix) || len(prefix) != 12 {
			t.Fatalf("accepted %q with prefix %q", key, prefix)
		}
		// An accepted prefix is a safe token (it is a read model value and a log field).
		if err := (domain.AggregateRef{TenantID: "t", Type: "k", ID: prefix}).Validate(); err != nil {
			t.Fatalf("accepted prefix %q is not a plain token: %v", prefix, err)
		}
	})
}

func FuzzVerifyAccessToken(f *testing.F) {
	key, err := app.GenerateSigningKey()
	if err != nil {
		f.Fatal(err)
	}
	verify, issue, err := app.TokenVerifierForTest(key)
	if err != nil {
		f.Fatal(err)
	}
	good, err := issue(uuid.NewString(), uuid.NewString())
	if err != nil {
		f.Fatal(err)
	}
	if err := verify(f.Context(), good); err != nil {
		f.Fatalf("a fresh token does not verify: %v", err)
	}
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("a.b.c")
	f.Add("...")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		err := verify(t.Context(), token)
		if err != nil && domain.ErrorCode(err) != domain.EUNAUTHORIZED {
			t.Fatalf("%q: %v, want unauthorized", token, err)
		}
		if err == nil && token != good {
			// Ed25519 signatures are not malleable: only the issued token itself verifies.
			t.Fatalf("a token other than the issued one verified: %q", token)
		}
	})
}

func FuzzDecodeIdentityCursor(f *testing.F) {
	f.Add(app.EncodeIdentityCursorForTest(time.Date(2026, 11, 20, 10, 0, 0, 123456000, time.UTC), uuid.NewString()))
	f.Add("")
	f.Add("MXx4fHk")
	f.Add(strings.Repeat("A", 600))
	f.Fuzz(func(t *testing.T, cursor string) {
		at, id, err := app.DecodeIdentityCursorForTest(cursor)
		if err != nil {
			if domain.ErrorCode(err) != domain.EINVALID {
				t.Fatalf("%q: %v, want invalid", cursor, err)
			}
			return
		}
		if cursor != "" && !domain.IsUUID(id) {
			t.Fatalf("%q decoded to id %q", cursor, id)
		}
		if cursor != "" {
			if _, _, err := app.DecodeIdentityCursorForTest(app.EncodeIdentityCursorForTest(at, id)); err != nil {
				t.Fatalf("re-encoded cursor of %q does not decode: %v", cursor, err)
			}
		}
	})
}

func FuzzParsePasswordHash(f *testing.F) {
	f.Add("$argon2id$v=19$m=32768,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$mS5Qx5X0bJ0m3zv4a1m7l6w4S0jzM2c3Yp0y2Zq9c2E")
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2i$v=19$m=1,t=1,p=0$$")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, encoded string) {
		_ = app.ParsePasswordHashForTest(encoded) // must not panic, nor accept absurd costs (checked by the parser's bounds)
	})
}
