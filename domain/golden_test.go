package domain_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metachat/metachat/domain"
)

// TestGoldenEventsStillDecode loads every stored event version kept in testdata/events
// (<type>.v<N>.json, an envelope as stored) and checks that the current code decodes it, through
// its upcasters, to the payload in <type>.v<N>.want.json (the current schema's shape).
func TestGoldenEventsStillDecode(t *testing.T) {
	reg := domain.NewDefaultRegistry()
	files, err := filepath.Glob("testdata/events/*.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".want.json") {
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			var env domain.Envelope
			if err := json.Unmarshal(mustRead(t, f), &env); err != nil {
				t.Fatalf("envelope: %v", err)
			}
			if base := fmt.Sprintf("%s.v%d.json", env.Type, env.SchemaVersion); base != filepath.Base(f) {
				t.Fatalf("fixture %s holds %s", f, base)
			}
			ev, err := reg.Decode(env)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			_, _, got, err := reg.Encode(ev)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			want := mustRead(t, strings.TrimSuffix(f, ".json")+".want.json")
			if !jsonEqual(t, got, want) {
				t.Errorf("decoded to %s\nwant %s", got, want)
			}
		})
	}
	if n == 0 {
		t.Fatal("no golden fixtures found")
	}
}

// TestEveryVersionHasAFixture fails when an event type or schema version is added without a golden
// fixture, so old formats can never silently stop loading.
func TestEveryVersionHasAFixture(t *testing.T) {
	for typ, current := range domain.NewDefaultRegistry().Types() {
		for v := 1; v <= current; v++ {
			for _, name := range []string{
				fmt.Sprintf("testdata/events/%s.v%d.json", typ, v),
				fmt.Sprintf("testdata/events/%s.v%d.want.json", typ, v),
			} {
				if _, err := os.Stat(name); err != nil {
					t.Errorf("missing golden fixture %s", name)
				}
			}
		}
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("json %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("json %s: %v", b, err)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}
