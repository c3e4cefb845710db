package eventstore

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

// sampleEnvelope is an envelope as the stores write them.
func sampleEnvelope() domain.Envelope {
	return domain.Envelope{
		ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Type: "conversation.message_sent", SchemaVersion: 2,
		TenantID: "t-1", AggregateType: "conversation", AggregateID: "c_9",
		OccurredAt: time.Date(2026, 11, 26, 6, 30, 1, 123456789, time.UTC),
		Actor:      domain.Actor{Type: "api_key", ID: "k1"}, CorrelationID: "req-1",
		Payload: json.RawMessage(`{"text":"hi ünïcode","n":[1,-2.5e3,true,null,{"a":"b\"c"}]}`),
	}
}

// TestEnvelopeCodecMatchesEncodingJSON shows the fast path taken for ordinary envelopes and
// writing and reading exactly what encoding/json does, and the cases it leaves to encoding/json.
func TestEnvelopeCodecMatchesEncodingJSON(t *testing.T) {
	e := sampleEnvelope()
	got, ok := appendEnvelope(nil, e)
	want, err := json.Marshal(e)
	if err != nil || !ok || !bytes.Equal(got, want) {
		t.Fatalf("appendEnvelope = %s, %v; json.Marshal = %s, %v", got, ok, want, err)
	}
	dec, ok := decodeEnvelope(got)
	if !ok || !reflect.DeepEqual(dec, e) {
		t.Fatalf("decodeEnvelope = %+v, %v; want %+v", dec, ok, e)
	}
	spaced := []byte(" {\n \"payload\" : [ 1 , 2 ] , \"id\":\"x\", \"actor\" : { } } ")
	if dec, ok := decodeEnvelope(spaced); !ok || dec.ID != "x" || string(dec.Payload) != "[ 1 , 2 ]" {
		t.Errorf("decodeEnvelope(spaced) = %+v, %v", dec, ok)
	}

	for name, change := range map[string]func(*domain.Envelope){
		"escaped id":          func(e *domain.Envelope) { e.ID = `a"b` },
		"html in type":        func(e *domain.Envelope) { e.Type = "a<b" },
		"non-ASCII actor":     func(e *domain.Envelope) { e.Actor.ID = "é" },
		"offset time":         func(e *domain.Envelope) { e.OccurredAt = e.OccurredAt.In(time.FixedZone("x", 3600)) },
		"year 10000":          func(e *domain.Envelope) { e.OccurredAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"spaced payload":      func(e *domain.Envelope) { e.Payload = json.RawMessage(`{ "a":1}`) },
		"html in payload":     func(e *domain.Envelope) { e.Payload = json.RawMessage(`"<b>"`) },
		"U+2028 in payload":   func(e *domain.Envelope) { e.Payload = json.RawMessage("\"a\u2028\"") },
		"invalid payload":     func(e *domain.Envelope) { e.Payload = json.RawMessage(`{"a":}`) },
		"empty payload":       func(e *domain.Envelope) { e.Payload = nil },
		"trailing in payload": func(e *domain.Envelope) { e.Payload = json.RawMessage(`1 `) },
	} {
		e := sampleEnvelope()
		change(&e)
		if b, ok := appendEnvelope(nil, e); ok {
			t.Errorf("%s: fast path taken: %s", name, b)
		}
	}
	for name, body := range map[string]string{
		"escaped value":   `{"id":"a\u0062"}`,
		"unknown key":     `{"id":"a","extra":1}`,
		"case-folded key": `{"ID":"a"}`,
		"repeated key":    `{"actor":{"type":"a"},"actor":{"id":"b"}}`,
		"null value":      `{"id":null}`,
		"fraction":        `{"schema_version":1.0}`,
		"invalid UTF-8":   "{\"id\":\"\xff\"}",
		"trailing data":   `{"id":"a"}x`,
		"not an object":   `["id"]`,
		"bad payload":     `{"payload":{"a" 1}}`,
		"cut short":       `{"schema_version":`,
		"cut in actor":    `{"actor":{"type":"a",`,
	} {
		if env, ok := decodeEnvelope([]byte(body)); ok {
			t.Errorf("%s: fast path taken: %+v", name, env)
		}
	}
}

// FuzzEnvelopeCodec holds the codec to encoding/json: what appendEnvelope writes is byte for byte
// json.Marshal's output, and what decodeEnvelope accepts json.Unmarshal accepts with the same
// result; scanJSON's end and canonical verdicts agree with json.Valid and json.Compact.
func FuzzEnvelopeCodec(f *testing.F) {
	good, _ := json.Marshal(sampleEnvelope())
	f.Add(good, "id", "t", 1, int64(1764138601123456789), "api_key")
	f.Add([]byte(`{"id":"a","schema_version":-0,"occurred_at":"2026-01-02T03:04:05Z","actor":{"id":"x","type":"y"},"payload":null}`), "", "", 0, int64(0), "")
	f.Add([]byte(`{"payload":[[[{"a":[]}]]],"schema_version":99999999999999999999}`), "a<b", "\u2028", -3, int64(-62135596800000000000/1000), "é")
	f.Add([]byte(`{"payload":"\u00e9\\/\"","occurred_at":"2026-13-01T00:00:00Z"}`), `\`, "x\x00", 7, int64(9223372036854775807), "k")
	f.Fuzz(func(t *testing.T, body []byte, id, typ string, version int, unixNano int64, actor string) {
		// decode
		if env, ok := decodeEnvelope(body); ok {
			var want domain.Envelope
			if err := json.Unmarshal(body, &want); err != nil {
				t.Fatalf("fast decode accepted %q, which encoding/json refuses: %v", body, err)
			}
			if !reflect.DeepEqual(env, want) {
				t.Fatalf("fast decode of %q = %+v, encoding/json = %+v", body, env, want)
			}
		}
		// scan
		start := skipSpace(body, 0)
		end, canonical := scanJSON(body, start, 0)
		whole := end > start && skipSpace(body, end) == len(body)
		if whole != json.Valid(body) {
			t.Fatalf("scanJSON(%q) ends at %d of %d; json.Valid says %v", body, end, len(body), json.Valid(body))
		}
		if whole && canonical && start == 0 && end == len(body) {
			var buf bytes.Buffer
			if err := json.Compact(&buf, body); err != nil {
				t.Fatal(err)
			}
			var esc bytes.Buffer
			json.HTMLEscape(&esc, buf.Bytes())
			if !bytes.Equal(esc.Bytes(), body) {
				t.Fatalf("scanJSON calls %q canonical; compacted and escaped it is %q", body, esc.Bytes())
			}
		}
		// encode
		e := sampleEnvelope()
		e.ID, e.Type, e.SchemaVersion, e.Actor.Type, e.CausationID = id, typ, version, actor, typ
		e.OccurredAt = time.Unix(0, unixNano).UTC()
		e.Payload = json.RawMessage(body)
		want, wantErr := json.Marshal(e)
		got, ok := appendEnvelope([]byte("prefix"), e)
		if !ok {
			if string(got) != "prefix" {
				t.Fatalf("refused, but appended %q", got)
			}
			return
		}
		if wantErr != nil || !bytes.Equal(got[len("prefix"):], want) {
			t.Fatalf("appendEnvelope = %q; json.Marshal = %q, %v", got, want, wantErr)
		}
		back, ok := decodeEnvelope(want)
		if !ok || !reflect.DeepEqual(back.Payload, e.Payload) || back.ID != e.ID || !back.OccurredAt.Equal(e.OccurredAt) {
			t.Fatalf("decodeEnvelope of the fast encoding = %+v, %v; want %+v", back, ok, e)
		}
	})
}

// FuzzPubAck holds decodePubAck to encoding/json: what it accepts json.Unmarshal accepts, into
// the same pubAck.
func FuzzPubAck(f *testing.F) {
	f.Add([]byte(`{"stream":"EVENTS","seq":42}`))
	f.Add([]byte(`{"stream":"EVENTS","seq":7,"duplicate":true}`))
	f.Add([]byte(` { "stream" : "E" , "batch":"b1","count":3,"seq":18446744073709551615 } `))
	f.Add([]byte(`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"},"stream":"E","seq":0}`))
	f.Add([]byte(`{"seq":01}`))
	f.Add([]byte(`{"seq":1,"seq":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodePubAck(data)
		if !ok {
			return
		}
		var want pubAck
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("decodePubAck accepted %q, which encoding/json refuses: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodePubAck(%q) = %+v, encoding/json %+v", data, got, want)
		}
	})
}

// TestDecodePubAck: the plain answers take the fast path; an error answer does not.
func TestDecodePubAck(t *testing.T) {
	for data, want := range map[string]pubAck{
		`{"stream":"EVENTS","seq":42}`:                  {Stream: "EVENTS", Sequence: 42},
		`{"stream":"EVENTS","seq":7,"duplicate":true}`:  {Stream: "EVENTS", Sequence: 7, Duplicate: true},
		`{"stream":"E","batch":"b","count":2,"seq":9} `: {Stream: "E", BatchID: "b", Count: 2, Sequence: 9},
	} {
		if got, ok := decodePubAck([]byte(data)); !ok || got != want {
			t.Errorf("decodePubAck(%s) = %+v, %v; want %+v", data, got, ok, want)
		}
	}
	for _, data := range []string{`{"error":{"code":503},"stream":"E"}`, `{"seq":-1}`, `{"seq":1.0}`, `{"seq":1,"seq":2}`, `{"stream":"E\u0041"}`, `{"seq":1}x`, `{"seq":`, `{"seq":1,`} {
		if got, ok := decodePubAck([]byte(data)); ok {
			t.Errorf("decodePubAck(%s) took the fast path: %+v", data, got)
		}
	}
}
