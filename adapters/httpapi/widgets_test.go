package httpapi_test

import (
	"slices"
	"strings"
	"testing"
)

// TestWidgetsAPI: widgets are created, read, listed and replaced through the API; every setting
// that reaches a page is validated on the way in, each problem naming its field; an
// Idempotency-Key makes a create safe to retry; the identity secret shows only to the widget's own
// managers.
func TestWidgetsAPI(t *testing.T) {
	c := startAPI(t)
	a := signUp(c)
	owner := a.Tokens["owner"]
	body := map[string]any{
		"name": "  Shop  ", "allowed_origins": []string{"https://Shop.example.com:443", "http://localhost:3000"},
		"colors": map[string]any{"primary": "#AABBCC"}, "greeting": "Hi!", "position": "bottom-left",
	}
	r := c.doWithHeaders("POST", "/api/v1/widgets", owner, body, map[string]string{"Idempotency-Key": "w-1"})
	w := r.must(t, 201, "create widget")
	if r.Header.Get("X-Stream-Sequence") == "" {
		t.Error("no X-Stream-Sequence on a write")
	}
	id := w["id"].(string)
	origins := toStrings(w["allowed_origins"])
	if w["name"] != "Shop" || !slices.Equal(origins, []string{"http://localhost:3000", "https://shop.example.com"}) ||
		w["colors"].(map[string]any)["primary"] != "#aabbcc" || w["colors"].(map[string]any)["background"] != "#ffffff" ||
		w["position"] != "bottom-left" || w["assistant_enabled"] != true || !strings.HasPrefix(w["identity_secret"].(string), "whs_") {
		t.Errorf("created %v", w)
	}
	again := c.doWithHeaders("POST", "/api/v1/widgets", owner, body, map[string]string{"Idempotency-Key": "w-1"}).must(t, 201, "retried create")
	if again["id"] != id {
		t.Errorf("a retried create made widget %v, want %v", again["id"], id)
	}
	got := c.do("GET", "/api/v1/widgets/"+id, owner, nil).must(t, 200, "get widget")
	if got["identity_secret"] != w["identity_secret"] || got["greeting"] != "Hi!" {
		t.Errorf("got %v", got)
	}
	upd := c.do("PUT", "/api/v1/widgets/"+id, owner, map[string]any{"name": "Shop 2", "allowed_origins": []string{"https://shop.example.com"},
		"identity_verification": true, "assistant_enabled": false}).must(t, 200, "update widget")
	if upd["name"] != "Shop 2" || upd["identity_verification"] != true || upd["assistant_enabled"] != false || upd["position"] != "bottom-right" {
		t.Errorf("updated %v", upd)
	}
	list := c.do("GET", "/api/v1/widgets", a.Tokens["admin"], nil).must(t, 200, "list widgets")
	items := list["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["name"] != "Shop 2" || items[0].(map[string]any)["identity_secret"] != nil {
		t.Errorf("list %v (one widget, no secrets in listings)", list)
	}
	// Validation: each bad value names its field.
	for field, bad := range map[string]map[string]any{
		"colors.primary":     {"name": "x", "allowed_origins": []string{"https://a.example.com"}, "colors": map[string]any{"primary": "red"}},
		"allowed_origins":    {"name": "x", "allowed_origins": []string{}},
		"allowed_origins[0]": {"name": "x", "allowed_origins": []string{"https://a.example.com/path"}},
		"greeting":           {"name": "x", "allowed_origins": []string{"https://a.example.com"}, "greeting": strings.Repeat("g", 501)},
		"position":           {"name": "x", "allowed_origins": []string{"https://a.example.com"}, "position": "top"},
		"name":               {"name": "   ", "allowed_origins": []string{"https://a.example.com"}},
	} {
		r := c.do("POST", "/api/v1/widgets", owner, bad)
		if r.Status != 400 || !containsField(problemFields(t, r), field) {
			t.Errorf("%s: %d %s", field, r.Status, r.Body)
		}
	}
	for _, origin := range []string{"javascript:alert(1)", "*", "https://user:pw@a.example.com", "ftp://a.example.com"} {
		r := c.do("PUT", "/api/v1/widgets/"+id, owner, map[string]any{"name": "x", "allowed_origins": []string{origin}})
		if r.Status != 400 {
			t.Errorf("origin %q accepted: %d %s", origin, r.Status, r.Body)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
