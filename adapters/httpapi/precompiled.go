package httpapi

import (
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/pb33f/jsonschema/v6"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/helpers"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"
)

// requestCheck is what a request to one operation must satisfy, compiled once from the OpenAPI
// document when the server starts: the JSON Schema of the JSON body and of each path, query and
// header parameter, compiled by libopenapi-validator's own CompileSchemaForValidation (the same
// pb33f/jsonschema schemas, with the same OpenAPI vocabulary and format assertions, that
// ValidateHttpRequestSyncWithPathItem compiles for them), so the document stays the single source
// of truth.
//
// A check only ever accepts: it answers true when the request certainly passes the validator
// (every rule the validator applies to the operation is checked here, and anything this check
// does not understand, such as a percent-encoded path segment, a reserved character or a
// repeated query parameter, counts as "not sure"). Otherwise Server.validate runs the full
// validator, whose findings give the 400 answer exactly as before. So a valid request, the
// common case, skips the validator's per-request work (route finding, schema hashing for its
// cache look-up, path regular expressions, options and error bookkeeping), and an invalid one
// is answered, naming the field, by the validator itself.
//
// Operations whose parameters use a shape this check does not model (cookies, content-encoded
// or non-scalar parameters, styles other than the default, enums other than on strings in the
// query) have no check: every request to them goes to the validator.
type requestCheck struct {
	segments []pathSegment
	query    []paramCheck
	headers  []paramCheck
	body     *jsonschema.Schema // nil when the operation has no JSON body schema
	// simpleBody, when not nil, checks the body in place of body (see simpleObject).
	simpleBody *simpleObject
}

// pathSegment is one segment of the path template: a literal, or a whole-segment parameter.
type pathSegment struct {
	literal string
	param   *paramCheck
}

// paramCheck is one parameter's compiled schema.
type paramCheck struct {
	name     string
	required bool
	integer  bool // the value is read as an integer (helpers.ParseInteger), else as a string
	enum     bool // the schema has an enum (only query strings); the value must not need trimming
	schema   *jsonschema.Schema
	// simple, when not nil, checks a string value in place of schema (see simpleString).
	simple *simpleString
}

// compileRequestCheck compiles the check of method on pathItem. It returns nil, meaning "always
// use the validator", when the operation has a shape the check does not model.
func compileRequestCheck(doc *v3.Document, path, method string, pathItem *v3.PathItem, opts *config.ValidationOptions) *requestCheck {
	op := operationOf(pathItem, method)
	if op == nil {
		return nil
	}
	c := &requestCheck{}
	pathParams := map[string]*paramCheck{}
	params := append(append([]*v3.Parameter{}, pathItem.Parameters...), op.Parameters...)
	for _, p := range params {
		if p == nil || p.Schema == nil || orderedmap.Len(p.Content) > 0 {
			return nil
		}
		sch := p.Schema.Schema()
		if sch == nil || len(sch.Type) != 1 {
			return nil
		}
		pc := &paramCheck{name: p.Name, required: p.Required != nil && *p.Required}
		typ := sch.Type[0]
		switch p.In {
		case helpers.Path:
			if typ != helpers.String || sch.Enum != nil || (p.Style != "" && p.Style != "simple") {
				return nil
			}
		case helpers.Header:
			if typ != helpers.String || sch.Enum != nil || (p.Style != "" && p.Style != "simple") {
				return nil
			}
		case helpers.Query:
			if (typ != helpers.String && typ != helpers.Integer) || (sch.Enum != nil && typ != helpers.String) ||
				(p.Style != "" && p.Style != helpers.Form) || p.AllowReserved || !isUnreserved(p.Name) {
				return nil
			}
			pc.integer = typ == helpers.Integer
			pc.enum = sch.Enum != nil
		default:
			return nil // cookies
		}
		compiled, err := schema_validation.CompileSchemaForValidation(sch, schema_validation.SchemaValidationPurposeGeneric, opts, parameterVersion(sch))
		if err != nil || compiled == nil || compiled.CompiledSchema == nil {
			return nil
		}
		pc.schema = compiled.CompiledSchema
		if typ == helpers.String && sch.Enum == nil {
			pc.simple = simpleStringOf(sch)
		}
		switch p.In {
		case helpers.Path:
			pathParams[p.Name] = pc
		case helpers.Header:
			c.headers = append(c.headers, *pc)
		case helpers.Query:
			c.query = append(c.query, *pc)
		}
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" {
			continue
		}
		if strings.ContainsAny(seg, "{}") {
			inner, opened := strings.CutPrefix(seg, "{")
			name, closed := strings.CutSuffix(inner, "}")
			if !opened || !closed || pathParams[name] == nil {
				return nil
			}
			c.segments = append(c.segments, pathSegment{param: pathParams[name]})
			continue
		}
		c.segments = append(c.segments, pathSegment{literal: seg})
	}
	if op.RequestBody != nil {
		mt, ok := op.RequestBody.Content.Get("application/json")
		if !ok || mt.Schema == nil {
			return nil
		}
		sch := mt.Schema.Schema()
		if sch == nil {
			return nil
		}
		compiled, err := schema_validation.CompileSchemaForValidation(sch, schema_validation.SchemaValidationPurposeRequestBody, opts,
			helpers.VersionToFloat(doc.Version))
		if err != nil || compiled == nil || compiled.CompiledSchema == nil {
			return nil
		}
		c.body = compiled.CompiledSchema
		c.simpleBody = simpleObjectOf(sch)
	}
	return c
}

