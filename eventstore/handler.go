package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
)

// DefaultMaxRetries is how many times a Handler retries a command after a version conflict.
const DefaultMaxRetries = 3

// Metadata is what a command carries besides its own fields: who sent it and why. It is copied
// into every event the command produces.
type Metadata struct {
	// Actor caused the command; the zero Actor means domain.SystemActor.
	Actor         domain.Actor
	CorrelationID string
	CausationID   string
}

// Result is the outcome of a handled command.
type Result[S any] struct {
	// State is the aggregate's state after the command's events.
	State S
	// Version is the aggregate's version after the command: the sequence of its last event.
	Version uint64
	// Events are the appended events with their sequences, none when the command changed nothing.
	Events []domain.Envelope
}

// Handler runs commands against one aggregate type: it loads the aggregate's events, folds them
// into its state, decides, and appends the new events at the loaded version, retrying from the
// load when another writer got there first. It is safe for concurrent use. With WithStateCache it
// keeps decided states between commands instead (see StateCache).
type Handler[S any, C any] struct {
	store      domain.EventStore
	reg        *domain.Registry
	decider    domain.Decider[S, C]
	maxRetries int
	now        func() time.Time
	newID      func() (string, error)
	log        *slog.Logger
	cache      *StateCache[S] // nil: no cache (see cache.go)
}

// handlerOptions are the settings HandlerOptions change.
type handlerOptions struct {
	maxRetries int
	now        func() time.Time
	newID      func() (string, error)
	log        *slog.Logger
	cache      any // a *StateCache[S] (WithStateCache in cache.go)
}

// HandlerOption changes a setting of a Handler.
type HandlerOption func(*handlerOptions)

// WithMaxRetries sets how many times a command is retried after a version conflict (default
// DefaultMaxRetries; 0 never retries). Negative values count as 0.
func WithMaxRetries(n int) HandlerOption {
	return func(o *handlerOptions) { o.maxRetries = max(n, 0) }
}

// WithClock sets the clock stamping events' OccurredAt (default time.Now).
func WithClock(now func() time.Time) HandlerOption {
	return func(o *handlerOptions) {
		if now != nil {
			o.now = now
		}
	}
}

// WithIDGenerator sets the generator of event ids (default UUIDv7).
func WithIDGenerator(newID func() (string, error)) HandlerOption {
	return func(o *handlerOptions) {
		if newID != nil {
			o.newID = newID
		}
	}
}

// WithLogger sets the logger of retries (default: discard).
func WithLogger(l *slog.Logger) HandlerOption {
	return func(o *handlerOptions) {
		if l != nil {
			o.log = l
		}
	}
}

// newUUIDv7 returns a new time-ordered UUID.
func newUUIDv7() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("new event id: %w", err)
	}
	return id.String(), nil
}

// NewHandler returns a handler for the aggregate type d decides, storing events in store and
// encoding and decoding them with reg.
func NewHandler[S any, C any](store domain.EventStore, reg *domain.Registry, d domain.Decider[S, C], opts ...HandlerOption) *Handler[S, C] {
	o := handlerOptions{
		maxRetries: DefaultMaxRetries,
		now:        time.Now,
		newID:      newUUIDv7,
		log:        slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		opt(&o)
	}
	h := &Handler[S, C]{
		store:      store,
		reg:        reg,
		decider:    d,
		maxRetries: o.maxRetries,
		now:        o.now,
		newID:      o.newID,
		log:        o.log,
	}
	// State cache (cache.go).
	if o.cache != nil {
		c, ok := o.cache.(*StateCache[S])
		if !ok {
			panic(fmt.Sprintf("eventstore: NewHandler: a %T cannot cache states of type %T", o.cache, d.Initial()))
		}
		h.cache = c
	}
	return h
}

