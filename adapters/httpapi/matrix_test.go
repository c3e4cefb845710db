package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// The matrices below are generated from the OpenAPI document the server serves, so a route added
// later is covered without anyone remembering to: a path parameter without a resource maker, or a
// request body without an example, fails them.

var allRoles = []string{"owner", "admin", "agent", "api_key"}

// TestCrossTenantMatrix: for every route with a path id, tenant B's credentials on tenant A's
// resource get 404 exactly like a missing resource, and A's resource is unchanged; list routes
// never show A's data to B.
func TestCrossTenantMatrix(t *testing.T) {
	c := startAPI(t)
	ops, _ := loadOps(c)
	a, b := signUp(c), signUp(c)
	var aIDs []string
	covered := 0
	for _, o := range ops {
		if len(o.PathParams) == 0 {
			continue
		}
		covered++
		t.Run(o.String(), func(t *testing.T) {
			c := c.with(t)
			makers := resourceMakers(c, a)
			for _, role := range allRoles {
				if !o.Roles[role] {
					continue
				}
				ids := map[string]string{}
				for _, p := range o.PathParams {
					mk, ok := makers[p]
					if !ok {
						t.Fatalf("no resource maker for path parameter %q of %s: add one to resourceMakers", p, o)
					}
					ids[p] = mk()
					aIDs = append(aIDs, ids[p])
				}
				path := fill(o.Path, ids)
				r := c.do(o.Method, path, b.Tokens[role], exampleBody(t, o))
				if r.Status != 404 {
					t.Errorf("%s as tenant B's %s on tenant A's resource: %d, want 404: %s", o, role, r.Status, r.Body)
				}
				problemFields(t, r)
				// The same answer as for a resource that does not exist at all.
				missing := map[string]string{}
				for k := range ids {
					missing[k] = "00000000-0000-4000-8000-" + randomHex(6)
				}
				if m := c.do(o.Method, fill(o.Path, missing), b.Tokens[role], exampleBody(t, o)); m.Status != r.Status {
					t.Errorf("%s: another tenant's resource answers %d, a missing one %d", o, r.Status, m.Status)
				}
				// A's resource is still there for A.
				if get, ok := findOp(ops, "GET", o.Path); ok && get.Roles["owner"] {
					if g := c.do("GET", path, a.Tokens["owner"], nil); g.Status != 200 {
						t.Errorf("after B's %s, A's GET %s answers %d: %s", o, path, g.Status, g.Body)
					}
				}
			}
		})
	}
	if covered == 0 {
		t.Fatal("no route with a path parameter in the document")
	}

	// List routes: B never sees A's ids; A does see them (so the check can fail).
	for _, o := range ops {
		if o.Method != "GET" || len(o.PathParams) > 0 || o.public() || !o.Roles["owner"] || o.RequiredQuery {
			continue
		}
		r := c.do("GET", o.Path+"?limit=200", b.Tokens["owner"], nil)
		if r.Status != 200 {
			t.Errorf("B lists %s: %d %s", o, r.Status, r.Body)
			continue
		}
		for _, id := range aIDs {
			if strings.Contains(string(r.Body), id) {
				t.Errorf("B's %s shows A's %s", o, id)
			}
		}
		ra := c.do("GET", o.Path+"?limit=200", a.Tokens["owner"], nil)
		seen := false
		for _, id := range aIDs {
			seen = seen || strings.Contains(string(ra.Body), id)
		}
		if ra.Status == 200 && strings.Contains(string(ra.Body), `"items"`) && !seen && o.Path != "/api/v1/me" {
			t.Errorf("A's own %s shows none of A's resources: %s", o, ra.Body)
		}
	}
}

func findOp(ops []op, method, path string) (op, bool) {
	for _, o := range ops {
		if o.Method == method && o.Path == path {
			return o, true
		}
	}
	return op{}, false
}

