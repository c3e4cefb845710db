package domain

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Event is a fact that happened to an aggregate. EventType returns its stable, stored type name
// (for example "tenant.created"), which is never derived from the Go type name.
type Event interface {
	EventType() string
}

// Actor is who caused an event.
type Actor struct {
	Type string `json:"type"` // "user", "api_key", "visitor", "system", "bot"
	ID   string `json:"id,omitempty"`
}

// SystemActor is the actor of events caused by Metachat itself.
var SystemActor = Actor{Type: "system"}

// Envelope is the stored form of one event: its identity, where it belongs, who caused it, why, and
// its JSON payload at a given schema version. The body stored in the stream is this struct as JSON;
// Sequence is the stream position and is assigned by the store.
type Envelope struct {
	ID            string          `json:"id"` // UUIDv7; also the Nats-Msg-Id used for de-duplication
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	TenantID      string          `json:"tenant_id"`
	AggregateType string          `json:"aggregate_type"`
	AggregateID   string          `json:"aggregate_id"`
	OccurredAt    time.Time       `json:"occurred_at"`
	Actor         Actor           `json:"actor"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	CausationID   string          `json:"causation_id,omitempty"`
	Payload       json.RawMessage `json:"payload"`

	// Sequence is the event's position in the stream (1, 2, …), set by the store on append and read.
	Sequence uint64 `json:"-"`
}

// Aggregate returns the reference of the aggregate the envelope belongs to.
func (e Envelope) Aggregate() AggregateRef {
	return AggregateRef{TenantID: e.TenantID, Type: e.AggregateType, ID: e.AggregateID}
}

// AggregateRef names one aggregate: the tenant it belongs to, its type and its id. Each aggregate is
// one consistency boundary with its own version.
type AggregateRef struct {
	TenantID string
	Type     string
	ID       string
}

// String returns "tenant/type/id".
func (a AggregateRef) String() string { return a.TenantID + "/" + a.Type + "/" + a.ID }

// maxTokenLen bounds each part of an aggregate reference (they become parts of a stream subject).
const maxTokenLen = 128

// Validate reports whether each part of the reference is a usable token: non-empty, at most 128
// characters of letters, digits, '-' and '_'.
func (a AggregateRef) Validate() error {
	var fields []FieldError
	check := func(name, v string) {
		if msg := tokenProblem(v); msg != "" {
			fields = append(fields, FieldError{Field: name, Message: msg})
		}
	}
	check("tenant_id", a.TenantID)
	check("aggregate_type", a.Type)
	check("aggregate_id", a.ID)
	if len(fields) > 0 {
		return Invalid(fmt.Sprintf("invalid aggregate reference %q", a.String()), fields...)
	}
	return nil
}

// IsUUID reports whether s is a UUID in its canonical textual form (8-4-4-4-12 hexadecimal digits).
// Tenant ids, and the ids of everything Metachat creates, are UUIDs.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if (r < '0' || r > '9') && (r < 'a' || r > 'f') && (r < 'A' || r > 'F') {
				return false
			}
		}
	}
	return true
}

func tokenProblem(v string) string {
	if v == "" {
		return "must not be empty"
	}
	if len(v) > maxTokenLen {
		return fmt.Sprintf("must be at most %d characters", maxTokenLen)
	}
	if strings.IndexFunc(v, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' && r != '_'
	}) >= 0 {
		return "may contain only letters, digits, '-' and '_'"
	}
	return ""
}

// ConcurrencyError is returned by EventStore.Append when the aggregate's version is not the expected
// one. Its code (through Unwrap) is ECONFLICT.
type ConcurrencyError struct {
	Aggregate AggregateRef
	Expected  uint64
	// Actual is the aggregate's version when known, else 0.
	Actual uint64
}

// Error implements error.
func (e *ConcurrencyError) Error() string {
	return fmt.Sprintf("concurrency conflict on %s: expected version %d, actual %d", e.Aggregate, e.Expected, e.Actual)
}

// Unwrap makes ErrorCode report ECONFLICT.
func (e *ConcurrencyError) Unwrap() error {
	return &Error{Code: ECONFLICT, Message: "The resource was changed concurrently; retry the request."}
}

// Filter selects events when reading or subscribing. Empty fields match everything;
// AggregateType alone matches that type in every tenant (a reactor's view); AggregateID needs
// TenantID, and without AggregateType matches that id under any type.
type Filter struct {
	TenantID      string
	AggregateType string
	AggregateID   string
}

// AppendResult tells where appended events were stored.
type AppendResult struct {
	// FirstSequence and LastSequence are the stream sequences of the first and last event; the
	// aggregate's new version is LastSequence.
	FirstSequence uint64
	LastSequence  uint64
	// Duplicate is true when the events had been stored before (same event ids) and were not stored
	// again; the sequences are then the original ones when the store knows them.
	Duplicate bool
}

// EventStore is the append-only log of every event, the only source of truth.
//
// An aggregate's version is the stream sequence of its last event (0 when it has none).
type EventStore interface {
	// Append stores events for one aggregate, all or none, if the aggregate's version equals
	// expected (0: the aggregate must not exist yet). Every envelope must have an ID, a Type and a
	// SchemaVersion; tenant and aggregate fields are set from agg.
	//
	// De-duplication: an append retried with the same events at the same expected version (for
	// example after a lost acknowledgement) reports Duplicate with the original sequences and
	// stores nothing, at any time. A single event whose ID was stored before (within the JetStream
	// duplicate window) also reports Duplicate; a batch containing some already-stored IDs is
	// refused whole with ECONFLICT, never partially stored.
	//
	// Returns a *ConcurrencyError (ECONFLICT) on a version mismatch, EINVALID for a bad reference
	// or envelope, ETOOLARGE for too many or too large events, EUNAVAILABLE when the store is
	// unreachable.
	Append(ctx context.Context, agg AggregateRef, expected uint64, events ...Envelope) (AppendResult, error)

	// Load returns the aggregate's events with a sequence greater than after, in order, and the
	// aggregate's current version. An aggregate with no events returns no events and version 0.
	Load(ctx context.Context, agg AggregateRef, after uint64) ([]Envelope, uint64, error)

	// Read returns at most limit events with a sequence of at least from, in stream order, that
	// match filter. Fewer than limit means the end of the stream was reached.
	Read(ctx context.Context, from uint64, filter Filter, limit int) ([]Envelope, error)

	// Subscribe calls fn for every event matching filter from sequence from on, in order, first the
	// stored ones, then new ones as they are appended, until ctx is done (returns nil) or fn returns
	// an error (returned).
	Subscribe(ctx context.Context, from uint64, filter Filter, fn func(Envelope) error) error

	// LastSequence returns the sequence of the last event in the stream (0 when empty).
	LastSequence(ctx context.Context) (uint64, error)

	// Version returns the aggregate's current version (0 when it has no events), as of the moment
	// of the call: an event appended before Version was called is reflected, on any instance. It
	// is one cheap request, for checking that something derived from the aggregate is still
	// current.
	Version(ctx context.Context, agg AggregateRef) (uint64, error)
}

// PassingSubscriber is an EventStore whose subscriptions can pass events over before decoding
// them: for a follower that wants few of the events it must watch go by (the live hub, which
// hands on only the messages of conversations someone follows), deciding from the aggregate alone
// saves decoding every other event. Both stores of package eventstore implement it.
type PassingSubscriber interface {
	// SubscribePassing is Subscribe, except that pass is first called with each matching event's
	// aggregate and sequence, in order; an event pass reports true for is not handed to fn (and
	// need not be decoded). pass runs on the subscription's goroutine, like fn.
	SubscribePassing(ctx context.Context, from uint64, filter Filter, pass func(agg AggregateRef, seq uint64) bool,
		fn func(Envelope) error) error
}
