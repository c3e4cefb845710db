package httpapi_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/metachat/metachat/adapters/httpapi"
)

// limited reports whether r is the 429 problem of a spent budget, with Retry-After and the
// RateLimit headers.
func limited(t *testing.T, what string, r response) bool {
	t.Helper()
	if r.Status != 429 {
		return false
	}
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(r.Body, &p); err != nil || p.Status != 429 || p.Type != "https://metachat.dev/problems/rate_limited" ||
		r.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s: 429 body %s (%v)", what, r.Body, err)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("%s: Retry-After %q", what, r.Header.Get("Retry-After"))
	}
	if r.Header.Get("RateLimit-Remaining") != "0" || r.Header.Get("RateLimit-Limit") == "" || r.Header.Get("RateLimit-Reset") == "" ||
		r.Header.Get("RateLimit-Policy") == "" {
		t.Errorf("%s: RateLimit headers %v", what, r.Header)
	}
	return true
}

// spend sends request until it is refused, and returns how many got through (at most max).
func spend(t *testing.T, what string, max int, request func() response) int {
	t.Helper()
	for i := 0; i < max; i++ {
		if r := request(); limited(t, what, r) {
			return i
		} else if r.Status >= 500 {
			t.Fatalf("%s: %d %s", what, r.Status, r.Body)
		}
	}
	return max
}

// TestRateLimitsPerIdentity: the general budget holds per API key and per user — spending one
// key's or user's budget leaves the others' whole, although every request comes from the same
// address — and answers carry the RateLimit headers.
func TestRateLimitsPerIdentity(t *testing.T) {
	t.Parallel()
	h, c := securityServer(t, false, func(cfg *httpapi.Config) {
		cfg.RateLimits = httpapi.RateLimits{API: httpapi.Rate{Requests: 5, Per: time.Hour}}
	})
	admin := h.client(t) // the harness's own server, default budgets, sets the tenant up
	tn := signUp(admin)
	me := func(token string) func() response {
		return func() response { return c.do("GET", "/api/v1/me", token, nil) }
	}
	r := c.do("GET", "/api/v1/me", tn.Tokens["owner"], nil)
	if r.Status != 200 || r.Header.Get("RateLimit-Limit") != "5" || r.Header.Get("RateLimit-Remaining") != "4" ||
		r.Header.Get("RateLimit-Policy") != "5;w=3600" {
		t.Fatalf("first request: %d %v", r.Status, r.Header)
	}
	if n := spend(t, "owner", 10, me(tn.Tokens["owner"])); n != 4 {
		t.Errorf("owner: %d more requests went through, want 4", n)
	}
	for _, who := range []string{"admin", "agent", "api_key"} {
		if n := spend(t, who, 10, me(tn.Tokens[who])); n != 5 {
			t.Errorf("%s: %d requests went through, want its own 5", who, n)
		}
	}
	other := admin.do("POST", "/api/v1/api-keys", tn.Tokens["owner"], map[string]any{"name": "second"}).must(t, 201, "second key")["key"].(string)
	if n := spend(t, "second key", 10, me(other)); n != 5 {
		t.Errorf("a second key of the same tenant: %d requests, want its own 5", n)
	}
}

// TestRateLimitsPerClientAddress: without a credential (a public route, or a refused credential)
// the budget is the client address's; behind a trusted proxy that is X-Forwarded-For's client,
// with two IPv6 addresses of one /64 sharing a budget; from an untrusted peer X-Forwarded-For
// changes nothing.
func TestRateLimitsPerClientAddress(t *testing.T) {
	t.Parallel()
	budget := httpapi.RateLimits{API: httpapi.Rate{Requests: 3, Per: time.Hour}}
	openapi := func(c *client, xff string) func() response {
		return func() response {
			return c.doWithHeaders("GET", "/api/v1/openapi.json", "", nil, map[string]string{"X-Forwarded-For": xff})
		}
	}
	t.Run("behind a trusted proxy", func(t *testing.T) {
		t.Parallel()
		_, c := securityServer(t, false, func(cfg *httpapi.Config) {
			cfg.RateLimits = budget
			cfg.TrustedProxies, _ = httpapi.ParseTrustedProxies("127.0.0.1, ::1")
		})
		if n := spend(t, "203.0.113.1", 10, openapi(c, "203.0.113.1")); n != 3 {
			t.Errorf("203.0.113.1: %d, want 3", n)
		}
		if n := spend(t, "203.0.113.2", 10, openapi(c, "203.0.113.2")); n != 3 {
			t.Errorf("203.0.113.2: %d, want its own 3", n)
		}
		// A client-written prefix does not buy a new budget: the proxy's hop counts.
		if n := spend(t, "spoofed prefix", 10, openapi(c, "198.51.100.9, 203.0.113.1")); n != 0 {
			t.Errorf("a spoofed prefix bought %d requests", n)
		}
		if n := spend(t, "2001:db8:1:2::1", 2, openapi(c, "2001:db8:1:2::1")); n != 2 {
			t.Errorf("2001:db8:1:2::1: %d, want 2", n)
		}
		if n := spend(t, "2001:db8:1:2:ffff:ffff:ffff:ffff", 10, openapi(c, "2001:db8:1:2:ffff:ffff:ffff:ffff")); n != 1 {
			t.Errorf("another address of the same /64: %d, want the 1 left of the shared budget", n)
		}
		if n := spend(t, "2001:db8:1:3::1", 10, openapi(c, "2001:db8:1:3::1")); n != 3 {
			t.Errorf("the next /64: %d, want its own 3", n)
		}
		// Refused credentials spend the client's budget too.
		bad := func() response {
			return c.doWithHeaders("GET", "/api/v1/me", "mck_deadbeef_"+randomHex(16), nil, map[string]string{"X-Forwarded-For": "203.0.113.7"})
		}
		if n := spend(t, "forged keys", 10, bad); n != 3 {
			t.Errorf("forged keys from one client: %d answered, want 3", n)
		}
	})
	t.Run("spoofed X-Forwarded-For from an untrusted peer", func(t *testing.T) {
		t.Parallel()
		_, c := securityServer(t, false, func(cfg *httpapi.Config) { cfg.RateLimits = budget })
		n := 0
		for i := range 10 {
			if limited(t, "spoofed", openapi(c, "203.0.113."+strconv.Itoa(i))()) {
				break
			}
			n++
		}
		if n != 3 {
			t.Errorf("with a new X-Forwarded-For on every request, %d went through, want 3 (the peer's budget)", n)
		}
	})
}

