package domain_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

// want is what each golden fixture must decode to through the current code (upcasting included).
// A new event type or schema version needs a fixture here and a file in testdata/events.
var want = map[string]domain.Event{
	"tenant.created.v1.json": &domain.TenantCreated{
		TenantID: "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5a01", Name: "Acme Bikes", Plan: "free",
		CreatedAt: time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC),
	},
	"tenant.created.v2.json": &domain.TenantCreated{
		TenantID: "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5a02", Name: "Globex", Plan: "pro",
		CreatedAt: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC),
	},
	"tenant.renamed.v1.json": &domain.TenantRenamed{
		Name: "Globex Corporation", RenamedAt: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC),
	},
}

// TestGoldenEventsStillDecode loads every stored event version kept in testdata/events and checks
// that the current code still decodes it to the expected value.
func TestGoldenEventsStillDecode(t *testing.T) {
	reg := domain.NewDefaultRegistry()
	files, err := filepath.Glob("testdata/events/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("%d fixture files but %d expectations: keep them in step", len(files), len(want))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var env domain.Envelope
			if err := json.Unmarshal(b, &env); err != nil {
				t.Fatalf("envelope: %v", err)
			}
			got, err := reg.Decode(env)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			exp, ok := want[filepath.Base(f)]
			if !ok {
				t.Fatalf("no expectation for %s", f)
			}
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("decoded %#v, want %#v", got, exp)
			}
		})
	}
}

// TestEveryVersionHasAFixture fails when an event type or schema version is added without a golden
// fixture, so old formats can never silently stop loading.
func TestEveryVersionHasAFixture(t *testing.T) {
	for typ, current := range domain.NewDefaultRegistry().Types() {
		for v := 1; v <= current; v++ {
			name := fmt.Sprintf("testdata/events/%s.v%d.json", typ, v)
			if _, err := os.Stat(name); err != nil {
				t.Errorf("missing golden fixture %s", name)
			}
		}
	}
}
