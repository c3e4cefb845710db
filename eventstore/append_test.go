package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
)

// event returns a valid single event of type typ.
func event(typ string) domain.Envelope {
	return domain.Envelope{ID: uuid.NewString(), Type: typ, SchemaVersion: 1, Payload: json.RawMessage(`{}`)}
}

func TestStoredMessageFormat(t *testing.T) {
	t.Parallel()
	nc := testkit.StartNATS(t, "").Connect(t)
	fixed := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := uniqueConfig()
	cfg.Now = func() time.Time { return fixed }
	s, err := eventstore.Open(t.Context(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	agg := domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: "t-1"}
	batch := []domain.Envelope{event("ticket.opened"), event("ticket.noted")}
	res, err := s.Append(t.Context(), agg, 0, batch...)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range batch {
		msg, err := s.Stream().GetMsg(t.Context(), res.FirstSequence+uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if want := cfg.SubjectPrefix + ".acme.ticket.t-1"; msg.Subject != want || eventstore.Subject(cfg.SubjectPrefix, agg) != want {
			t.Fatalf("subject %q, want %q", msg.Subject, want)
		}
		if got := msg.Header.Get("Nats-Msg-Id"); got != e.ID {
			t.Fatalf("Nats-Msg-Id %q, want the event id %q", got, e.ID)
		}
		if got := msg.Header.Get(eventstore.HeaderEventType); got != e.Type {
			t.Fatalf("%s %q, want %q", eventstore.HeaderEventType, got, e.Type)
		}
		var body map[string]any
		if err := json.Unmarshal(msg.Data, &body); err != nil {
			t.Fatal(err)
		}
		if body["id"] != e.ID || body["tenant_id"] != "acme" || body["aggregate_id"] != "t-1" || body["occurred_at"] != "2025-01-02T03:04:05Z" {
			t.Fatalf("body %s", msg.Data)
		}
		if _, ok := body["Sequence"]; ok {
			t.Fatalf("body %s stores the sequence", msg.Data)
		}
		env, err := eventstore.DecodeMsg(msg.Subject, msg.Data, msg.Sequence)
		if err != nil || env.ID != e.ID || env.Sequence != msg.Sequence {
			t.Fatalf("DecodeMsg: %+v, %v", env, err)
		}
	}
}

func TestDecodeMsg(t *testing.T) {
	t.Parallel()
	valid := `{"id":"e1","type":"ticket.opened","schema_version":1,"tenant_id":"acme","aggregate_type":"ticket","aggregate_id":"t-1","occurred_at":"2025-01-02T03:04:05Z","actor":{"type":"system"},"payload":{}}`
	for _, tc := range []struct {
		name, subject, body string
		ok                  bool
	}{
		{"valid", "ev.acme.ticket.t-1", valid, true},
		{"valid with a dotted prefix", "a.b.ev.acme.ticket.t-1", valid, true},
		{"no subject check", "", valid, true},
		{"not JSON", "ev.acme.ticket.t-1", `{"id":`, false},
		{"not an object", "ev.acme.ticket.t-1", `[1]`, false},
		{"no id", "ev.acme.ticket.t-1", strings.Replace(valid, `"id":"e1"`, `"id":""`, 1), false},
		{"no type", "ev.acme.ticket.t-1", strings.Replace(valid, `"type":"ticket.opened"`, `"type":""`, 1), false},
		{"schema version 0", "ev.acme.ticket.t-1", strings.Replace(valid, `"schema_version":1`, `"schema_version":0`, 1), false},
		{"bad tenant", "", strings.Replace(valid, `"tenant_id":"acme"`, `"tenant_id":"ac.me"`, 1), false},
		{"other subject", "ev.acme.ticket.t-2", valid, false},
		{"short subject", "acme.ticket", valid, false},
	} {
		env, err := eventstore.DecodeMsg(tc.subject, []byte(tc.body), 42)
		if tc.ok {
			if err != nil || env.Sequence != 42 || env.ID != "e1" {
				t.Errorf("%s: DecodeMsg = %+v, %v", tc.name, env, err)
			}
			continue
		}
		if domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%s: DecodeMsg error %v, want EINVALID", tc.name, err)
		}
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	n := testkit.StartNATS(t, "")
	nc := n.Connect(t, nats.NoReconnect())
	s := openStore(t, nc)
	agg := domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: "a"}
	if _, err := s.Append(t.Context(), agg, 0, event("ticket.opened")); err != nil {
		t.Fatal(err)
	}
	n.Shutdown()
	deadline := time.Now().Add(5 * time.Second)
	for nc.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]error{}
	_, checks["Append"] = s.Append(ctx, agg, 1, event("ticket.noted"))
	_, checks["Append batch"] = s.Append(ctx, agg, 1, event("ticket.noted"), event("ticket.noted"))
	_, _, checks["Load"] = s.Load(ctx, agg, 0)
	_, checks["Read"] = s.Read(ctx, 0, domain.Filter{}, 10)
	_, checks["LastSequence"] = s.LastSequence(ctx)
	checks["Subscribe"] = s.Subscribe(ctx, 0, domain.Filter{}, func(domain.Envelope) error { return nil })
	for name, err := range checks {
		if domain.ErrorCode(err) != domain.EUNAVAILABLE {
			t.Errorf("%s with the server down: %v, want EUNAVAILABLE", name, err)
		}
	}
}

func TestUnavailableWhileReconnecting(t *testing.T) {
	t.Parallel()
	n := testkit.StartNATS(t, "")
	nc := n.Connect(t, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	s := openStore(t, nc)
	n.Shutdown()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	agg := domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: "a"}
	_, err := s.Append(ctx, agg, 0, event("ticket.opened"))
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append while reconnecting: %v, want EUNAVAILABLE wrapping the deadline", err)
	}
}

