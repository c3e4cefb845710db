package httpapi

import (
	"unicode/utf8"

	"github.com/pb33f/libopenapi/datamodel/high/base"
	"go.yaml.in/yaml/v3"
)

// Most of the contract's parameters and small bodies are plain strings with a length range or a
// uuid format, in an object of such strings. For those, the precompiled check answers without
// the JSON Schema machinery (a few microseconds a request): simpleString and simpleObject are
// recognised from the schema as rendered with its references inlined, and only when every
// keyword in it is one they understand; anything else keeps its compiled schema. Like the rest
// of the check they only ever accept, and FuzzPrecompiledCheck holds their verdicts to the
// validator's.

// uuidPattern is the contract's pattern for ids: exactly what isUUID accepts.
const uuidPattern = `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`

// simpleString is a string schema with at most minLength, maxLength, format uuid and the pattern
// uuidPattern.
type simpleString struct {
	minLen, maxLen int // maxLen < 0: no maximum
	uuid           bool
}

// simpleObject is an object schema whose properties are simpleStrings.
type simpleObject struct {
	props    map[string]*simpleString
	required []string
	closed   bool // additionalProperties: false
}

// annotations are keywords that do not constrain a value.
var annotations = map[string]bool{"description": true, "example": true, "examples": true, "title": true}

// renderedSchema returns the schema rendered inline as a map, or nil.
func renderedSchema(sch *base.Schema) map[string]any {
	if sch == nil {
		return nil
	}
	b, err := sch.RenderInline()
	if err != nil {
		return nil
	}
	var m map[string]any
	if yaml.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// simpleStringOf recognises a simpleString in a schema, or returns nil.
func simpleStringOf(sch *base.Schema) *simpleString {
	return simpleStringFrom(renderedSchema(sch))
}

func simpleStringFrom(m map[string]any) *simpleString {
	if m == nil || !isType(m["type"], "string") {
		return nil
	}
	s := &simpleString{maxLen: -1}
	for k, v := range m {
		switch {
		case k == "type" || annotations[k]:
		case k == "minLength":
			n, ok := v.(int)
			if !ok || n < 0 {
				return nil
			}
			s.minLen = n
		case k == "maxLength":
			n, ok := v.(int)
			if !ok || n < 0 {
				return nil
			}
			s.maxLen = n
		case k == "format" && v == "uuid", k == "pattern" && v == uuidPattern:
			s.uuid = true
		default:
			return nil
		}
	}
	return s
}

// simpleObjectOf recognises a simpleObject in a schema, or returns nil.
func simpleObjectOf(sch *base.Schema) *simpleObject {
	m := renderedSchema(sch)
	if m == nil || !isType(m["type"], "object") {
		return nil
	}
	o := &simpleObject{props: map[string]*simpleString{}}
	for k, v := range m {
		switch {
		case k == "type" || annotations[k]:
		case k == "additionalProperties":
			b, ok := v.(bool)
			if !ok {
				return nil
			}
			o.closed = !b
		case k == "required":
			list, ok := v.([]any)
			if !ok {
				return nil
			}
			for _, r := range list {
				name, ok := r.(string)
				if !ok {
					return nil
				}
				o.required = append(o.required, name)
			}
		case k == "properties":
			props, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			for name, p := range props {
				pm, ok := p.(map[string]any)
				if !ok {
					return nil
				}
				s := simpleStringFrom(pm)
				if s == nil {
					return nil
				}
				o.props[name] = s
			}
		default:
			return nil
		}
	}
	return o
}

// isType reports whether a rendered "type" is exactly want (alone, or as a one-element list).
func isType(v any, want string) bool {
	switch t := v.(type) {
	case string:
		return t == want
	case []any:
		return len(t) == 1 && t[0] == want
	}
	return false
}

// passes reports whether v certainly satisfies the schema.
func (s *simpleString) passes(v string) bool {
	if s.minLen > 0 || s.maxLen >= 0 {
		n := utf8.RuneCountInString(v)
		if n < s.minLen || (s.maxLen >= 0 && n > s.maxLen) {
			return false
		}
	}
	return !s.uuid || isUUID(v)
}

// passes reports whether the decoded JSON value v certainly satisfies the schema.
func (o *simpleObject) passes(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for _, r := range o.required {
		if _, ok := m[r]; !ok {
			return false
		}
	}
	for k, val := range m {
		s := o.props[k]
		if s == nil {
			if o.closed {
				return false
			}
			continue
		}
		str, ok := val.(string)
		if !ok || !s.passes(str) {
			return false
		}
	}
	return true
}

// isUUID reports whether s is a UUID in its 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			switch {
			case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			default:
				return false
			}
		}
	}
	return true
}

// passesRaw reports whether body, a request body not decoded yet, certainly satisfies the schema:
// it must be a JSON object whose keys and values are strings without escapes or control
// characters, in valid UTF-8 (so each decodes to its own bytes), each key once. Anything else is
// "not sure", and the caller decodes the body and checks it the general way.
func (o *simpleObject) passesRaw(body []byte) bool {
	i := skipJSONSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	i = skipJSONSpace(body, i+1)
	var keys [8]string // the keys seen, to refuse a repeat (more keys: not sure)
	n := 0
	if i < len(body) && body[i] == '}' {
		i++
	} else {
		for {
			key, next, ok := rawString(body, i)
			if !ok || n == len(keys) {
				return false
			}
			for _, k := range keys[:n] {
				if k == key {
					return false
				}
			}
			keys[n] = key
			n++
			i = skipJSONSpace(body, next)
			if i >= len(body) || body[i] != ':' {
				return false
			}
			value, next, ok := rawString(body, skipJSONSpace(body, i+1))
			if !ok {
				return false
			}
			if s := o.props[key]; s == nil {
				if o.closed {
					return false
				}
			} else if !s.passes(value) {
				return false
			}
			i = skipJSONSpace(body, next)
			if i >= len(body) {
				return false
			}
			if body[i] == '}' {
				i++
				break
			}
			if body[i] != ',' {
				return false
			}
			i = skipJSONSpace(body, i+1)
		}
	}
	if skipJSONSpace(body, i) != len(body) {
		return false
	}
	for _, r := range o.required {
		found := false
		for _, k := range keys[:n] {
			found = found || k == r
		}
		if !found {
			return false
		}
	}
	return true
}

// skipJSONSpace returns the index of the first byte at or after i that is not JSON whitespace.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// rawString returns the JSON string at b[i] when it has no escape and no control character and
// is valid UTF-8, and the index after it.
func rawString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[i+1 : j]
			if !utf8.Valid(s) {
				return "", i, false
			}
			return string(s), j + 1, true
		case c == '\\' || c < 0x20:
			return "", i, false
		}
	}
	return "", i, false
}
