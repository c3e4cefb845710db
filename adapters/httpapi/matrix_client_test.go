package httpapi_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
)

// client talks to a running API over real HTTP.
type client struct {
	t    *testing.T
	base string
	http *http.Client
}

// response is one answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// with returns a copy of the client that reports failures to t (for subtests).
func (c *client) with(t *testing.T) *client {
	cp := *c
	cp.t = t
	return &cp
}

// do sends a request. body is nil, raw []byte, or a value encoded as JSON.
func (c *client) do(method, path, token string, body any) response {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
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

// json decodes the body into a map.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
	return m
}

// must checks the status and returns the decoded body.
func (r response) must(t *testing.T, status int, what string) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.Status, status, r.Body)
	}
	if len(r.Body) == 0 {
		return nil
	}
	return r.json(t)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freshEmail() string { return "user-" + randomHex(6) + "@example.com" }

// tenant is one signed-up tenant with a credential for every role.
type tenant struct {
	ID     string
	Tokens map[string]string // role → bearer credential (owner, admin, agent, api_key)
}

// signUp creates a tenant through the API, then an admin and an agent (logged in) and an API key.
func signUp(c *client) *tenant {
	c.t.Helper()
	t := c.t
	pw := "correct-horse-battery-" + randomHex(4)
	m := c.do("POST", "/api/v1/signup", "", map[string]any{"tenant_name": "Tenant " + randomHex(3), "email": freshEmail(), "password": pw}).must(t, 201, "signup")
	tn := &tenant{ID: m["tenant_id"].(string), Tokens: map[string]string{"owner": m["access_token"].(string)}}
	for _, role := range []string{"admin", "agent"} {
		email := freshEmail()
		c.do("POST", "/api/v1/users", tn.Tokens["owner"], map[string]any{"email": email, "role": role, "password": pw}).must(t, 201, "invite "+role)
		login := c.do("POST", "/api/v1/auth/login", "", map[string]any{"email": email, "password": pw}).must(t, 200, "login "+role)
		tn.Tokens[role] = login["access_token"].(string)
	}
	k := c.do("POST", "/api/v1/api-keys", tn.Tokens["owner"], map[string]any{"name": "matrix"}).must(t, 201, "create api key")
	tn.Tokens["api_key"] = k["key"].(string)
	return tn
}

// resourceMakers create a fresh resource of a tenant for each kind of path parameter, and return
// its id. A route with a path parameter missing here fails the matrices: add its maker.
func resourceMakers(c *client, tn *tenant) map[string]func() string {
	t := c.t
	owner := tn.Tokens["owner"]
	return map[string]func() string{
		"conversation_id": func() string {
			m := c.do("POST", "/api/v1/conversations", owner, map[string]any{"channel": "api", "contact": map[string]any{"external_id": "c-" + randomHex(4), "name": "Matrix Contact"}}).must(t, 201, "create conversation")
			return m["id"].(string)
		},
		"user_id": func() string {
			m := c.do("POST", "/api/v1/users", owner, map[string]any{"email": freshEmail(), "role": "agent", "password": "temporary-password-1"}).must(t, 201, "invite user")
			return m["id"].(string)
		},
		"widget_id": func() string {
			m := c.do("POST", "/api/v1/widgets", owner, map[string]any{"name": "Widget " + randomHex(3), "allowed_origins": []string{"https://shop.example.com"}}).must(t, 201, "create widget")
			return m["id"].(string)
		},
		"document_id": func() string {
			m := c.upload(owner, "doc-"+randomHex(4)+".txt", "", []byte("Matrix document "+randomHex(8)+"\n\nSome text to index.")).must(t, 202, "upload document")
			return m["id"].(string)
		},
		"key_id": func() string {
			m := c.do("POST", "/api/v1/api-keys", owner, map[string]any{"name": "target " + randomHex(3)}).must(t, 201, "create api key")
			return m["id"].(string)
		},
	}
}

// op is one operation of the served OpenAPI document.
type op struct {
	Method, Path string
	ID           string
	Roles        map[string]bool
	PathParams   []string
	Body         map[string]any // the resolved request body schema, nil when none
	Example      map[string]any // the request body example
	// RequiredQuery is set when the operation needs a query parameter (a search, not a list).
	RequiredQuery bool
}

func (o op) String() string { return o.Method + " " + o.Path }

// public reports whether the operation needs no credential.
func (o op) public() bool { return o.Roles["public"] }

// loadOps fetches /api/v1/openapi.json from the running server and lists its operations.
func loadOps(c *client) ([]op, map[string]any) {
	c.t.Helper()
	doc := c.do("GET", "/api/v1/openapi.json", "", nil).must(c.t, 200, "openapi.json")
	var ops []op
	for path, item := range doc["paths"].(map[string]any) {
		for method, def := range item.(map[string]any) {
			spec, ok := def.(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			o := op{Method: strings.ToUpper(method), Path: path, Roles: map[string]bool{}}
			o.ID, _ = spec["operationId"].(string)
			for _, r := range spec["x-roles"].([]any) {
				o.Roles[r.(string)] = true
			}
			for _, prm := range asSlice(spec["parameters"]) {
				pm := resolve(doc, prm.(map[string]any))
				if pm["in"] == "query" && pm["required"] == true {
					o.RequiredQuery = true
				}
			}
			for _, seg := range strings.Split(path, "/") {
				if strings.HasPrefix(seg, "{") {
					o.PathParams = append(o.PathParams, strings.Trim(seg, "{}"))
				}
			}
			if rb, ok := spec["requestBody"].(map[string]any); ok {
				if _, multipart := rb["content"].(map[string]any)["multipart/form-data"]; multipart {
					// Uploads are validated by hand (validateMultipart) and tested in their own
					// tests; the matrices send them without a body.
					ops = append(ops, o)
					continue
				}
				schema := rb["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
				o.Body = resolve(doc, schema)
				if ex, ok := o.Body["example"].(map[string]any); ok {
					o.Example = ex
				}
			}
			ops = append(ops, o)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].String() < ops[j].String() })
	return ops, doc
}

// resolve follows a local $ref.
func resolve(doc map[string]any, schema map[string]any) map[string]any {
	for {
		ref, ok := schema["$ref"].(string)
		if !ok {
			return schema
		}
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		schema = cur.(map[string]any)
	}
}

// fill replaces path parameters with ids.
func fill(path string, ids map[string]string) string {
	for k, v := range ids {
		path = strings.ReplaceAll(path, "{"+k+"}", v)
	}
	return path
}

// exampleBody returns a fresh copy of an operation's example with unique emails and message ids,
// so it can be sent many times.
func exampleBody(t *testing.T, o op) map[string]any {
	t.Helper()
	if o.Body == nil {
		return nil
	}
	if o.Example == nil {
		t.Fatalf("%s has a request body without an example in the OpenAPI document", o)
	}
	b, _ := json.Marshal(o.Example)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	if _, ok := out["email"]; ok {
		out["email"] = freshEmail()
	}
	if _, ok := out["client_message_id"]; ok {
		out["client_message_id"] = "m-" + randomHex(6)
	}
	return out
}

// problemFields returns the field names of a problem+json answer.
func problemFields(t *testing.T, r response) []string {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("content type %q, want application/problem+json: %s", ct, r.Body)
		return nil
	}
	var p struct {
		Status int `json:"status"`
		Errors []struct {
			Field string `json:"field"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Errorf("problem body %q: %v", r.Body, err)
	}
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	return out
}

func containsField(fields []string, f string) bool {
	for _, x := range fields {
		if x == f {
			return true
		}
	}
	return false
}

var _ = fmt.Sprint