func TestConflictReportsActualVersion(t *testing.T) {
	t.Parallel()
	nc := testkit.StartNATS(t, "").Connect(t)
	s := openStore(t, nc)
	a, b := domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: "a"}, domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: "b"}
	ra, err := s.Append(t.Context(), a, 0, event("ticket.opened"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(t.Context(), b, 0, event("ticket.opened"), event("ticket.noted")); err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(t.Context(), a, 0, event("ticket.opened"))
	var ce *domain.ConcurrencyError
	if !errors.As(err, &ce) || ce.Actual != ra.LastSequence || ce.Expected != 0 || ce.Aggregate != a {
		t.Fatalf("conflict %+v (%v), want actual %d", ce, err, ra.LastSequence)
	}
}

func TestAppendTooLarge(t *testing.T) {
	t.Parallel()
	nc := testkit.StartNATS(t, "").Connect(t)
	s := openStore(t, nc)
	agg := domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: "a"}
	big := event("ticket.opened")
	big.Payload = json.RawMessage(`"` + strings.Repeat("x", int(nc.MaxPayload())) + `"`)
	for name, events := range map[string][]domain.Envelope{
		"single":           {big},
		"first of a batch": {big, event("ticket.noted")},
		"last of a batch":  {event("ticket.noted"), big},
	} {
		_, err := s.Append(t.Context(), agg, 0, events...)
		if domain.ErrorCode(err) != domain.ETOOLARGE {
			t.Errorf("%s: %v, want ETOOLARGE", name, err)
		}
	}
	if last, err := s.LastSequence(t.Context()); err != nil || last != 0 {
		t.Fatalf("last sequence %d, %v; want nothing stored", last, err)
	}
}

// TestServerAtomicBatchBehaviour pins down what nats-server does with the headers Append relies
// on, publishing raw messages: if a server upgrade changes it, this test says what moved.
func TestServerAtomicBatchBehaviour(t *testing.T) {
	t.Parallel()
	nc := testkit.StartNATS(t, "").Connect(t)
	s := openStore(t, nc)
	subject := eventstore.Subject(s.Config().SubjectPrefix, domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: "a"})
	publish := func(m *nats.Msg) map[string]any {
		t.Helper()
		resp, err := nc.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var ack map[string]any
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			t.Fatal(err)
		}
		return ack
	}
	errCode := func(ack map[string]any) float64 {
		e, _ := ack["error"].(map[string]any)
		code, _ := e["err_code"].(float64)
		return code
	}
	errDescription := func(ack map[string]any) string {
		e, _ := ack["error"].(map[string]any)
		d, _ := e["description"].(string)
		return d
	}
	batch := func(batchID, expected string, ids ...string) map[string]any {
		t.Helper()
		for i, id := range ids {
			m := nats.NewMsg(subject)
			m.Data = []byte(`{}`)
			m.Header.Set("Nats-Msg-Id", id)
			m.Header.Set("Nats-Batch-Id", batchID)
			m.Header.Set("Nats-Batch-Sequence", fmt.Sprint(i+1))
			if i == 0 {
				m.Header.Set("Nats-Expected-Last-Subject-Sequence", expected)
			}
			if i == len(ids)-1 {
				m.Header.Set("Nats-Batch-Commit", "1")
				return publish(m)
			}
			if err := nc.PublishMsg(m); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	}
	single := func(id, expected string) map[string]any {
		m := nats.NewMsg(subject)
		m.Data = []byte(`{}`)
		m.Header.Set("Nats-Msg-Id", id)
		m.Header.Set("Nats-Expected-Last-Subject-Sequence", expected)
		return publish(m)
	}

	// Expected 0 on a subject without messages is accepted; the ack names the batch and its size.
	if ack := batch("b1", "0", "e1", "e2", "e3"); ack["seq"] != 3.0 || ack["batch"] != "b1" || ack["count"] != 3.0 {
		t.Fatalf("first batch: %v", ack)
	}
	// The same batch again (same ids, new batch id): rejected whole as containing a duplicate id,
	// whatever the expected sequence; no duplicate flag, no original sequence.
	for _, expected := range []string{"0", "3"} {
		if ack := batch("b2-"+expected, expected, "e1", "e2", "e3"); errCode(ack) != 10201 {
			t.Fatalf("re-sent batch expecting %s: %v, want err_code 10201", expected, ack)
		}
	}
	// A batch mixing a stored id and a new one is rejected whole too.
	if ack := batch("b3", "3", "e4", "e1"); errCode(ack) != 10201 {
		t.Fatalf("batch with one stored id: %v, want err_code 10201", ack)
	}
	// Expected 0 on an existing subject: wrong last sequence, with the actual one.
	if ack := batch("b4", "0", "e5", "e6"); errCode(ack) != 10071 || errDescription(ack) != "wrong last sequence: 3" {
		t.Fatalf("batch expecting 0 on an existing subject: %v", ack)
	}
	// A single message: the expected sequence is checked before the id, so a retry with the
	// original expected sequence is a conflict, not a duplicate…
	if ack := single("e7", "3"); ack["seq"] != 4.0 {
		t.Fatalf("single message: %v", ack)
	}
	if ack := single("e7", "3"); errCode(ack) != 10071 {
		t.Fatalf("single message retried: %v, want err_code 10071", ack)
	}
	// …while at the current sequence it is reported as a duplicate of the original.
	if ack := single("e7", "4"); ack["duplicate"] != true || ack["seq"] != 4.0 {
		t.Fatalf("single message again at the current sequence: %v", ack)
	}
	if last, err := s.LastSequence(t.Context()); err != nil || last != 4 {
		t.Fatalf("last sequence %d, %v; want 4", last, err)
	}
}
