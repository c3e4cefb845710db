package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestIdentityFlow is the identity part of the end-to-end flow over HTTP: sign up, log in, create
// an API key, call GET /me with it, revoke it, and the next request with it is refused.
func TestIdentityFlow(t *testing.T) {
	t.Parallel()
	c := startAPI(t)
	email := freshEmail()
	const pw = "correct horse battery staple"

	r := c.do("POST", "/api/v1/signup", "", map[string]any{"tenant_name": "Acme", "email": email, "password": pw})
	signup := r.must(t, 201, "signup")
	if signup["token_type"] != "Bearer" || signup["expires_in"] != float64(3600) || signup["access_token"] == "" ||
		signup["tenant_id"] == "" || signup["user_id"] == "" || r.Header.Get("X-Stream-Sequence") == "" {
		t.Fatalf("signup answer %v (headers %v)", signup, r.Header)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("an answer with a token is cacheable: %q", cc)
	}
	login := c.do("POST", "/api/v1/auth/login", "", map[string]any{"email": strings.ToUpper(email), "password": pw}).must(t, 200, "login")
	token := login["access_token"].(string)
	if login["token_type"] != "Bearer" || login["expires_in"] != float64(3600) {
		t.Errorf("login answer %v", login)
	}
	me := c.do("GET", "/api/v1/me", token, nil).must(t, 200, "me with the token")
	if me["user_id"] != signup["user_id"] || me["tenant_id"] != signup["tenant_id"] || me["email"] != email || me["role"] != "owner" || me["api_key_id"] != nil {
		t.Errorf("me %v", me)
	}

	r = c.do("POST", "/api/v1/api-keys", token, map[string]any{"name": "CI"})
	key := r.must(t, 201, "create api key")
	secret, _ := key["key"].(string)
	if !strings.HasPrefix(secret, "mck_") || !strings.HasPrefix(secret, key["prefix"].(string)+"_") || key["name"] != "CI" || key["created_at"] == nil || r.Header.Get("X-Stream-Sequence") == "" {
		t.Fatalf("created key %v", key)
	}
	me = c.do("GET", "/api/v1/me", secret, nil).must(t, 200, "me with the key")
	if me["tenant_id"] != signup["tenant_id"] || me["role"] != "api_key" || me["api_key_id"] != key["id"] || me["user_id"] != nil {
		t.Errorf("me with the key %v", me)
	}
	list := c.do("GET", "/api/v1/api-keys", token, nil)
	keys := list.must(t, 200, "list api keys")
	if bytes.Contains(list.Body, []byte(secret)) || bytes.Contains(list.Body, []byte(`"key"`)) {
		t.Errorf("the listing shows the secret: %s", list.Body)
	}
	items := keys["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["id"] != key["id"] || keys["next_cursor"] != nil {
		t.Errorf("listing %s", list.Body)
	}
	if _, ok := items[0].(map[string]any)["last_used_at"]; !ok {
		t.Errorf("listing without last_used_at: %s", list.Body)
	}

	r = c.do("DELETE", "/api/v1/api-keys/"+key["id"].(string), token, nil)
	if r.Status != http.StatusNoContent || len(r.Body) != 0 || r.Header.Get("X-Stream-Sequence") == "" {
		t.Fatalf("revoke: %d %q %v", r.Status, r.Body, r.Header)
	}
	r = c.do("GET", "/api/v1/me", secret, nil)
	if r.Status != 401 {
		t.Fatalf("the revoked key: %d %s", r.Status, r.Body)
	}
	problemFields(t, r)
}

