package eventstore

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/metachat/metachat/domain"
)

// The envelope codec: every event is encoded on append and decoded again by each reader, so the
// general reflection-driven encoding/json was a measurable part of a send's CPU. These two functions
// handle the envelope's one shape directly and return ok false for anything unusual (an escape in a
// key or value, an unknown or repeated key, a payload that is not compact, …); the caller then uses
// encoding/json. Their contract, held by FuzzEnvelopeCodec against encoding/json itself:
//   - appendEnvelope writes exactly the bytes json.Marshal writes for the envelope;
//   - decodeEnvelope accepts only input json.Unmarshal accepts, and returns what it returns.

// maxJSONDepth is encoding/json's nesting limit; deeper input is left to it (it refuses it).
const maxJSONDepth = 10000

// appendEnvelope appends e encoded as json.Marshal encodes it, or returns ok false when e has
// something the fast path does not write the same way (then nothing is appended).
func appendEnvelope(dst []byte, e domain.Envelope) (out []byte, ok bool) {
	if !plainString(e.ID) || !plainString(e.Type) || !plainString(e.TenantID) ||
		!plainString(e.AggregateType) || !plainString(e.AggregateID) || !plainString(e.Actor.Type) ||
		!plainString(e.Actor.ID) || !plainString(e.CorrelationID) || !plainString(e.CausationID) {
		return dst, false
	}
	if y := e.OccurredAt.Year(); y < 0 || y > 9999 {
		return dst, false
	}
	if _, offset := e.OccurredAt.Zone(); offset != 0 {
		return dst, false
	}
	if end, canonical := scanJSON(e.Payload, 0, 0); end != len(e.Payload) || !canonical {
		return dst, false
	}
	dst = append(dst, `{"id":"`...)
	dst = append(dst, e.ID...)
	dst = append(dst, `","type":"`...)
	dst = append(dst, e.Type...)
	dst = append(dst, `","schema_version":`...)
	dst = strconv.AppendInt(dst, int64(e.SchemaVersion), 10)
	dst = append(dst, `,"tenant_id":"`...)
	dst = append(dst, e.TenantID...)
	dst = append(dst, `","aggregate_type":"`...)
	dst = append(dst, e.AggregateType...)
	dst = append(dst, `","aggregate_id":"`...)
	dst = append(dst, e.AggregateID...)
	dst = append(dst, `","occurred_at":"`...)
	dst = e.OccurredAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","actor":{"type":"`...)
	dst = append(dst, e.Actor.Type...)
	if e.Actor.ID != "" {
		dst = append(dst, `","id":"`...)
		dst = append(dst, e.Actor.ID...)
	}
	dst = append(dst, `"}`...)
	if e.CorrelationID != "" {
		dst = append(dst, `,"correlation_id":"`...)
		dst = append(dst, e.CorrelationID...)
		dst = append(dst, '"')
	}
	if e.CausationID != "" {
		dst = append(dst, `,"causation_id":"`...)
		dst = append(dst, e.CausationID...)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"payload":`...)
	dst = append(dst, e.Payload...)
	return append(dst, '}'), true
}

// plainString reports whether json.Marshal writes s between quotes unchanged: printable ASCII
// without '"', '\\' and the characters it escapes for HTML.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// encodeEnvelope returns e's JSON body, through appendEnvelope when it can.
func encodeEnvelope(e domain.Envelope) ([]byte, error) {
	if b, ok := appendEnvelope(make([]byte, 0, 256+len(e.Payload)), e); ok {
		return b, nil
	}
	return json.Marshal(e)
}

// decodeEnvelopeJSON decodes an envelope body, through decodeEnvelope when it can.
func decodeEnvelopeJSON(data []byte) (domain.Envelope, error) {
	if env, ok := decodeEnvelope(data); ok {
		return env, nil
	}
	var env domain.Envelope
	err := json.Unmarshal(data, &env)
	return env, err
}

// envelope keys seen, for refusing repeats (encoding/json merges a repeated object into the first).
const (
	keyID = 1 << iota
	keyType
	keySchemaVersion
	keyTenantID
	keyAggregateType
	keyAggregateID
	keyOccurredAt
	keyActor
	keyCorrelationID
	keyCausationID
	keyPayload
)

// decodeEnvelope decodes data as json.Unmarshal would into a domain.Envelope, or returns ok false
// when data has anything it leaves to encoding/json: invalid JSON, an unknown, repeated or escaped
// key, a null, an escaped string, a value of another type than the field's.
func decodeEnvelope(data []byte) (env domain.Envelope, ok bool) {
	seen := 0
	ok = wholeObject(data, func(key string, i int) (int, bool) {
		var (
			bit  int
			next int
			ok   bool
		)
		switch key {
		case "id":
			bit = keyID
			env.ID, next, ok = plainStringAt(data, i)
		case "type":
			bit = keyType
			env.Type, next, ok = plainStringAt(data, i)
		case "schema_version":
			bit = keySchemaVersion
			var n int64
			n, next, ok = integerAt(data, i, true)
			env.SchemaVersion = int(n)
		case "tenant_id":
			bit = keyTenantID
			env.TenantID, next, ok = plainStringAt(data, i)
		case "aggregate_type":
			bit = keyAggregateType
			env.AggregateType, next, ok = plainStringAt(data, i)
		case "aggregate_id":
			bit = keyAggregateID
			env.AggregateID, next, ok = plainStringAt(data, i)
		case "occurred_at":
			bit = keyOccurredAt
			env.OccurredAt, next, ok = timeValue(data, i)
		case "actor":
			bit = keyActor
			env.Actor, next, ok = actorValue(data, i)
		case "correlation_id":
			bit = keyCorrelationID
			env.CorrelationID, next, ok = plainStringAt(data, i)
		case "causation_id":
			bit = keyCausationID
			env.CausationID, next, ok = plainStringAt(data, i)
		case "payload":
			bit = keyPayload
			next, _ = scanJSON(data, i, 1) // inside the envelope: one level down
			if ok = next > i; ok {
				env.Payload = json.RawMessage(append([]byte(nil), data[i:next]...))
			}
		}
		if !ok || seen&bit != 0 {
			return i, false
		}
		seen |= bit
		return next, true
	})
	if !ok {
		return domain.Envelope{}, false
	}
	return env, true
}

// wholeObject reports whether data is, between optional whitespace, one JSON object whose keys
// are plain strings (plainStringAt) and whose values member reads: member gets each key and the
// index of its value, and returns the index after the value, or false to refuse the object.
func wholeObject(data []byte, member func(key string, i int) (next int, ok bool)) bool {
	end, ok := objectAt(data, skipSpace(data, 0), member)
	return ok && skipSpace(data, end) == len(data)
}

// objectAt reads the JSON object at data[i] as wholeObject does and returns the index after it.
func objectAt(data []byte, i int, member func(key string, i int) (next int, ok bool)) (int, bool) {
	if i >= len(data) || data[i] != '{' {
		return i, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return i + 1, true
	}
	for {
		key, next, ok := plainStringAt(data, i)
		if !ok {
			return i, false
		}
		i = skipSpace(data, next)
		if i >= len(data) || data[i] != ':' {
			return i, false
		}
		if i, ok = member(key, skipSpace(data, i+1)); !ok {
			return i, false
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return i, false
		}
		if data[i] == '}' {
			return i + 1, true
		}
		if data[i] != ',' {
			return i, false
		}
		i = skipSpace(data, i+1)
	}
}

// skipSpace returns the index of the first byte at or after i that is not JSON whitespace.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// plainStringAt reads the JSON string at i when it has no escape and is valid UTF-8 (so it decodes
// to its bytes), returning it and the index after its closing quote.
func plainStringAt(data []byte, i int) (s string, next int, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return "", i, false
	}
	ascii := true
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			raw := data[i+1 : j]
			if !ascii && !utf8.Valid(raw) {
				return "", i, false
			}
			return string(raw), j + 1, true
		case c == '\\' || c < 0x20:
			return "", i, false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", i, false
}

// integerAt reads a JSON integer (no fraction or exponent; a sign only when signed) that fits an
// int or, unsigned, a uint64 (returned as its bits in the int64).
func integerAt(data []byte, i int, signed bool) (int64, int, bool) {
	if i >= len(data) {
		return 0, i, false
	}
	end := scanNumber(data, i)
	span := data[i:end]
	if end == i || bytes.ContainsAny(span, ".eE") || (!signed && span[0] == '-') {
		return 0, i, false
	}
	if signed {
		n, err := strconv.ParseInt(string(span), 10, strconv.IntSize)
		return n, end, err == nil
	}
	n, err := strconv.ParseUint(string(span), 10, 64)
	return int64(n), end, err == nil
}

// timeValue reads a time field's value the way encoding/json does: time.Time's UnmarshalJSON on
// the quoted string.
func timeValue(data []byte, i int) (time.Time, int, bool) {
	_, next, ok := plainStringAt(data, i)
	if !ok {
		return time.Time{}, i, false
	}
	var t time.Time
	if err := t.UnmarshalJSON(data[i:next]); err != nil {
		return time.Time{}, i, false
	}
	return t, next, true
}

// actorValue reads the actor object: keys type and id, each at most once.
func actorValue(data []byte, i int) (a domain.Actor, next int, ok bool) {
	var seenType, seenID bool
	next, ok = objectAt(data, i, func(key string, i int) (int, bool) {
		v, next, ok := plainStringAt(data, i)
		switch {
		case !ok:
		case key == "type" && !seenType:
			a.Type, seenType = v, true
		case key == "id" && !seenID:
			a.ID, seenID = v, true
		default:
			ok = false
		}
		return next, ok
	})
	return a, next, ok
}

// scanJSON validates the JSON value starting at data[i] (no leading whitespace) as encoding/json
// does, and returns the index after it, or i when it is invalid or nested deeper than
// encoding/json allows. canonical reports whether the value is written as json.Marshal writes a
// json.RawMessage: no whitespace between tokens, and none of '<', '>', '&', U+2028 and U+2029.
func scanJSON(data []byte, i, depth int) (end int, canonical bool) {
	if i >= len(data) {
		return i, false
	}
	switch c := data[i]; {
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return i, false
		}
		closer, start := byte('}'), i
		if c == '[' {
			closer = ']'
		}
		canonical = true
		j := skipSpace(data, i+1)
		if j != i+1 {
			canonical = false
		}
		if j < len(data) && data[j] == closer {
			return j + 1, canonical
		}
		for {
			if c == '{' {
				if j >= len(data) || data[j] != '"' {
					return start, false
				}
				k, kc := scanString(data, j)
				if k == j {
					return start, false
				}
				m := skipSpace(data, k)
				if m >= len(data) || data[m] != ':' {
					return start, false
				}
				n := skipSpace(data, m+1)
				canonical = canonical && kc && m == k && n == m+1
				j = n
			}
			k, vc := scanJSON(data, j, depth+1)
			if k == j {
				return start, false
			}
			m := skipSpace(data, k)
			canonical = canonical && vc && m == k
			if m >= len(data) {
				return start, false
			}
			if data[m] == closer {
				return m + 1, canonical
			}
			if data[m] != ',' {
				return start, false
			}
			j = skipSpace(data, m+1)
			canonical = canonical && j == m+1
		}
	case c == '"':
		return scanString(data, i)
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(data, i), true
	case c == 't':
		return scanLiteral(data, i, "true"), true
	case c == 'f':
		return scanLiteral(data, i, "false"), true
	case c == 'n':
		return scanLiteral(data, i, "null"), true
	}
	return i, false
}

// scanString validates the string at data[i] (a '"'), returning the index after it (i when
// invalid) and whether json.Marshal's compaction leaves it unchanged.
func scanString(data []byte, i int) (int, bool) {
	canonical := true
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return j + 1, canonical
		case c < 0x20:
			return i, false
		case c == '<' || c == '>' || c == '&':
			canonical = false
		case c == 0xE2 && j+2 < len(data) && data[j+1] == 0x80 && (data[j+2] == 0xA8 || data[j+2] == 0xA9):
			canonical = false
		case c == '\\':
			j++
			if j >= len(data) {
				return i, false
			}
			switch data[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(data) {
					return i, false
				}
				for _, h := range data[j+1 : j+5] {
					if !isHex(h) {
						return i, false
					}
				}
				j += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// scanNumber returns the index after the JSON number at data[i], or i when it is not one.
func scanNumber(data []byte, i int) int {
	j := i
	if data[j] == '-' {
		j++
	}
	switch {
	case j < len(data) && data[j] == '0':
		j++
	case j < len(data) && data[j] >= '1' && data[j] <= '9':
		for j < len(data) && data[j] >= '0' && data[j] <= '9' {
			j++
		}
	default:
		return i
	}
	if j < len(data) && data[j] == '.' {
		j++
		d := j
		for j < len(data) && data[j] >= '0' && data[j] <= '9' {
			j++
		}
		if j == d {
			return i
		}
	}
	if j < len(data) && (data[j] == 'e' || data[j] == 'E') {
		j++
		if j < len(data) && (data[j] == '+' || data[j] == '-') {
			j++
		}
		d := j
		for j < len(data) && data[j] >= '0' && data[j] <= '9' {
			j++
		}
		if j == d {
			return i
		}
	}
	return j
}

// scanLiteral returns the index after lit at data[i], or i when it is not there.
func scanLiteral(data []byte, i int, lit string) int {
	if len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return i
}

// decodePubAck decodes a publish acknowledgement as json.Unmarshal would into a pubAck, or returns
// ok false for anything but the plain success answer (keys stream, seq, duplicate, batch and
// count, each once, without escapes): an error answer, for one, goes to encoding/json.
func decodePubAck(data []byte) (ack pubAck, ok bool) {
	seen := 0
	ok = wholeObject(data, func(key string, i int) (int, bool) {
		var (
			bit, next int
			ok        bool
			n         int64
		)
		switch key {
		case "stream":
			bit = 1
			ack.Stream, next, ok = plainStringAt(data, i)
		case "batch":
			bit = 2
			ack.BatchID, next, ok = plainStringAt(data, i)
		case "seq":
			bit = 4
			n, next, ok = integerAt(data, i, false)
			ack.Sequence = uint64(n)
		case "count":
			bit = 8
			n, next, ok = integerAt(data, i, false)
			ack.Count = uint64(n)
		case "duplicate":
			bit = 16
			switch {
			case scanLiteral(data, i, "true") > i:
				ack.Duplicate, next, ok = true, i+4, true
			case scanLiteral(data, i, "false") > i:
				ack.Duplicate, next, ok = false, i+5, true
			}
		}
		if !ok || seen&bit != 0 {
			return i, false
		}
		seen |= bit
		return next, true
	})
	if !ok {
		return pubAck{}, false
	}
	return ack, true
}
