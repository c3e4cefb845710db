package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/metachat/metachat/domain"
)

const (
	sendPath   = "/api/v1/conversations/{conversation_id}/messages"
	sampleUUID = "0b7e6a52-3c1d-4f7e-9a2b-5d8c1e4f6a70"
)

// validatorOnly is op without its precompiled check: every request goes to libopenapi-validator,
// as before the checks existed.
func validatorOnly(op *operation) *operation {
	c := *op
	c.check = nil
	return &c
}

// answer renders a validation result for comparison: the status, code, message and the sorted
// fields of the problem.
func answer(err error) string {
	if err == nil {
		return "ok"
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		return fmt.Sprintf("%d %v", StatusOf(err), err)
	}
	fields := make([]string, 0, len(de.Fields))
	for _, f := range de.Fields {
		fields = append(fields, f.Field+": "+f.Message)
	}
	sort.Strings(fields)
	return fmt.Sprintf("%d %s %s %q", StatusOf(err), de.Code, de.Message, fields)
}

// validateBoth validates the same request with the precompiled check and with the validator
// alone, and fails the test unless both answer the same. With exact false only the verdict and
// status must agree: for some odd inputs the validator's own wording varies from call to call
// (it names several unknown properties in map order, and a quote inside a property name blurs
// them), and a request the check does not accept is answered by the validator anyway.
func validateBoth(t testing.TB, s *Server, op *operation, target, contentType string, header http.Header, body []byte, exact bool) error {
	t.Helper()
	build := func() *http.Request {
		r := httptest.NewRequest(op.Method, target, bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		for k, vs := range header {
			for _, v := range vs {
				r.Header.Add(k, v)
			}
		}
		return r
	}
	r := build()
	got := s.validate(op, r)
	want := s.validate(validatorOnly(op), build())
	if (exact && answer(got) != answer(want)) || (got == nil) != (want == nil) || StatusOf(got) != StatusOf(want) {
		t.Fatalf("%s %s %q: with the precompiled check %s, with the validator alone %s", op.Method, target, body, answer(got), answer(want))
	}
	if got == nil && op.HasBody {
		if rest, _ := readAllString(r); rest != string(body) {
			t.Fatalf("the body left for the handler is %q, want %q", rest, body)
		}
	}
	return got
}

func readAllString(r *http.Request) (string, error) {
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

// TestSendMessageCheckIsPrecompiled: the hot route has a precompiled check, and so does every
// other JSON operation of the contract today (multipart uploads have their own validation).
func TestSendMessageCheckIsPrecompiled(t *testing.T) {
	s, err := NewServer(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range s.contract.keys() {
		op := s.contract.ops[k]
		if op.check == nil && !op.Multipart {
			t.Errorf("%s has no precompiled check: every request to it goes to the validator", k)
		}
		// The send route's id and body are plain strings: checked without JSON Schema.
		if op.ID == "sendMessage" {
			if op.check.simpleBody == nil || op.check.simpleBody.props["text"] == nil || !op.check.simpleBody.closed {
				t.Errorf("sendMessage's body is not checked as a simple object: %+v", op.check.simpleBody)
			}
			for _, seg := range op.check.segments {
				if seg.param != nil && (seg.param.simple == nil || !seg.param.simple.uuid) {
					t.Errorf("sendMessage's path parameter %s is not checked as a simple uuid string", seg.param.name)
				}
			}
		}
	}
}

// TestSimpleSchemas: the keywords simpleString and simpleObject understand, and their verdicts.
func TestSimpleSchemas(t *testing.T) {
	str := simpleStringFrom(map[string]any{"type": "string", "minLength": 1, "maxLength": 3, "description": "x"})
	if str == nil || !str.passes("abc") || !str.passes("äöü") || str.passes("") || str.passes("abcd") {
		t.Errorf("length range: %+v", str)
	}
	id := simpleStringFrom(map[string]any{"type": []any{"string"}, "format": "uuid", "pattern": uuidPattern})
	if id == nil || !id.passes(sampleUUID) || !id.passes(strings.ToUpper(sampleUUID)) || id.passes(sampleUUID[1:]+"0") || id.passes("x") {
		t.Errorf("uuid: %+v", id)
	}
	for _, m := range []map[string]any{
		{"type": "string", "pattern": "^a"}, {"type": "string", "pattern": uuidPattern[1:]}, {"type": "string", "enum": []any{"a"}}, {"type": "string", "format": "email"},
		{"type": "integer"}, {"type": []any{"string", "null"}}, {"type": "string", "maxLength": "3"},
	} {
		if s := simpleStringFrom(m); s != nil {
			t.Errorf("%v recognised as a simple string: %+v", m, s)
		}
	}
	obj := &simpleObject{props: map[string]*simpleString{"a": {maxLen: 2}}, required: []string{"a"}, closed: true}
	for v, want := range map[string]bool{`{"a":"xy"}`: true, `{"a":"xyz"}`: false, `{}`: false, `{"a":"x","b":"y"}`: false, `{"a":1}`: false, `[]`: false} {
		var decoded any
		if err := json.Unmarshal([]byte(v), &decoded); err != nil {
			t.Fatal(err)
		}
		if got := obj.passes(decoded); got != want {
			t.Errorf("closed object passes %s = %v, want %v", v, got, want)
		}
	}
	for body, want := range map[string]bool{
		`{"a":"xy"}`: true, " {\n \"a\" : \"ü\" } ": true, `{"a":"xyz"}`: false, `{}`: false, `{"a":"x","b":"y"}`: false,
		`{"a":"x","a":"y"}`: false, `{"a":"\u0078"}`: false, `{"a":1}`: false, `{"a":"x"}x`: false, `{"a":"x"`: false,
		"{\"a\":\"\xff\"}": false, "{\"a\":\"\t\"}": false, `[]`: false, ``: false,
	} {
		if got := obj.passesRaw([]byte(body)); got != want {
			t.Errorf("closed object passesRaw %q = %v, want %v", body, got, want)
		}
	}
	obj.closed = false
	if !obj.passesRaw([]byte(`{"a":"x","b":"y"}`)) || obj.passesRaw([]byte(`{"a":"x","b":1}`)) ||
		obj.passesRaw([]byte(`{"a":"x","b":"1","c":"","d":"","e":"","f":"","g":"","h":"","i":""}`)) {
		t.Error("open object: passesRaw takes unknown plain strings only, and at most 8 keys (not 9)")
	}
	var decoded any
	_ = json.Unmarshal([]byte(`{"a":"x","b":[1]}`), &decoded)
	if !obj.passes(decoded) {
		t.Error("an open object refuses an unknown property")
	}
}

// TestPrecompiledCheckAnswersLikeTheValidator: for the operations with a precompiled check
// (the send route first), a valid request passes and a bad body, path parameter, header or
// query parameter still answers 400 problem naming the field, exactly as the validator alone
// answers.
func TestPrecompiledCheckAnswersLikeTheValidator(t *testing.T) {
	s, err := NewServer(Config{})
	if err != nil {
		t.Fatal(err)
	}
	send, _ := s.contract.operation(http.MethodPost, sendPath)
	sendTo := strings.Replace(sendPath, "{conversation_id}", sampleUUID, 1)
	good := `{"text":"Hello, this is bench message 1. How can I help you today?","client_message_id":"bench-1"}`
	for _, tc := range []struct {
		name, target, contentType string
		header                    http.Header
		body                      string
		field                     string // "" when valid
	}{
		{"valid", sendTo, "application/json", nil, good, ""},
		{"valid with charset", sendTo, "application/json; charset=utf-8", nil, good, ""},
		{"valid without client_message_id", sendTo, "application/json", nil, `{"text":"hi"}`, ""},
		{"valid idempotency key", sendTo, "application/json", http.Header{"Idempotency-Key": {"k-1"}}, good, ""},
		{"text wrong type", sendTo, "application/json", nil, `{"text":12345}`, "text"},
		{"text missing", sendTo, "application/json", nil, `{"client_message_id":"m-1"}`, "text"},
		{"text empty", sendTo, "application/json", nil, `{"text":""}`, "text"},
		{"text over-long", sendTo, "application/json", nil, `{"text":"` + strings.Repeat("a", 4001) + `"}`, "text"},
		{"client_message_id over-long", sendTo, "application/json", nil, `{"text":"hi","client_message_id":"` + strings.Repeat("m", 129) + `"}`, "client_message_id"},
		{"property not allowed", sendTo, "application/json", nil, `{"text":"hi","role":"assistant"}`, "role"},
		{"not an object", sendTo, "application/json", nil, `["a"]`, "body"},
		{"number beyond float64", sendTo, "application/json", nil, `{"text":"hi","n":1e400}`, "body"},
		{"malformed JSON", sendTo, "application/json", nil, `{"oops": `, "body"},
		{"conversation id not a UUID", strings.Replace(sendPath, "{conversation_id}", "not-a-uuid", 1), "application/json", nil, good, "conversation_id"},
		{"conversation id escaped", strings.Replace(sendPath, "{conversation_id}", "%27%20OR%201%3D1", 1), "application/json", nil, good, "conversation_id"},
		{"idempotency key over-long", sendTo, "application/json", http.Header{"Idempotency-Key": {strings.Repeat("k", 129)}}, good, "Idempotency-Key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateBoth(t, s, send, tc.target, tc.contentType, tc.header, []byte(tc.body), true)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", answer(err))
				}
				return
			}
			var de *domain.Error
			if StatusOf(err) != http.StatusBadRequest || !errors.As(err, &de) {
				t.Fatalf("answer %s, want 400", answer(err))
			}
			named := false
			for _, f := range de.Fields {
				named = named || f.Field == tc.field
			}
			if !named {
				t.Fatalf("answer %s does not name %q", answer(err), tc.field)
			}
		})
	}

	// Query parameters, on the routes that have them.
	for _, tc := range []struct{ method, path, target, field string }{
		{"GET", "/api/v1/conversations/{conversation_id}/messages", "/api/v1/conversations/" + sampleUUID + "/messages?after_seq=3&limit=10", ""},
		{"GET", "/api/v1/conversations/{conversation_id}/messages", "/api/v1/conversations/" + sampleUUID + "/messages?after_seq=-1", "after_seq"},
		{"GET", "/api/v1/conversations/{conversation_id}/messages", "/api/v1/conversations/" + sampleUUID + "/messages?limit=201", "limit"},
		{"GET", "/api/v1/conversations/{conversation_id}/messages", "/api/v1/conversations/" + sampleUUID + "/messages?limit=ten", "limit"},
		{"GET", "/api/v1/conversations", "/api/v1/conversations?status=open&q=ann", ""},
		{"GET", "/api/v1/conversations", "/api/v1/conversations?status=opened", "status"},
		{"GET", "/api/v1/conversations", "/api/v1/conversations?status=%20open", "status"},
		{"GET", "/api/v1/knowledge/search", "/api/v1/knowledge/search?q=refund&k=5", ""},
		{"GET", "/api/v1/knowledge/search", "/api/v1/knowledge/search?k=5", "q"},
		{"GET", "/api/v1/knowledge/search", "/api/v1/knowledge/search?q=refund&k=51", "k"},
		{"GET", "/api/v1/widget/config", "/api/v1/widget/config?widget_id=" + sampleUUID, ""},
		{"GET", "/api/v1/widget/config", "/api/v1/widget/config?widget_id=x", "widget_id"},
		{"GET", "/api/v1/widget/config", "/api/v1/widget/config", "widget_id"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			op, ok := s.contract.operation(tc.method, tc.path)
			if !ok || op.check == nil {
				t.Fatalf("%s %s: no operation or no check", tc.method, tc.path)
			}
			err := validateBoth(t, s, op, tc.target, "", nil, nil, true)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", answer(err))
				}
				return
			}
			if StatusOf(err) != http.StatusBadRequest || !strings.Contains(answer(err), tc.field) {
				t.Fatalf("answer %s, want 400 naming %q", answer(err), tc.field)
			}
		})
	}
}

