package eventstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/metachat/metachat/domain"
)

// MemoryConfig configures the in-memory event store.
type MemoryConfig struct {
	// Logger receives the store's diagnostics. Nil discards them.
	Logger *slog.Logger
	// Now is the clock stamping events appended without an OccurredAt. Default time.Now.
	Now func() time.Time
}

func (c *MemoryConfig) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration; every value is currently valid.
func (c MemoryConfig) Validate() error {
	c.setDefaults()
	return nil
}

// Memory is an event store in memory with the JetStream store's semantics: a single sequence over
// all events, versions that are last sequences per aggregate, all-or-none appends, de-duplication
// by event id (without a window) and subscriptions that deliver stored then new events. Events are
// kept as their JSON bodies, so reads return copies exactly as the JetStream store would. It is
// safe for concurrent use; the zero value is not usable, call NewMemory.
type Memory struct {
	cfg MemoryConfig

	mu sync.Mutex
	// bodies holds every event's JSON body; the event at sequence n is bodies[n-1].
	bodies []memEvent
	// aggs holds each aggregate's sequences in order.
	aggs map[domain.AggregateRef][]uint64
	// ids maps each stored event id to its sequence.
	ids map[string]uint64
	// appended is closed, and replaced, whenever events are appended.
	appended chan struct{}
}

// memEvent is one stored event.
type memEvent struct {
	agg  domain.AggregateRef
	body []byte
}

var _ domain.EventStore = (*Memory)(nil)

// NewMemory returns an empty in-memory event store.
func NewMemory(cfg MemoryConfig) *Memory {
	cfg.setDefaults()
	return &Memory{
		cfg:      cfg,
		aggs:     make(map[domain.AggregateRef][]uint64),
		ids:      make(map[string]uint64),
		appended: make(chan struct{}),
	}
}

