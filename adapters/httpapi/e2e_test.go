package httpapi_test

import (
	"fmt"
	"testing"
)

// TestEndToEndFlow is the end-to-end path through the real HTTP server, JetStream and
// Postgres: signup → login → create an API key → with the key create a conversation → send a
// message → list shows it at seq 1 → resend the same client_message_id → still one message →
// revoke the key → the next request with it gets 401.
func TestEndToEndFlow(t *testing.T) {
	c := startAPI(t)
	email, pw := freshEmail(), "correct-horse-battery-staple"
	signup := c.do("POST", "/api/v1/signup", "", map[string]any{"tenant_name": "Acme Bikes", "email": email, "password": pw}).must(t, 201, "signup")
	if signup["token_type"] != "Bearer" || signup["expires_in"].(float64) <= 0 || signup["tenant_id"] == "" || signup["user_id"] == "" {
		t.Fatalf("signup answer %v", signup)
	}
	login := c.do("POST", "/api/v1/auth/login", "", map[string]any{"email": email, "password": pw}).must(t, 200, "login")
	token := login["access_token"].(string)

	me := c.do("GET", "/api/v1/me", token, nil).must(t, 200, "me")
	if me["tenant_id"] != signup["tenant_id"] || me["user_id"] != signup["user_id"] || me["role"] != "owner" || me["email"] != email {
		t.Fatalf("me %v", me)
	}

	created := c.do("POST", "/api/v1/api-keys", token, map[string]any{"name": "CRM"}).must(t, 201, "create key")
	key := created["key"].(string)
	keys := c.do("GET", "/api/v1/api-keys", token, nil).must(t, 200, "list keys")
	if fmt.Sprint(keys) == "" || len(keys["items"].([]any)) != 1 {
		t.Fatalf("keys %v", keys)
	}
	for _, k := range keys["items"].([]any) {
		if _, leaked := k.(map[string]any)["key"]; leaked {
			t.Fatalf("the key list shows a secret: %v", k)
		}
	}

	conv := c.do("POST", "/api/v1/conversations", key, map[string]any{"channel": "api", "contact": map[string]any{"external_id": "crm-4711", "name": "Ada"}}).must(t, 201, "create conversation")
	convID := conv["id"].(string)
	if conv["status"] != "open" || conv["channel"] != "api" {
		t.Fatalf("conversation %v", conv)
	}
	msgPath := "/api/v1/conversations/" + convID + "/messages"
	send := map[string]any{"text": "Where is my order?", "client_message_id": "cm-1"}
	r := c.do("POST", msgPath, key, send)
	first := r.must(t, 201, "send")
	if first["seq"].(float64) != 1 || first["text"] != "Where is my order?" || first["author"].(map[string]any)["type"] != "api_key" {
		t.Fatalf("message %v", first)
	}
	if r.Header.Get("X-Stream-Sequence") == "" {
		t.Error("no X-Stream-Sequence on a write")
	}

	list := c.do("GET", msgPath, key, nil).must(t, 200, "list messages")
	items := list["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["seq"].(float64) != 1 {
		t.Fatalf("messages %v", list)
	}

	again := c.do("POST", msgPath, key, send).must(t, 200, "resend")
	if again["id"] != first["id"] || again["seq"].(float64) != 1 {
		t.Fatalf("resend returned %v, want the original %v", again, first)
	}
	if n := len(c.do("GET", msgPath, key, nil).must(t, 200, "list again")["items"].([]any)); n != 1 {
		t.Fatalf("%d messages after a resend, want 1", n)
	}

	c.do("DELETE", "/api/v1/api-keys/"+created["id"].(string), token, nil).must(t, 204, "revoke")
	if r := c.do("GET", msgPath, key, nil); r.Status != 401 {
		t.Fatalf("revoked key: %d %s, want 401", r.Status, r.Body)
	}
	if r := c.do("POST", msgPath, key, map[string]any{"text": "after revoke"}); r.Status != 401 {
		t.Fatalf("revoked key on a write: %d %s, want 401", r.Status, r.Body)
	}
}