// Handle runs cmd against the aggregate agg, whose type must be the decider's. A decision error is
// returned wrapped (its code kept); a decision without events appends nothing. After a version
// conflict the command is retried from the load up to the handler's retry limit, then the
// *domain.ConcurrencyError is returned.
func (h *Handler[S, C]) Handle(ctx context.Context, agg domain.AggregateRef, cmd C, md Metadata) (Result[S], error) {
	if agg.Type != h.decider.AggregateType {
		return Result[S]{}, domain.Errorf(domain.EINVALID, "Aggregate %s is not a %s.", agg, h.decider.AggregateType)
	}
	if err := agg.Validate(); err != nil {
		return Result[S]{}, err
	}
	if md.Actor == (domain.Actor{}) {
		md.Actor = domain.SystemActor
	}
	if md.CorrelationID == "" {
		md.CorrelationID = domain.CorrelationID(ctx)
	}
	if h.cache != nil { // state cache (cache.go)
		return h.handleCached(ctx, agg, cmd, md)
	}
	for attempt := 0; ; attempt++ {
		res, err := h.attempt(ctx, agg, cmd, md)
		var conflict *domain.ConcurrencyError
		if errors.As(err, &conflict) && attempt < h.maxRetries && ctx.Err() == nil {
			h.log.DebugContext(ctx, "command conflicted, retrying", "aggregate", agg.String(),
				"attempt", attempt+1, "expected", conflict.Expected, "actual", conflict.Actual)
			continue
		}
		return res, err
	}
}

// attempt runs the command once: load, fold, decide, append at the loaded version.
func (h *Handler[S, C]) attempt(ctx context.Context, agg domain.AggregateRef, cmd C, md Metadata) (Result[S], error) {
	stored, version, err := h.store.Load(ctx, agg, 0)
	if err != nil {
		return Result[S]{}, fmt.Errorf("handle %T on %s: %w", cmd, agg, err)
	}
	state := h.decider.Initial()
	for _, env := range stored {
		ev, err := h.reg.Decode(env)
		if err != nil {
			return Result[S]{}, fmt.Errorf("handle %T on %s: event %s at sequence %d: %w", cmd, agg, env.ID, env.Sequence, err)
		}
		state = h.decider.Evolve(state, ev)
	}
	decided, err := h.decider.Decide(state, cmd)
	if err != nil {
		return Result[S]{State: state, Version: version}, fmt.Errorf("handle %T on %s: %w", cmd, agg, err)
	}
	if len(decided) == 0 {
		return Result[S]{State: state, Version: version}, nil
	}
	envs, err := h.envelopes(agg, cmd, decided, md)
	if err != nil {
		return Result[S]{}, err
	}
	res, err := h.store.Append(ctx, agg, version, envs...)
	if err != nil {
		return Result[S]{}, fmt.Errorf("handle %T on %s: %w", cmd, agg, err)
	}
	for i := range envs {
		envs[i].Sequence = res.FirstSequence + uint64(i)
		state = h.decider.Evolve(state, decided[i])
	}
	return Result[S]{State: state, Version: res.LastSequence, Events: envs}, nil
}

// envelopes encodes decided events into envelopes for agg, stamped with the command's metadata.
func (h *Handler[S, C]) envelopes(agg domain.AggregateRef, cmd C, decided []domain.Event, md Metadata) ([]domain.Envelope, error) {
	envs := make([]domain.Envelope, len(decided))
	at := h.now().UTC()
	for i, ev := range decided {
		typ, schema, payload, err := h.reg.Encode(ev)
		if err != nil {
			return nil, fmt.Errorf("handle %T on %s: %w", cmd, agg, err)
		}
		id, err := h.newID()
		if err != nil {
			return nil, fmt.Errorf("handle %T on %s: %w", cmd, agg, err)
		}
		envs[i] = domain.Envelope{
			ID:            id,
			Type:          typ,
			SchemaVersion: schema,
			TenantID:      agg.TenantID,
			AggregateType: agg.Type,
			AggregateID:   agg.ID,
			OccurredAt:    at,
			Actor:         md.Actor,
			CorrelationID: md.CorrelationID,
			CausationID:   md.CausationID,
			Payload:       payload,
		}
	}
	return envs, nil
}