// FuzzPrecompiledCheck: for any operation, path segment, query string, header and body, the
// verdict and status with the precompiled check are the validator's (a check never accepts what
// the validator refuses, and whatever it does not accept is answered by the validator).
func FuzzPrecompiledCheck(f *testing.F) {
	s, ops := fuzzServer(f)
	f.Add(uint8(0), sampleUUID, "", "", uint8(0), []byte(`{"text":"hi","client_message_id":"m-1"}`))
	f.Add(uint8(3), sampleUUID, "after_seq=1&limit=2", "k-1", uint8(1), []byte(`{"text":"hi"}`))
	f.Add(uint8(5), "not-a-uuid", "limit=1e1", "", uint8(2), []byte(`{"text":1}`))
	f.Add(uint8(7), "%30b7e6a52-3c1d-4f7e-9a2b-5d8c1e4f6a70", "status=open&status=closed", strings.Repeat("k", 200), uint8(3), []byte(`{}`))
	f.Add(uint8(9), sampleUUID, "widget_id="+sampleUUID+"&x=1", " ", uint8(0), []byte(`{"widget_id":"`+sampleUUID+`"}`))
	f.Add(uint8(11), sampleUUID, "q=a%2Cb&k=05", "", uint8(0), []byte(`{"name":"x","allowed_origins":["https://a.example.com"]}`))
	f.Add(uint8(13), sampleUUID, "limit=01&cursor=abc%3D", "", uint8(0), []byte(`{"email":"a@example.com","password":"correct horse"}`))
	contentTypes := []string{"application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
		"application/json; charset=latin1", "application/jsonx", "Application/JSON"}
	f.Fuzz(func(t *testing.T, which uint8, segment, query, key string, ct uint8, body []byte) {
		op := ops[int(which)%len(ops)]
		if op.check == nil {
			return
		}
		path := op.Path
		for _, seg := range strings.Split(op.Path, "/") {
			if strings.HasPrefix(seg, "{") {
				path = strings.Replace(path, seg, segment, 1)
			}
		}
		target := path
		if query != "" {
			target += "?" + query
		}
		if _, err := http.NewRequest(op.Method, target, nil); err != nil || strings.ContainsAny(target, " \t\r\n#") {
			return
		}
		header := http.Header{}
		if key != "" && !strings.ContainsAny(key, "\r\n\x00") {
			header.Set("Idempotency-Key", key)
		}
		validateBoth(t, s, op, target, contentTypes[int(ct)%len(contentTypes)], header, body, false)
	})
}