// TestSeparateBudgets: login, signup, widget sessions and message sends have budgets of their
// own: spending one leaves the general budget and the others whole.
func TestSeparateBudgets(t *testing.T) {
	t.Parallel()
	h, c := securityServer(t, false, func(cfg *httpapi.Config) {
		cfg.RateLimits = httpapi.RateLimits{
			API:   httpapi.Rate{Requests: 100, Per: time.Hour},
			Login: httpapi.Rate{Requests: 3, Per: time.Hour}, Signup: httpapi.Rate{Requests: 2, Per: time.Hour},
			WidgetSession: httpapi.Rate{Requests: 2, Per: time.Hour}, Send: httpapi.Rate{Requests: 3, Per: time.Hour},
		}
	})
	admin := h.client(t)
	tn := signUp(admin)
	owner := tn.Tokens["owner"]
	conv := resourceMakers(admin, tn)["conversation_id"]()
	widgetID := resourceMakers(admin, tn)["widget_id"]()

	login := func() response {
		return c.do("POST", "/api/v1/auth/login", "", map[string]any{"email": freshEmail(), "password": "not-the-password"})
	}
	if n := spend(t, "login", 10, login); n != 3 {
		t.Errorf("login: %d, want 3", n)
	}
	signup := func() response {
		return c.do("POST", "/api/v1/signup", "", map[string]any{"tenant_name": "T", "email": freshEmail(), "password": "correct-horse-battery"})
	}
	if n := spend(t, "signup", 10, signup); n != 2 {
		t.Errorf("signup: %d, want 2", n)
	}
	session := func() response {
		return c.doWithHeaders("POST", "/api/v1/widget/sessions?widget_id="+widgetID, "", map[string]any{"widget_id": widgetID},
			map[string]string{"Origin": widgetOrigin})
	}
	r := session()
	if r.Status != 201 {
		t.Fatalf("session: %d %s", r.Status, r.Body)
	}
	if n := spend(t, "widget session", 10, session); n != 1 {
		t.Errorf("widget sessions: %d more, want 1", n)
	}
	if r := session(); r.Header.Get("Access-Control-Allow-Origin") != widgetOrigin {
		t.Errorf("a refused session is unreadable by the widget's page (no CORS on the 429)")
	}
	send := func() response {
		return c.do("POST", "/api/v1/conversations/"+conv+"/messages", owner, map[string]any{"text": "hi", "client_message_id": "m-" + randomHex(6)})
	}
	if n := spend(t, "send", 10, send); n != 3 {
		t.Errorf("sends: %d, want 3", n)
	}
	// The general budget is untouched by all of the above.
	if r := c.do("GET", "/api/v1/conversations/"+conv+"/messages", owner, nil); r.Status != 200 || r.Header.Get("RateLimit-Remaining") != "99" {
		t.Errorf("general budget after the others: %d, remaining %q", r.Status, r.Header.Get("RateLimit-Remaining"))
	}
}

// TestRateLimitsOff: with rate limits disabled nothing is refused and no RateLimit header is sent.
func TestRateLimitsOff(t *testing.T) {
	t.Parallel()
	_, c := securityServer(t, false, func(cfg *httpapi.Config) {
		cfg.RateLimits = httpapi.RateLimits{Disabled: true, API: httpapi.Rate{Requests: 1, Per: time.Hour}}
	})
	for range 5 {
		if r := c.do("GET", "/api/v1/openapi.json", "", nil); r.Status != 200 || r.Header.Get("RateLimit-Limit") != "" {
			t.Fatalf("%d %v", r.Status, r.Header)
		}
	}
}

// TestRateLimitedRequestsAreCounted: each 429 of a budget counts in
// metachat_http_rate_limited_total{budget}.
func TestRateLimitedRequestsAreCounted(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := httpapi.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	_, c := securityServer(t, false, func(cfg *httpapi.Config) {
		cfg.Metrics = m
		cfg.RateLimits = httpapi.RateLimits{API: httpapi.Rate{Requests: 1, Per: time.Hour}}
	})
	for range 3 {
		c.do("GET", "/api/v1/openapi.json", "", nil)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := -1.0
	for _, f := range families {
		if f.GetName() != "metachat_http_rate_limited_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			if len(s.GetLabel()) == 1 && s.GetLabel()[0].GetValue() == httpapi.BudgetAPI {
				got = s.GetCounter().GetValue()
			}
		}
	}
	if got != 2 {
		t.Errorf("metachat_http_rate_limited_total{budget=api} = %v, want 2", got)
	}
}
