package httpapi_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/domain"
)

const (
	evilOrigin   = "https://evil.example.com"
	widgetOrigin = "https://shop.example.com" // the origin resourceMakers' widgets allow
)

// securityServer starts a harness and a second server on the same services with edit applied to
// its configuration, over HTTPS when tls is set, and returns a client of the second one.
func securityServer(t *testing.T, tls bool, edit func(*httpapi.Config)) (*harness, *client) {
	t.Helper()
	h := newHarness(t)
	cfg := h.Server.ConfigForTest()
	if edit != nil {
		edit(&cfg)
	}
	s, err := httpapi.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(s)
	} else {
		srv = httptest.NewServer(s)
	}
	t.Cleanup(srv.Close)
	return h, &client{t: t, base: srv.URL, http: srv.Client()}
}

// testMounts are handlers outside the contract like the ones serve mounts: a static asset with a
// policy of its own, a script other sites load, a Func that fails and a handler that panics.
func testMounts() []httpapi.Mount {
	return []httpapi.Mount{
		{Pattern: "/asset.css", Methods: []string{"GET", "HEAD"}, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/css")
			w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; frame-ancestors 'none'")
			_, _ = w.Write([]byte("body{}"))
		})},
		{Pattern: "/script.js", Methods: []string{"GET", "HEAD"}, CrossOrigin: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/javascript")
			_, _ = w.Write([]byte("void 0"))
		})},
		{Pattern: "/fails", Func: func(http.ResponseWriter, *http.Request) error {
			return domain.Errorf(domain.EFORBIDDEN, "no")
		}},
		{Pattern: "/panics", Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(errors.New("boom")) })},
	}
}

// checkSecurityHeaders checks the headers every answer must carry. origin is the Origin the
// request was sent from and corsOK whether that origin may read the answer (a widget's own
// origin on a public widget route); everything else must carry no CORS header at all.
func checkSecurityHeaders(t *testing.T, what string, r response, wantHSTS bool, origin string, corsOK bool) {
	t.Helper()
	h := r.Header
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s (%d): "+format, append([]any{what, r.Status}, args...)...)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" {
		fail("X-Content-Type-Options %q", h.Get("X-Content-Type-Options"))
	}
	if h.Get("Referrer-Policy") != httpapi.ReferrerPolicy {
		fail("Referrer-Policy %q", h.Get("Referrer-Policy"))
	}
	if !strings.Contains(h.Get("Permissions-Policy"), "camera=()") {
		fail("Permissions-Policy %q", h.Get("Permissions-Policy"))
	}
	if h.Get("X-Frame-Options") != "DENY" {
		fail("X-Frame-Options %q", h.Get("X-Frame-Options"))
	}
	csps := h.Values("Content-Security-Policy")
	if len(csps) != 1 {
		fail("%d Content-Security-Policy headers, want 1: %q", len(csps), csps)
	}
	for _, csp := range csps {
		if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			fail("Content-Security-Policy %q", csp)
		}
	}
	if hsts := h.Get("Strict-Transport-Security"); wantHSTS != strings.HasPrefix(hsts, "max-age=31536000") {
		fail("Strict-Transport-Security %q, want it: %v", hsts, wantHSTS)
	}
	if h.Get("Cross-Origin-Opener-Policy") != "same-origin" {
		fail("Cross-Origin-Opener-Policy %q", h.Get("Cross-Origin-Opener-Policy"))
	}
	if corp := h.Get("Cross-Origin-Resource-Policy"); corp != "same-origin" && !strings.HasSuffix(what, "/script.js") {
		fail("Cross-Origin-Resource-Policy %q", corp)
	}
	acao := h.Get("Access-Control-Allow-Origin")
	switch {
	case acao == "*" || acao == "null" || h.Get("Access-Control-Allow-Credentials") != "":
		fail("CORS: Access-Control-Allow-Origin %q, credentials %q", acao, h.Get("Access-Control-Allow-Credentials"))
	case corsOK && acao != origin:
		fail("CORS: the widget's own origin %q may not read the answer (%q)", origin, acao)
	case !corsOK:
		for k := range h {
			if strings.HasPrefix(k, "Access-Control-") {
				fail("a same-origin answer carries %s: %q", k, h.Get(k))
			}
		}
	}
}

// TestSecurityHeadersOnEveryRoute walks every operation of the served OpenAPI document, with a
// success and with an error answer, plus unknown routes (404), wrong methods (405), a CORS
// preflight of a same-origin route, static assets, a cross-origin script, a failing mount and a
// panic, over plain HTTP (no HSTS), over HTTPS (HSTS), and behind a trusted TLS-terminating proxy
// (HSTS from X-Forwarded-Proto) — and checks the security headers on every answer.
func TestSecurityHeadersOnEveryRoute(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name     string
		tls      bool
		proxy    bool
		wantHSTS bool
	}{
		{"http", false, false, false},
		{"https", true, false, true},
		{"behind a trusted proxy", false, true, true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			_, c := securityServer(t, mode.tls, func(cfg *httpapi.Config) {
				cfg.Mounts = testMounts()
				if mode.proxy {
					cfg.TrustedProxies, _ = httpapi.ParseTrustedProxies("127.0.0.0/8, ::1")
				}
			})
			headers := map[string]string{"Origin": evilOrigin}
			if mode.proxy {
				headers["X-Forwarded-Proto"] = "https"
				headers["X-Forwarded-For"] = "203.0.113.50"
			} else {
				headers["X-Forwarded-Proto"] = "https" // from an untrusted peer: ignored
			}
			walkSecurityHeaders(t, c, headers, mode.wantHSTS)
		})
	}
}

