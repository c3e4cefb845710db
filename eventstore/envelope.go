package eventstore

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/metachat/metachat/domain"
)

// MaxAppendEvents bounds the events of one Append: nats-server's default maximum atomic batch.
const MaxAppendEvents = 1000

// prepareAppend validates an append and returns the envelopes as they will be stored, with the
// aggregate fields set from agg and a missing OccurredAt set to now, and their encoded bodies.
func prepareAppend(agg domain.AggregateRef, events []domain.Envelope, now func() time.Time) ([]domain.Envelope, [][]byte, error) {
	if err := agg.Validate(); err != nil {
		return nil, nil, err
	}
	switch {
	case len(events) == 0:
		return nil, nil, domain.Invalid("No events to append.", domain.FieldError{Field: "events", Message: "must not be empty"})
	case len(events) > MaxAppendEvents:
		return nil, nil, domain.Errorf(domain.ETOOLARGE, "At most %d events can be appended at once.", MaxAppendEvents)
	}
	var fields []domain.FieldError
	bad := func(i int, field, msg string) {
		fields = append(fields, domain.FieldError{Field: fmt.Sprintf("events[%d].%s", i, field), Message: msg})
	}
	ids := make(map[string]int, len(events))
	out := make([]domain.Envelope, len(events))
	bodies := make([][]byte, len(events))
	for i, e := range events {
		if e.ID == "" {
			bad(i, "id", "must not be empty")
		} else if j, dup := ids[e.ID]; dup {
			bad(i, "id", fmt.Sprintf("repeats the id of events[%d]", j))
		} else {
			ids[e.ID] = i
		}
		if e.Type == "" {
			bad(i, "type", "must not be empty")
		}
		if e.SchemaVersion < 1 {
			bad(i, "schema_version", "must be at least 1")
		}
		for _, f := range []struct{ name, got, want string }{
			{"tenant_id", e.TenantID, agg.TenantID},
			{"aggregate_type", e.AggregateType, agg.Type},
			{"aggregate_id", e.AggregateID, agg.ID},
		} {
			if f.got != "" && f.got != f.want {
				bad(i, f.name, fmt.Sprintf("is %q but the events are appended to %s", f.got, agg))
			}
		}
		e.TenantID, e.AggregateType, e.AggregateID = agg.TenantID, agg.Type, agg.ID
		if e.OccurredAt.IsZero() {
			e.OccurredAt = now()
		}
		e.OccurredAt = e.OccurredAt.UTC()
		e.Sequence = 0
		if len(e.Payload) == 0 {
			e.Payload = json.RawMessage("null")
		}
		body, err := encodeEnvelope(e)
		if err != nil {
			bad(i, "payload", "must be valid JSON")
			continue
		}
		out[i], bodies[i] = e, body
	}
	if len(fields) > 0 {
		return nil, nil, domain.Invalid("Invalid events.", fields...)
	}
	return out, bodies, nil
}

// DecodeMsg returns the envelope stored as data at stream sequence seq on subject. The body must be
// a JSON envelope with an ID, a Type, a SchemaVersion of at least 1 and a valid aggregate matching
// the subject's last three tokens (the subject is not checked when empty); otherwise DecodeMsg
// returns an EINVALID error.
func DecodeMsg(subject string, data []byte, seq uint64) (domain.Envelope, error) {
	env, err := decodeEnvelopeJSON(data)
	if err != nil {
		return domain.Envelope{}, &domain.Error{
			Code:    domain.EINVALID,
			Message: fmt.Sprintf("Malformed stored event at sequence %d.", seq),
			Err:     fmt.Errorf("decode event body at sequence %d on %q: %w", seq, subject, err),
		}
	}
	malformed := func(why string) error {
		return domain.Errorf(domain.EINVALID, "Malformed stored event at sequence %d: %s.", seq, why)
	}
	switch {
	case env.ID == "":
		return domain.Envelope{}, malformed("no id")
	case env.Type == "":
		return domain.Envelope{}, malformed("no type")
	case env.SchemaVersion < 1:
		return domain.Envelope{}, malformed("schema version below 1")
	}
	if err := env.Aggregate().Validate(); err != nil {
		return domain.Envelope{}, malformed("invalid aggregate " + env.Aggregate().String())
	}
	if subject != "" {
		ref, err := aggregateOfSubject(subject)
		if err != nil {
			return domain.Envelope{}, malformed(err.Error())
		}
		if ref != env.Aggregate() {
			return domain.Envelope{}, malformed(fmt.Sprintf("aggregate %s stored on subject %q", env.Aggregate(), subject))
		}
	}
	env.Sequence = seq
	return env, nil
}

// sameEvents reports whether stored holds, from its start, events with the ids of appended, in
// order: the sign that appended was stored before by an earlier attempt of the same append.
func sameEvents(stored, appended []domain.Envelope) bool {
	if len(stored) < len(appended) {
		return false
	}
	for i, e := range appended {
		if stored[i].ID != e.ID {
			return false
		}
	}
	return true
}