// parameterVersion is the OpenAPI version a parameter schema is compiled with, as the validator
// chooses it (3.1 when the document does not say).
func parameterVersion(sch *base.Schema) float32 {
	if low := sch.GoLow(); low != nil {
		if idx := low.GetIndex(); idx != nil {
			if v, ok := idx.ResolveDocumentVersion(); ok {
				return v
			}
		}
	}
	return 3.1
}

func operationOf(item *v3.PathItem, method string) *v3.Operation {
	switch method {
	case http.MethodGet:
		return item.Get
	case http.MethodPost:
		return item.Post
	case http.MethodPut:
		return item.Put
	case http.MethodPatch:
		return item.Patch
	case http.MethodDelete:
		return item.Delete
	}
	return nil
}

// reservedInQuery is the validator's test for a reserved character in a query value that is not
// allowReserved.
var reservedInQuery = regexp.MustCompile(`[:\/\?#\[\]\@!\$&'\(\)\*\+,;=]`)

// passes reports whether r certainly passes the validator; decoded is the request's JSON body
// when isJSON (the operation has a body schema and the body decoded). False means "not sure":
// ask the validator.
func (c *requestCheck) passes(r *http.Request, decoded any, isJSON bool) bool {
	return c.pathPasses(r) && c.headersPass(r) && c.queryPasses(r) && c.bodyPasses(r, decoded, isJSON)
}

// passesRaw is passes for a request whose body is not decoded yet: it answers true only for an
// operation whose body is a simpleObject and a body of plain strings (simpleObject.passesRaw).
func (c *requestCheck) passesRaw(r *http.Request, body []byte) bool {
	return c.simpleBody != nil && c.simpleBody.passesRaw(body) && c.mediaTypePasses(r) &&
		c.pathPasses(r) && c.headersPass(r) && c.queryPasses(r)
}

func (c *requestCheck) pathPasses(r *http.Request) bool {
	if r.URL.Fragment != "" {
		return false
	}
	rest := r.URL.EscapedPath()
	for _, seg := range c.segments {
		rest = strings.TrimLeft(rest, "/")
		if rest == "" {
			return false
		}
		value := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			value, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		if seg.param == nil {
			if value != seg.literal {
				return false
			}
			continue
		}
		// Only unreserved characters: the segment is its own decoded value.
		if !isUnreserved(value) || !seg.param.passes(value) {
			return false
		}
	}
	return strings.Trim(rest, "/") == ""
}

func (c *requestCheck) headersPass(r *http.Request) bool {
	for i := range c.headers {
		h := &c.headers[i]
		v := r.Header.Get(h.name)
		if v == "" {
			if h.required {
				return false
			}
			continue
		}
		if !h.passes(v) {
			return false
		}
	}
	return true
}

func (c *requestCheck) queryPasses(r *http.Request) bool {
	raw := r.URL.RawQuery
	var seen uint64 // bit i: c.query[i] was given
	if raw != "" {
		if len(c.query) == 0 || len(c.query) > 64 {
			return false // unknown parameters are left to the validator
		}
		for pair := range strings.SplitSeq(raw, "&") {
			k, v, _ := strings.Cut(pair, "=")
			i := c.queryIndex(k)
			if i < 0 || seen&(1<<i) != 0 || reservedInQuery.MatchString(strings.ReplaceAll(v, "+", " ")) {
				return false
			}
			seen |= 1 << i
			value, err := url.QueryUnescape(v)
			if err != nil {
				return false
			}
			q := &c.query[i]
			if q.enum && strings.TrimSpace(value) != value {
				return false
			}
			if !q.integer {
				if !q.passes(value) {
					return false
				}
				continue
			}
			n, err := helpers.ParseInteger(value)
			if err != nil || q.schema.Validate(n) != nil {
				return false
			}
		}
	}
	for i := range c.query {
		if c.query[i].required && seen&(1<<i) == 0 {
			return false
		}
	}
	return true
}

func (c *requestCheck) queryIndex(name string) int {
	for i := range c.query {
		if c.query[i].name == name {
			return i
		}
	}
	return -1
}

func (c *requestCheck) bodyPasses(r *http.Request, decoded any, isJSON bool) bool {
	if c.body == nil {
		return true
	}
	if !c.mediaTypePasses(r) || !isJSON {
		return false
	}
	if c.simpleBody != nil {
		return c.simpleBody.passes(decoded)
	}
	return c.body.Validate(decoded) == nil
}

// mediaTypePasses reports whether the request's Content-Type is one the validator takes for the
// JSON body: application/json, with at most a charset of utf-8.
func (c *requestCheck) mediaTypePasses(r *http.Request) bool {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json" &&
		(len(params) == 0 || (len(params) == 1 && strings.EqualFold(params["charset"], "utf-8")))
}

// passes reports whether the string value certainly satisfies the parameter's schema.
func (p *paramCheck) passes(value string) bool {
	if p.simple != nil {
		return p.simple.passes(value)
	}
	return p.schema.Validate(value) == nil
}

// isUnreserved reports whether s is non-empty and only has RFC 3986 unreserved characters.
func isUnreserved(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}
