package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/metachat/metachat/domain"
)

// FuzzBearerToken: the Authorization header parser never panics, refuses with EUNAUTHORIZED,
// and what it accepts is one bounded token without spaces or control characters.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer mck_Ab3dE5gH_q8ZkT1vR0mXn5cWb2LpYh7sJd4FgKe9uVt3NaQ6i", "bearer a.b.c", "Bearer", "Bearer ",
		"Basic dXNlcjpwYXNz", "Bearer  two  spaces", "Bearer \x00", "", strings.Repeat("A", 5000), "Bearer tok\ttab"} {
		f.Add(s, "")
	}
	f.Add("Bearer a", "Bearer b")
	f.Fuzz(func(t *testing.T, h1, h2 string) {
		values := []string{h1}
		if h2 != "" {
			values = append(values, h2)
		}
		tok, err := bearerToken(values)
		if err != nil {
			if domain.ErrorCode(err) != domain.EUNAUTHORIZED || tok != "" {
				t.Fatalf("%q: %q, %v", values, tok, err)
			}
			if msg := domain.ErrorMessage(err); len(h1) > 8 && strings.Contains(msg, h1) {
				t.Fatalf("the answer repeats the header: %q", msg)
			}
			return
		}
		if tok == "" || len(tok) > maxBearerLen || strings.ContainsAny(tok, " \t\r\n\x00") || !strings.HasSuffix(h1, tok) || len(values) != 1 {
			t.Fatalf("%q accepted as %q", values, tok)
		}
	})
}

// FuzzResolveClient: X-Forwarded-For parsing never panics; from an untrusted peer it never
// changes the client; behind trusted proxies the client is the peer or an address that appears
// in the header.
func FuzzResolveClient(f *testing.F) {
	for _, s := range []string{"203.0.113.9", "1.2.3.4, 203.0.113.9, 10.0.0.1", "[2001:db8::1]:80", "garbage", "", ",,,", "::ffff:1.2.3.4",
		"fe80::1%eth0", strings.Repeat("10.0.0.1,", 100)} {
		f.Add("10.1.2.3:443", s)
		f.Add("198.51.100.7:1", s)
	}
	trusted, _ := ParseTrustedProxies("10.0.0.0/8, 2001:db8::/32")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		got := resolveClient(remote, []string{xff}, trusted)
		peer, ok := parseHop(remote)
		if !ok {
			if got.IsValid() {
				t.Fatalf("unparsable peer %q gave %v", remote, got)
			}
			return
		}
		if !isTrusted(peer, trusted) && got != peer {
			t.Fatalf("untrusted peer %q with X-Forwarded-For %q resolved to %v", remote, xff, got)
		}
		if got != peer {
			found := false
			for _, hop := range strings.Split(xff, ",") {
				if a, ok := parseHop(hop); ok && a == got {
					found = true
				}
			}
			if !found {
				t.Fatalf("client %v is neither the peer nor in %q", got, xff)
			}
		}
		_ = ClientKey(got)
	})
}

// fuzzServer is a server with no services: the contract, its validation and the parameter
// parsing, which is what runs on outside input before any service is called.
func fuzzServer(f *testing.F) (*Server, []*operation) {
	s, err := NewServer(Config{})
	if err != nil {
		f.Fatal(err)
	}
	var ops []*operation
	for _, op := range s.contract.ops {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Method+ops[i].Path < ops[j].Method+ops[j].Path })
	return s, ops
}

// FuzzRequestValidation: any body and query string against any operation of the contract is
// validated without a panic and answered with a 4xx code, never an internal error; a body that
// passes decodes into the handlers' request types.
func FuzzRequestValidation(f *testing.F) {
	s, ops := fuzzServer(f)
	f.Add(uint8(0), "limit=10&cursor=abc&status=open&q=x", []byte(`{"email":"a@example.com","password":"correct horse"}`))
	f.Add(uint8(3), "after_seq=18446744073709551615&limit=-1", []byte(`{"text":"hi","client_message_id":"m-1"}`))
	f.Add(uint8(7), "q=%27%20OR%201%3D1--", []byte(`{"name":"x","allowed_origins":["https://a.example.com"]}`))
	f.Add(uint8(9), "widget_id=00000000-0000-4000-8000-000000000000", []byte(`{"widget_id":"00000000-0000-4000-8000-000000000000"}`))
	f.Add(uint8(11), "", []byte(`{"a":`))
	f.Add(uint8(12), "limit=1e9", []byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, which uint8, query string, body []byte) {
		op := ops[int(which)%len(ops)]
		path := op.Path
		for _, seg := range strings.Split(op.Path, "/") {
			if strings.HasPrefix(seg, "{") {
				path = strings.Replace(path, seg, "00000000-0000-4000-8000-000000000000", 1)
			}
		}
		target := path
		if q, err := url.ParseQuery(query); err == nil && len(q) > 0 {
			target += "?" + q.Encode()
		}
		r := httptest.NewRequest(op.Method, target, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		err := s.validate(op, r)
		if err != nil {
			if st := StatusOf(err); st < 400 || st >= 500 {
				t.Fatalf("%s %s: %v answers %d", op.Method, target, err, st)
			}
			return
		}
		parseQuery(t, r)
		if op.HasBody {
			for _, v := range []any{&signupRequest{}, &loginRequest{}, &createConversationRequest{}, &updateConversationRequest{},
				&widgetSettingsJSON{}, &widgetSessionRequest{}} {
				r := httptest.NewRequest(op.Method, target, bytes.NewReader(body))
				if err := decodeJSON(r, v); err != nil && domain.ErrorCode(err) != domain.EINVALID {
					t.Fatalf("decode: %v", err)
				}
			}
		}
	})
}

// parseQuery runs the handlers' query parameter parsers; they may refuse (EINVALID), never panic.
func parseQuery(t *testing.T, r *http.Request) {
	q := r.URL.Query()
	for _, name := range []string{"limit", "after_seq"} {
		if _, err := convQueryInt(q, name); err != nil && domain.ErrorCode(err) != domain.EINVALID {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, _, err := identityPage(r); err != nil && domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("identityPage: %v", err)
	}
}