// TestValidationMatrix: for every route with a body, malformed JSON, a wrong type, a missing
// required field and an over-long string each give 400 problem+json naming the field; nothing
// answers 500.
func TestValidationMatrix(t *testing.T) {
	c := startAPI(t)
	ops, doc := loadOps(c)
	a := signUp(c)
	for _, o := range ops {
		if o.Body == nil {
			continue
		}
		t.Run(o.String(), func(t *testing.T) {
			c := c.with(t)
			makers := resourceMakers(c, a)
			token := ""
			if !o.public() {
				token = a.Tokens["owner"]
			}
			ids := map[string]string{}
			for _, p := range o.PathParams {
				ids[p] = makers[p]()
			}
			path := fill(o.Path, ids)
			expect := func(what string, body any, field string) {
				t.Helper()
				r := c.do(o.Method, path, token, body)
				if r.Status != 400 {
					t.Errorf("%s: status %d, want 400: %s", what, r.Status, r.Body)
					return
				}
				if f := problemFields(t, r); !containsField(f, field) {
					t.Errorf("%s: problem names %v, want %q: %s", what, f, field, r.Body)
				}
			}
			expect("malformed JSON", []byte(`{"oops": `), "body")
			expect("not an object", []byte(`["a"]`), "body")
			mutations(t, doc, o.Body, "", func(field, kind string, mutate func(map[string]any)) {
				body := exampleBody(t, o)
				mutate(body)
				expect(kind+" "+field, body, field)
			})
		})
	}
}

// mutations calls fn once per way to break each property of schema (recursing into nested
// objects): a wrong type, a missing required property, an over-long string.
func mutations(t *testing.T, doc, schema map[string]any, prefix string, fn func(field, kind string, mutate func(map[string]any))) {
	props, _ := schema["properties"].(map[string]any)
	required := map[string]bool{}
	for _, r := range asSlice(schema["required"]) {
		required[r.(string)] = true
	}
	for name, ps := range props {
		p := resolve(doc, ps.(map[string]any))
		field := name
		if prefix != "" {
			field = prefix + "." + name
		}
		at := func(body map[string]any) map[string]any { // the object holding the property
			if prefix == "" {
				return body
			}
			cur := body
			for _, part := range strings.Split(prefix, ".") {
				next, ok := cur[part].(map[string]any)
				if !ok {
					next = map[string]any{}
					cur[part] = next
				}
				cur = next
			}
			return cur
		}
		fn(field, "wrong type", func(b map[string]any) { at(b)[name] = wrongValue(p) })
		if required[name] {
			fn(field, "missing", func(b map[string]any) { delete(at(b), name) })
		}
		if ml, ok := p["maxLength"].(float64); ok {
			fn(field, "over-long", func(b map[string]any) { at(b)[name] = strings.Repeat("a", int(ml)+1) })
		}
		if p["type"] == "object" {
			mutations(t, doc, p, field, fn)
		}
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// wrongValue returns a JSON value of a type the schema does not allow.
func wrongValue(schema map[string]any) any {
	switch schema["type"] {
	case "string":
		return 12345
	case "object", "array", "integer", "number":
		return "not-the-right-type"
	case "boolean":
		return "yes"
	}
	return json.RawMessage(`{"unexpected": ["shape"]}`)
}

// TestRoleMatrix: every role against every route, as declared by x-roles: allowed roles are
// never refused for their role, the others get 403; no credential or a forged one gets 401.
func TestRoleMatrix(t *testing.T) {
	c := startAPI(t)
	ops, _ := loadOps(c)
	a := signUp(c)
	for _, o := range ops {
		if o.public() {
			continue
		}
		t.Run(o.String(), func(t *testing.T) {
			c := c.with(t)
			makers := resourceMakers(c, a)
			for _, role := range allRoles {
				ids := map[string]string{}
				for _, p := range o.PathParams {
					ids[p] = makers[p]()
				}
				r := c.do(o.Method, fill(o.Path, ids), a.Tokens[role], exampleBody(t, o))
				switch {
				case r.Status >= 500:
					t.Errorf("%s as %s: %d %s", o, role, r.Status, r.Body)
				case o.Roles[role] && (r.Status == 401 || r.Status == 403 || r.Status == 405):
					t.Errorf("%s as %s (allowed): %d %s", o, role, r.Status, r.Body)
				case o.Roles[role] && r.Status == 404 && strings.Contains(string(r.Body), "No such route"):
					t.Errorf("%s is in the OpenAPI document but not served", o)
				case !o.Roles[role] && r.Status != 403:
					t.Errorf("%s as %s (not allowed): %d, want 403: %s", o, role, r.Status, r.Body)
				}
			}
			for name, token := range map[string]string{"no credential": "", "forged JWT": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "unknown API key": "mck_deadbeef_" + randomHex(16)} {
				ids := map[string]string{}
				for _, p := range o.PathParams {
					ids[p] = "00000000-0000-4000-8000-000000000000"
				}
				if r := c.do(o.Method, fill(o.Path, ids), token, exampleBody(t, o)); r.Status != 401 {
					t.Errorf("%s with %s: %d, want 401: %s", o, name, r.Status, r.Body)
				}
			}
		})
	}
}
