package httpapi

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"600/1m": {Requests: 600, Per: time.Minute}, " 20 / 1h ": {Requests: 20, Per: time.Hour},
		"5/s": {Requests: 5, Per: time.Second}, "10/m": {Requests: 10, Per: time.Minute}, "OFF": {Unlimited: true},
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := ParseRate(got.String()); err != nil || back != got {
			t.Errorf("%v does not round-trip: %v %v", got, back, err)
		}
	}
	for _, bad := range []string{"", "600", "0/1m", "-1/1m", "x/1m", "5/0s", "5/-1m", "5/fortnight"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

// TestMemoryLimiterBucket: a budget of 4 per 4s is spent at once, refills one per second, and
// each decision carries what the headers need.
func TestMemoryLimiterBucket(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewMemoryLimiter(Rate{Requests: 4, Per: 4 * time.Second}, 10, func() time.Time { return now })
	for i := 3; i >= 0; i-- {
		d, _ := l.Take(t.Context(), "a")
		if !d.Allowed || d.Limit != 4 || d.Remaining != i {
			t.Fatalf("request %d: %+v", 4-i, d)
		}
	}
	d, _ := l.Take(t.Context(), "a")
	if d.Allowed || d.Remaining != 0 || d.RetryAfter != time.Second || d.Reset != 4*time.Second {
		t.Fatalf("over budget: %+v", d)
	}
	if d, _ := l.Take(t.Context(), "b"); !d.Allowed || d.Remaining != 3 {
		t.Fatalf("another key shares the budget: %+v", d)
	}
	now = now.Add(1500 * time.Millisecond)
	if d, _ := l.Take(t.Context(), "a"); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after 1.5s: %+v", d)
	}
	if d, _ := l.Take(t.Context(), "a"); d.Allowed || d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("after 1.5s, again: %+v", d)
	}
}

// TestMemoryLimiterIsBounded: a flood of new keys never grows the limiter past its bound; the
// least recently used keys go first.
func TestMemoryLimiterIsBounded(t *testing.T) {
	l := NewMemoryLimiter(Rate{Requests: 1, Per: time.Hour}, 100, nil)
	_, _ = l.Take(t.Context(), "steady")
	for i := range 10_000 {
		_, _ = l.Take(t.Context(), fmt.Sprint("flood-", i))
		if i%50 == 0 {
			_, _ = l.Take(t.Context(), "steady") // kept recent
		}
	}
	if n := l.Len(); n != 100 {
		t.Fatalf("%d keys remembered, want 100", n)
	}
	if d, _ := l.Take(t.Context(), "steady"); d.Allowed {
		t.Error("a recently used key was forgotten (its spent budget came back)")
	}
	if d, _ := l.Take(t.Context(), "flood-0"); !d.Allowed {
		t.Error("the oldest key was not forgotten")
	}
}

// TestOperationBudgetsNameRealOperations: every operation given a budget of its own exists, so a
// renamed operation cannot silently lose its budget.
func TestOperationBudgetsNameRealOperations(t *testing.T) {
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, op := range c.ops {
		ids[op.ID] = true
	}
	for id, b := range operationBudgets {
		if !ids[id] {
			t.Errorf("budget %s names operation %q, which is not in the OpenAPI document", b, id)
		}
	}
}

// TestEveryOperationDeclaresTooManyRequests: every operation spends a budget (its own or the API
// budget), so the contract must tell clients that each can answer 429.
func TestEveryOperationDeclaresTooManyRequests(t *testing.T) {
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(c.json, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, item := range doc.Paths {
		for method, raw := range item {
			var op struct {
				OperationID string         `json:"operationId"`
				Responses   map[string]any `json:"responses"`
			}
			if json.Unmarshal(raw, &op) != nil || op.OperationID == "" {
				continue // not an operation (path-level parameters, for example)
			}
			n++
			if _, ok := op.Responses["429"]; !ok {
				t.Errorf("%s %s (%s) does not declare 429", method, path, op.OperationID)
			}
		}
	}
	if n != len(c.ops) {
		t.Errorf("checked %d operations, the contract has %d", n, len(c.ops))
	}
}