func walkSecurityHeaders(t *testing.T, c *client, headers map[string]string, wantHSTS bool) {
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range headers {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	check := func(what string, r response, origin string, corsOK bool) {
		t.Helper()
		if r.Status >= 500 && !strings.Contains(what, "/panics") {
			t.Errorf("%s: %d %s", what, r.Status, r.Body)
		}
		checkSecurityHeaders(t, what, r, wantHSTS, origin, corsOK)
	}
	ops, _ := loadOps(c)
	tn := signUp(c)
	makers := resourceMakers(c, tn)
	email, pw := freshEmail(), "correct-horse-battery-"+randomHex(4)
	c.do("POST", "/api/v1/signup", "", map[string]any{"tenant_name": "Walk", "email": email, "password": pw}).must(t, 201, "signup")
	widgetID := makers["widget_id"]()
	paths := map[string]map[string]bool{}
	for _, o := range ops {
		if paths[o.Path] == nil {
			paths[o.Path] = map[string]bool{}
		}
		paths[o.Path][o.Method] = true
		ids := map[string]string{}
		for _, p := range o.PathParams {
			mk, ok := makers[p]
			if !ok {
				t.Fatalf("%s: no resource maker for %s", o, p)
			}
			ids[p] = mk()
		}
		path := fill(o.Path, ids)
		token := ""
		for _, role := range []string{"owner", "admin", "agent", "api_key"} {
			if o.Roles[role] {
				token = tn.Tokens[role]
				break
			}
		}
		// A success answer.
		var r response
		origin, corsOK := evilOrigin, false
		switch o.ID {
		case "login":
			r = c.doWithHeaders(o.Method, path, "", map[string]any{"email": email, "password": pw}, headers)
		case "getWidgetConfig":
			origin, corsOK = widgetOrigin, true
			r = c.doWithHeaders(o.Method, path+"?widget_id="+widgetID, "", nil, with(map[string]string{"Origin": widgetOrigin}))
		case "startWidgetSession":
			origin, corsOK = widgetOrigin, true
			r = c.doWithHeaders(o.Method, path+"?widget_id="+widgetID, "", map[string]any{"widget_id": widgetID}, with(map[string]string{"Origin": widgetOrigin}))
		case "uploadDocument":
			r = c.upload(token, "walk.txt", "", []byte("A document to walk."))
		case "searchKnowledge":
			r = c.doWithHeaders(o.Method, path+"?q=walk", token, nil, headers)
		default:
			var body any
			if b := exampleBody(t, o); b != nil {
				body = b
			}
			r = c.doWithHeaders(o.Method, path, token, body, headers)
		}
		if r.Status >= 400 {
			t.Errorf("%s: no success answer to check (%d %s): teach walkSecurityHeaders this operation", o, r.Status, r.Body)
		}
		if o.ID == "uploadDocument" {
			// c.upload sends no extra headers: no Origin, and behind the proxy no
			// X-Forwarded-Proto, so no HSTS there.
			checkSecurityHeaders(t, o.String()+" (success)", r, wantHSTS && headers["X-Forwarded-For"] == "", "", false)
		} else {
			check(o.String()+" (success)", r, origin, corsOK)
		}
		// An error answer: no credential, or for a public operation a malformed body or query.
		switch {
		case !o.public():
			r = c.doWithHeaders(o.Method, path, "", nil, headers)
		case o.Method == "GET":
			r = c.doWithHeaders(o.Method, path+"?widget_id=not-a-widget&limit=x", "", nil, headers)
		default:
			r = c.doRawWithHeaders(o.Method, path+"?widget_id=not-a-widget", []byte(`{"broken`), headers)
		}
		if r.Status < 400 && o.ID != "getOpenAPI" {
			t.Errorf("%s: no error answer to check (%d)", o, r.Status)
		}
		check(o.String()+" (error)", r, evilOrigin, false)
	}
	for path, methods := range paths {
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if !methods[m] {
				r := c.doWithHeaders(m, fill(path, map[string]string{}), tn.Tokens["owner"], nil, headers)
				if r.Status != 405 {
					t.Errorf("%s %s: %d, want 405", m, path, r.Status)
				}
				check(m+" "+path+" (405)", r, evilOrigin, false)
				break
			}
		}
	}
	preflight := with(map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"})
	r := c.doWithHeaders("OPTIONS", "/api/v1/conversations", "", nil, preflight)
	if r.Status < 400 {
		t.Errorf("a CORS preflight of a same-origin route answered %d", r.Status)
	}
	check("OPTIONS /api/v1/conversations (preflight)", r, evilOrigin, false)
	for _, x := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/no/such/route", 404}, {"GET", "/api/v1/nope", 404}, {"POST", "/api/health", 405}, {"GET", "/api/health", 200},
		{"GET", "/asset.css", 200}, {"HEAD", "/asset.css", 200}, {"POST", "/asset.css", 405}, {"GET", "/script.js", 200},
		{"GET", "/fails", 403}, {"GET", "/panics", 500},
	} {
		r := c.doWithHeaders(x.method, x.path, "", nil, headers)
		if r.Status != x.status {
			t.Errorf("%s %s: %d, want %d", x.method, x.path, r.Status, x.status)
		}
		check(x.method+" "+x.path, r, evilOrigin, false)
	}
	if r := c.doWithHeaders("GET", "/asset.css", "", nil, headers); !strings.Contains(r.Header.Get("Content-Security-Policy"), "style-src 'self'") {
		t.Errorf("a handler's own policy was not kept: %q", r.Header.Get("Content-Security-Policy"))
	}
	if r := c.doWithHeaders("GET", "/script.js", "", nil, headers); r.Header.Get("Cross-Origin-Resource-Policy") != "cross-origin" {
		t.Errorf("a cross-origin mount answers Cross-Origin-Resource-Policy %q", r.Header.Get("Cross-Origin-Resource-Policy"))
	}
	if r := c.doWithHeaders("GET", "/api/v1/me", "", nil, headers); r.Header.Get("Content-Security-Policy") != httpapi.DefaultCSP {
		t.Errorf("the API's policy is %q", r.Header.Get("Content-Security-Policy"))
	}
}