// Append stores events for one aggregate, all or none, if the aggregate's version is expected. See
// domain.EventStore.
func (m *Memory) Append(ctx context.Context, agg domain.AggregateRef, expected uint64, events ...domain.Envelope) (domain.AppendResult, error) {
	envs, bodies, err := prepareAppend(agg, events, m.cfg.Now)
	if err != nil {
		return domain.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return domain.AppendResult{}, unavailable("append to "+agg.String(), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seqs := m.aggs[agg]
	var version uint64
	if len(seqs) > 0 {
		version = seqs[len(seqs)-1]
	}
	if version != expected {
		if res, ok := m.storedBefore(agg, expected, envs); ok {
			return res, nil
		}
		return domain.AppendResult{}, &domain.ConcurrencyError{Aggregate: agg, Expected: expected, Actual: version}
	}
	var known []uint64
	for _, e := range envs {
		if seq, ok := m.ids[e.ID]; ok {
			known = append(known, seq)
		}
	}
	switch {
	case len(envs) == 1 && len(known) == 1:
		m.cfg.Logger.DebugContext(ctx, "duplicate event not stored again", "aggregate", agg.String(), "event_id", envs[0].ID, "sequence", known[0])
		return domain.AppendResult{FirstSequence: known[0], LastSequence: known[0], Duplicate: true}, nil
	case len(known) > 0:
		return domain.AppendResult{}, &domain.Error{
			Code:    domain.ECONFLICT,
			Message: "Some of these events were already stored.",
			Err:     fmt.Errorf("eventstore: append to %s: %d of %d event ids already stored", agg, len(known), len(envs)),
		}
	}
	first := uint64(len(m.bodies)) + 1
	for i, e := range envs {
		seq := first + uint64(i)
		m.bodies = append(m.bodies, memEvent{agg: agg, body: bodies[i]})
		m.aggs[agg] = append(m.aggs[agg], seq)
		m.ids[e.ID] = seq
	}
	close(m.appended)
	m.appended = make(chan struct{})
	return domain.AppendResult{FirstSequence: first, LastSequence: first + uint64(len(envs)) - 1}, nil
}

// storedBefore reports whether envs are the aggregate's events right after expected, stored by an
// earlier attempt of the same append, and where. The lock must be held.
func (m *Memory) storedBefore(agg domain.AggregateRef, expected uint64, envs []domain.Envelope) (domain.AppendResult, bool) {
	var stored []domain.Envelope
	for _, seq := range m.aggs[agg] {
		if seq <= expected {
			continue
		}
		if len(stored) == len(envs) {
			break
		}
		env, err := m.decode(seq)
		if err != nil {
			return domain.AppendResult{}, false
		}
		stored = append(stored, env)
	}
	if !sameEvents(stored, envs) {
		return domain.AppendResult{}, false
	}
	return domain.AppendResult{FirstSequence: stored[0].Sequence, LastSequence: stored[len(stored)-1].Sequence, Duplicate: true}, true
}

// decode returns the event at seq. The lock must be held.
func (m *Memory) decode(seq uint64) (domain.Envelope, error) {
	e := m.bodies[seq-1]
	return DecodeMsg(Subject(DefaultSubjectPrefix, e.agg), e.body, seq)
}

// Load returns the aggregate's events with a sequence greater than after, in order, and its
// version.
func (m *Memory) Load(ctx context.Context, agg domain.AggregateRef, after uint64) ([]domain.Envelope, uint64, error) {
	if err := agg.Validate(); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, unavailable("load "+agg.String(), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seqs := m.aggs[agg]
	var out []domain.Envelope
	for _, seq := range seqs {
		if seq <= after {
			continue
		}
		env, err := m.decode(seq)
		if err != nil {
			return nil, 0, fmt.Errorf("load %s: %w", agg, err)
		}
		out = append(out, env)
	}
	var version uint64
	if len(seqs) > 0 {
		version = seqs[len(seqs)-1]
	}
	return out, version, nil
}

// Version returns the aggregate's current version.
func (m *Memory) Version(ctx context.Context, agg domain.AggregateRef) (uint64, error) {
	if err := agg.Validate(); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, unavailable("version of "+agg.String(), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if seqs := m.aggs[agg]; len(seqs) > 0 {
		return seqs[len(seqs)-1], nil
	}
	return 0, nil
}

// Read returns at most limit events with a sequence of at least from that match filter, in stream
// order.
func (m *Memory) Read(ctx context.Context, from uint64, filter domain.Filter, limit int) ([]domain.Envelope, error) {
	if err := validateFilter(filter); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, domain.Invalid("Invalid read limit.", domain.FieldError{Field: "limit", Message: "must be at least 1"})
	}
	if err := ctx.Err(); err != nil {
		return nil, unavailable("read", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out, _, err := m.collect(max(from, 1), filter, limit)
	return out, err
}

// collect returns up to limit (0: all) events matching filter from sequence from on, and the
// sequence after the last event looked at. The lock must be held.
func (m *Memory) collect(from uint64, filter domain.Filter, limit int) ([]domain.Envelope, uint64, error) {
	var out []domain.Envelope
	seq := from
	for ; seq <= uint64(len(m.bodies)); seq++ {
		if limit > 0 && len(out) == limit {
			break
		}
		if !matchFilter(filter, m.bodies[seq-1].agg) {
			continue
		}
		env, err := m.decode(seq)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, env)
	}
	return out, seq, nil
}

// Subscribe calls fn for every event matching filter from sequence from on, in order, first the
// stored ones, then new ones as they are appended, until ctx is done (nil) or fn fails (its error).
func (m *Memory) Subscribe(ctx context.Context, from uint64, filter domain.Filter, fn func(domain.Envelope) error) error {
	return m.SubscribePassing(ctx, from, filter, nil, fn)
}

// SubscribePassing implements domain.PassingSubscriber. pass is called outside the store's lock.
func (m *Memory) SubscribePassing(ctx context.Context, from uint64, filter domain.Filter,
	pass func(domain.AggregateRef, uint64) bool, fn func(domain.Envelope) error) error {
	if err := validateFilter(filter); err != nil {
		return err
	}
	if fn == nil {
		return domain.Errorf(domain.EINVALID, "Subscribe needs a function to call.")
	}
	next := max(from, 1)
	for {
		m.mu.Lock()
		events, after, err := m.collect(next, filter, 0)
		appended := m.appended
		m.mu.Unlock()
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		next = after
		for _, e := range events {
			if ctx.Err() != nil {
				return nil //nolint:nilerr // a cancelled subscription ends without error, as documented
			}
			if pass != nil && pass(e.Aggregate(), e.Sequence) {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-appended:
		}
	}
}

// LastSequence returns the sequence of the last event (0 when empty).
func (m *Memory) LastSequence(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, unavailable("read the last sequence", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return uint64(len(m.bodies)), nil
}
