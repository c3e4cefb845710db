package socket

import (
	"encoding/json"
	"testing"
)

func TestParseClientFrame(t *testing.T) {
	good := []string{
		`{"type":"send","client_message_id":"a","text":"hi"}`,
		`{"type":"resume","after_seq":0}`,
		`{"type":"resume","after_seq":42}`,
		`{"type":"typing"}`,
	}
	for _, s := range good {
		if _, err := parseClientFrame([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []string{
		``, `null`, `[]`, `"send"`, `{}`, `{"type":"send","text":"no id"}`, `{"type":"resume"}`,
		`{"type":"resume","after_seq":-1}`, `{"type":"resume","after_seq":1,"text":"x"}`, `{"type":"typing","text":"x"}`,
		`{"type":"send","client_message_id":"a","text":"hi","extra":1}`, `{"type":"send","client_message_id":"a","text":"hi"} {}`,
		`{"type":"send","client_message_id":"` + string(make([]byte, 0)) + `","text":"hi"}`, `{"type":"unknown"}`,
		`{"type":"send","client_message_id":"a","text":"hi","after_seq":1}`,
	}
	for _, s := range bad {
		if f, err := parseClientFrame([]byte(s)); err == nil {
			t.Errorf("%s accepted as %+v", s, f)
		} else if out := errorOut(err, ""); out.Code != codeInvalid {
			t.Errorf("%s: code %q", s, out.Code)
		}
	}
}

// FuzzParseClientFrame: no input panics; an accepted frame is of a known type with exactly its
// fields, and survives a round trip.
func FuzzParseClientFrame(f *testing.F) {
	for _, s := range []string{`{"type":"send","client_message_id":"a","text":"hi"}`, `{"type":"resume","after_seq":3}`, `{"type":"typing"}`, `{"type":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := parseClientFrame(data)
		if err != nil {
			return
		}
		switch fr.Type {
		case frameSend:
			if fr.ClientMessageID == "" || fr.AfterSeq != nil {
				t.Fatalf("send accepted without its id or with after_seq: %+v", fr)
			}
		case frameResume:
			if fr.AfterSeq == nil || fr.Text != "" || fr.ClientMessageID != "" {
				t.Fatalf("resume accepted with wrong fields: %+v", fr)
			}
		case frameTyping:
			if fr.AfterSeq != nil || fr.Text != "" || fr.ClientMessageID != "" {
				t.Fatalf("typing accepted with fields: %+v", fr)
			}
		default:
			t.Fatalf("unknown type accepted: %+v", fr)
		}
		b, err := json.Marshal(fr)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := parseClientFrame(b); err != nil || again.Type != fr.Type {
			t.Fatalf("round trip of %+v: %+v, %v", fr, again, err)
		}
	})
}