// TestCORS: the public widget routes let exactly the widget's origins read their answers, on the
// preflight and on the actual request; an unknown origin and the opaque "null" origin get no CORS
// header (and 403); every other route is same-origin — no CORS header whatever the origin, and
// its preflight fails.
func TestCORS(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.client(t)
	tn := signUp(c)
	widgetID := resourceMakers(c, tn)["widget_id"]()
	preflight := func(path, origin string) response {
		return c.doWithHeaders("OPTIONS", path, "", nil, map[string]string{"Origin": origin,
			"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
	}
	cfgPath := "/api/v1/widget/config?widget_id=" + widgetID
	sessPath := "/api/v1/widget/sessions?widget_id=" + widgetID
	for _, origin := range []string{widgetOrigin, "https://SHOP.example.com:443", evilOrigin, "null", "https://shop.example.com.evil.example", "http://shop.example.com"} {
		allowed := origin == widgetOrigin || origin == "https://SHOP.example.com:443"
		for _, x := range []struct {
			what string
			r    response
			ok   int
		}{
			{"preflight config", preflight(cfgPath, origin), 204},
			{"preflight sessions", preflight(sessPath, origin), 204},
			{"GET config", c.doWithHeaders("GET", cfgPath, "", nil, map[string]string{"Origin": origin}), 200},
			{"POST session", c.doWithHeaders("POST", sessPath, "", map[string]any{"widget_id": widgetID}, map[string]string{"Origin": origin}), 201},
		} {
			acao := x.r.Header.Get("Access-Control-Allow-Origin")
			switch {
			case allowed && (x.r.Status != x.ok || acao != origin):
				t.Errorf("%s from %s (allowed): %d, Access-Control-Allow-Origin %q: %s", x.what, origin, x.r.Status, acao, x.r.Body)
			case !allowed && (x.r.Status != 403 || acao != ""):
				t.Errorf("%s from %s: %d, Access-Control-Allow-Origin %q, want 403 and none", x.what, origin, x.r.Status, acao)
			}
			if x.r.Header.Get("Access-Control-Allow-Credentials") != "" || !strings.Contains(strings.Join(x.r.Header.Values("Vary"), ","), "Origin") {
				t.Errorf("%s from %s: credentials %q, Vary %q", x.what, origin, x.r.Header.Get("Access-Control-Allow-Credentials"), x.r.Header.Values("Vary"))
			}
		}
	}
	// Same-origin routes: no CORS header for any origin, not even a widget's own.
	for _, origin := range []string{widgetOrigin, evilOrigin, "null"} {
		for _, r := range []response{
			c.doWithHeaders("GET", "/api/v1/conversations", tn.Tokens["owner"], nil, map[string]string{"Origin": origin}),
			c.doWithHeaders("GET", "/api/v1/me", "", nil, map[string]string{"Origin": origin}),
			c.doWithHeaders("POST", "/api/v1/auth/login", "", map[string]any{"email": freshEmail(), "password": "x-password"}, map[string]string{"Origin": origin}),
			preflight("/api/v1/conversations", origin),
			preflight("/api/v1/auth/login", origin),
		} {
			for k := range r.Header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("a same-origin route answered %s: %q to %s (%d)", k, r.Header.Get(k), origin, r.Status)
				}
			}
		}
	}
}

// doRawWithHeaders sends raw bytes as a JSON body with extra headers.
func (c *client) doRawWithHeaders(method, path string, body []byte, headers map[string]string) response {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}