func TestIdentityHTTPRules(t *testing.T) {
	t.Parallel()
	c := startAPI(t)
	const pw = "correct horse battery staple"
	email := freshEmail()
	owner := c.do("POST", "/api/v1/signup", "", map[string]any{"tenant_name": "Rules", "email": email, "password": pw}).must(t, 201, "signup")["access_token"].(string)

	t.Run("duplicate email", func(t *testing.T) {
		r := c.do("POST", "/api/v1/signup", "", map[string]any{"tenant_name": "Again", "email": strings.ToUpper(email), "password": pw})
		if r.Status != 409 {
			t.Errorf("sign-up with a taken address: %d %s", r.Status, r.Body)
		}
	})

	t.Run("login failures look alike", func(t *testing.T) {
		unknown := c.do("POST", "/api/v1/auth/login", "", map[string]any{"email": freshEmail(), "password": pw})
		wrong := c.do("POST", "/api/v1/auth/login", "", map[string]any{"email": email, "password": "not the password"})
		if unknown.Status != 401 || wrong.Status != 401 {
			t.Fatalf("statuses %d and %d", unknown.Status, wrong.Status)
		}
		strip := func(b []byte) map[string]any {
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			delete(m, "request_id")
			return m
		}
		u, w := strip(unknown.Body), strip(wrong.Body)
		ub, _ := json.Marshal(u)
		wb, _ := json.Marshal(w)
		if !bytes.Equal(ub, wb) {
			t.Errorf("unknown email %s, wrong password %s", ub, wb)
		}
	})

	agentEmail := freshEmail()
	r := c.do("POST", "/api/v1/users", owner, map[string]any{"email": agentEmail, "role": "agent", "password": pw})
	agent := r.must(t, 201, "invite")
	agentToken := c.do("POST", "/api/v1/auth/login", "", map[string]any{"email": agentEmail, "password": pw}).must(t, 200, "agent login")["access_token"].(string)

	t.Run("idempotent invitation", func(t *testing.T) {
		body := map[string]any{"email": freshEmail(), "role": "admin", "password": pw}
		first := c.doWithHeaders("POST", "/api/v1/users", owner, body, map[string]string{"Idempotency-Key": "inv-1"}).must(t, 201, "invite")
		again := c.doWithHeaders("POST", "/api/v1/users", owner, body, map[string]string{"Idempotency-Key": "inv-1"}).must(t, 201, "invite again")
		if first["id"] != again["id"] || first["email"] != again["email"] {
			t.Errorf("retry made %v, first %v", again, first)
		}
	})

	t.Run("idempotent key creation", func(t *testing.T) {
		body := map[string]any{"name": "deploys"}
		c.doWithHeaders("POST", "/api/v1/api-keys", owner, body, map[string]string{"Idempotency-Key": "key-1"}).must(t, 201, "create")
		r := c.doWithHeaders("POST", "/api/v1/api-keys", owner, body, map[string]string{"Idempotency-Key": "key-1"})
		if r.Status != 409 {
			t.Errorf("retried key creation: %d %s", r.Status, r.Body)
		}
	})

	t.Run("roles and pages", func(t *testing.T) {
		if r := c.do("GET", "/api/v1/users", agentToken, nil); r.Status != 403 {
			t.Errorf("agent lists users: %d", r.Status)
		}
		page := c.do("GET", "/api/v1/users?limit=1", owner, nil).must(t, 200, "first page")
		cursor, _ := page["next_cursor"].(string)
		if len(page["items"].([]any)) != 1 || cursor == "" {
			t.Fatalf("first page %v", page)
		}
		next := c.do("GET", "/api/v1/users?limit=200&cursor="+cursor, owner, nil).must(t, 200, "next page")
		if n := len(next["items"].([]any)); n < 2 || next["next_cursor"] != nil {
			t.Errorf("next page %v", next)
		}
		if r := c.do("GET", "/api/v1/users?cursor=garbage", owner, nil); r.Status != 400 {
			t.Errorf("bad cursor: %d %s", r.Status, r.Body)
		}
		u := c.do("PATCH", "/api/v1/users/"+agent["id"].(string), owner, map[string]any{"role": "admin"}).must(t, 200, "promote")
		if u["role"] != "admin" || u["id"] != agent["id"] {
			t.Errorf("promoted %v", u)
		}
		me := c.do("GET", "/api/v1/me", agentToken, nil).must(t, 200, "me after promotion")
		if me["role"] != "admin" {
			t.Errorf("after promotion the token is %v", me["role"])
		}
		if r := c.do("PATCH", "/api/v1/users/"+agent["id"].(string), agentToken, map[string]any{"role": "owner"}); r.Status != 403 {
			t.Errorf("an admin makes an owner: %d %s", r.Status, r.Body)
		}
	})

	t.Run("deactivation", func(t *testing.T) {
		me := c.do("GET", "/api/v1/me", owner, nil).must(t, 200, "me")
		if r := c.do("DELETE", "/api/v1/users/"+me["user_id"].(string), owner, nil); r.Status != 409 {
			t.Errorf("deactivate the last owner: %d %s", r.Status, r.Body)
		}
		r := c.do("DELETE", "/api/v1/users/"+agent["id"].(string), owner, nil)
		if r.Status != 204 || r.Header.Get("X-Stream-Sequence") == "" {
			t.Fatalf("deactivate: %d %s", r.Status, r.Body)
		}
		if r := c.do("GET", "/api/v1/me", agentToken, nil); r.Status != 401 {
			t.Errorf("a deactivated user's token: %d %s", r.Status, r.Body)
		}
		if r := c.do("DELETE", "/api/v1/users/00000000-0000-4000-8000-000000000000", owner, nil); r.Status != 404 {
			t.Errorf("deactivate a missing user: %d %s", r.Status, r.Body)
		}
	})
}

// doWithHeaders sends a request with extra headers.
func (c *client) doWithHeaders(method, path, token string, body any, headers map[string]string) response {
	c.t.Helper()
	js, err := json.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, bytes.NewReader(js))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		c.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: buf.Bytes()}
}

// TestEveryOperationRegistered: with every service configured, every operation of the OpenAPI
// document has its handler.
func TestEveryOperationRegistered(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if u := h.Server.Unregistered(); len(u) > 0 {
		t.Errorf("operations without a handler: %v", u)
	}
}
