package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// Upcaster turns the JSON payload of one schema version into the next version's. It is pure.
type Upcaster func(payload json.RawMessage) (json.RawMessage, error)

// EventDef registers one event type: its stable name, its current schema version, how to make an
// empty value of it, and an upcaster from each older version v to v+1.
type EventDef struct {
	Type      string
	Version   int
	New       func() Event
	Upcasters map[int]Upcaster
}

// Registry knows every event type: it encodes events into payloads and decodes stored envelopes,
// upcasting old schema versions to the current one on the way.
type Registry struct {
	defs map[string]EventDef
}

// NewRegistry builds a registry from definitions, checking that each is complete: a unique type
// name, a version of at least 1, a constructor whose EventType matches, and an upcaster for every
// older version.
func NewRegistry(defs ...EventDef) (*Registry, error) {
	r := &Registry{defs: make(map[string]EventDef, len(defs))}
	var errs []error
	for _, d := range defs {
		switch {
		case d.Type == "":
			errs = append(errs, errors.New("event definition without a type"))
			continue
		case d.Version < 1:
			errs = append(errs, fmt.Errorf("event %q: version must be at least 1", d.Type))
		case d.New == nil:
			errs = append(errs, fmt.Errorf("event %q: no constructor", d.Type))
			continue
		}
		if got := d.New().EventType(); got != d.Type {
			errs = append(errs, fmt.Errorf("event %q: constructor makes an event of type %q", d.Type, got))
		}
		if _, dup := r.defs[d.Type]; dup {
			errs = append(errs, fmt.Errorf("event %q registered twice", d.Type))
		}
		for v := 1; v < d.Version; v++ {
			if d.Upcasters[v] == nil {
				errs = append(errs, fmt.Errorf("event %q: no upcaster from version %d to %d", d.Type, v, v+1))
			}
		}
		r.defs[d.Type] = d
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// Types returns every registered event type with its current version.
func (r *Registry) Types() map[string]int {
	out := make(map[string]int, len(r.defs))
	for t, d := range r.defs {
		out[t] = d.Version
	}
	return out
}

// Encode returns the stored type name, current schema version and JSON payload of an event.
func (r *Registry) Encode(e Event) (typ string, version int, payload json.RawMessage, err error) {
	d, ok := r.defs[e.EventType()]
	if !ok {
		return "", 0, nil, fmt.Errorf("encode event: unknown event type %q", e.EventType())
	}
	b, err := json.Marshal(e)
	if err != nil {
		return "", 0, nil, fmt.Errorf("encode event %q: %w", d.Type, err)
	}
	return d.Type, d.Version, b, nil
}

// Upcast returns the payload of a stored event brought to the type's current schema version.
func (r *Registry) Upcast(typ string, version int, payload json.RawMessage) (json.RawMessage, error) {
	d, ok := r.defs[typ]
	if !ok {
		return nil, Errorf(EINVALID, "unknown event type %q", typ)
	}
	if version < 1 || version > d.Version {
		return nil, Errorf(EINVALID, "event %q: unsupported schema version %d (current is %d)", typ, version, d.Version)
	}
	for v := version; v < d.Version; v++ {
		next, err := d.Upcasters[v](payload)
		if err != nil {
			return nil, fmt.Errorf("upcast event %q from version %d: %w", typ, v, err)
		}
		payload = next
	}
	return payload, nil
}

// Decode returns the typed event of a stored envelope, upcast to its current schema version. An
// unknown type or version is an EINVALID error.
func (r *Registry) Decode(env Envelope) (Event, error) {
	payload, err := r.Upcast(env.Type, env.SchemaVersion, env.Payload)
	if err != nil {
		return nil, err
	}
	e := r.defs[env.Type].New()
	if reflect.ValueOf(e).Kind() != reflect.Pointer {
		return nil, fmt.Errorf("decode event %q: constructor must return a pointer", env.Type)
	}
	if err := json.Unmarshal(payload, e); err != nil {
		return nil, &Error{Code: EINVALID, Message: fmt.Sprintf("event %q: malformed payload", env.Type), Err: err}
	}
	return e, nil
}
