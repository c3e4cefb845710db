package domain_test

import (
	"encoding/json"
	"testing"

	"github.com/metachat/metachat/domain"
)

type testEvent struct {
	A string `json:"a"`
}

func (*testEvent) EventType() string { return "test.happened" }

func TestNewRegistryRejectsIncompleteDefinitions(t *testing.T) {
	newEv := func() domain.Event { return new(testEvent) }
	tests := []struct {
		name string
		defs []domain.EventDef
	}{
		{"no type", []domain.EventDef{{Version: 1, New: newEv}}},
		{"version zero", []domain.EventDef{{Type: "test.happened", New: newEv}}},
		{"no constructor", []domain.EventDef{{Type: "test.happened", Version: 1}}},
		{"type mismatch", []domain.EventDef{{Type: "other.type", Version: 1, New: newEv}}},
		{"duplicate", []domain.EventDef{{Type: "test.happened", Version: 1, New: newEv}, {Type: "test.happened", Version: 1, New: newEv}}},
		{"missing upcaster", []domain.EventDef{{Type: "test.happened", Version: 3, New: newEv, Upcasters: map[int]domain.Upcaster{1: func(p json.RawMessage) (json.RawMessage, error) { return p, nil }}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := domain.NewRegistry(tt.defs...); err == nil {
				t.Fatal("expected an error")
			}
		})
	}
}

func TestRegistryEncodeDecodeAndErrors(t *testing.T) {
	reg, err := domain.NewRegistry(domain.EventDef{
		Type: "test.happened", Version: 2, New: func() domain.Event { return new(testEvent) },
		Upcasters: map[int]domain.Upcaster{1: func(p json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(`{"a":"upcast"}`), nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	typ, v, payload, err := reg.Encode(&testEvent{A: "x"})
	if err != nil || typ != "test.happened" || v != 2 || string(payload) != `{"a":"x"}` {
		t.Fatalf("Encode = %q %d %s %v", typ, v, payload, err)
	}
	ev, err := reg.Decode(domain.Envelope{Type: typ, SchemaVersion: v, Payload: payload})
	if err != nil || ev.(*testEvent).A != "x" {
		t.Fatalf("Decode current = %#v %v", ev, err)
	}
	ev, err = reg.Decode(domain.Envelope{Type: typ, SchemaVersion: 1, Payload: json.RawMessage(`{}`)})
	if err != nil || ev.(*testEvent).A != "upcast" {
		t.Fatalf("Decode v1 = %#v %v", ev, err)
	}
	for name, env := range map[string]domain.Envelope{
		"unknown type":    {Type: "nope", SchemaVersion: 1, Payload: json.RawMessage(`{}`)},
		"future version":  {Type: typ, SchemaVersion: 3, Payload: json.RawMessage(`{}`)},
		"version zero":    {Type: typ, SchemaVersion: 0, Payload: json.RawMessage(`{}`)},
		"malformed":       {Type: typ, SchemaVersion: 2, Payload: json.RawMessage(`{"a":1}`)},
		"not json at all": {Type: typ, SchemaVersion: 2, Payload: json.RawMessage(`}`)},
	} {
		if _, err := reg.Decode(env); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%s: error code %q (%v), want %q", name, domain.ErrorCode(err), err, domain.EINVALID)
		}
	}
	if _, _, _, err := reg.Encode(&domain.TenantRenamed{}); err == nil {
		t.Error("Encode of an unregistered type succeeded")
	}
}

// FuzzDecode feeds arbitrary stored bodies through envelope and payload decoding: it must never
// panic, and anything it accepts must encode back to an equal event.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"tenant.created","schema_version":1,"payload":{"tenant_id":"t","name":"n"}}`))
	f.Add([]byte(`{"type":"tenant.renamed","schema_version":1,"payload":{"name":"x"}}`))
	f.Add([]byte(`{"type":"tenant.created","schema_version":2,"payload":[]}`))
	f.Add([]byte(`{}`))
	reg := domain.NewDefaultRegistry()
	f.Fuzz(func(t *testing.T, body []byte) {
		var env domain.Envelope
		if json.Unmarshal(body, &env) != nil {
			return
		}
		ev, err := reg.Decode(env)
		if err != nil {
			if domain.ErrorCode(err) != domain.EINVALID {
				t.Fatalf("decode error with code %q: %v", domain.ErrorCode(err), err)
			}
			return
		}
		typ, v, payload, err := reg.Encode(ev)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := reg.Decode(domain.Envelope{Type: typ, SchemaVersion: v, Payload: payload})
		if err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		b1, _ := json.Marshal(ev)
		b2, _ := json.Marshal(again)
		if string(b1) != string(b2) {
			t.Fatalf("round trip changed the event: %s != %s", b1, b2)
		}
	})
}
