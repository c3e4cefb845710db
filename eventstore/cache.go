package eventstore

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/metachat/metachat/domain"
)

// DefaultCacheSize is how many aggregates a StateCache keeps by default.
const DefaultCacheSize = 10000

// CacheConfig configures a StateCache.
type CacheConfig struct {
	// Size is the most aggregates kept; the least recently used is dropped first. Default
	// DefaultCacheSize.
	Size int
}

func (c *CacheConfig) setDefaults() {
	if c.Size == 0 {
		c.Size = DefaultCacheSize
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c CacheConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Size < 1 {
		errs = append(errs, fmt.Errorf("cache size %d must be at least 1", c.Size))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid state cache config: %w", err)
	}
	return nil
}

// StateCache keeps the decided state of recently used aggregates with their versions, so that a
// Handler using it (WithStateCache) does not load an aggregate from its first event on every
// command. It belongs to one process; several processes each keep their own.
//
// How a cached Handler runs a command:
//
//   - It takes the aggregate's turn: commands on one aggregate run one at a time in a process,
//     queueing instead of conflicting with each other (commands on different aggregates run in
//     parallel).
//   - Cold (not cached): it loads every event, as an uncached Handler does.
//   - Warm: it trusts the cached state and appends the decided events at the cached version: no
//     load at all. When another process appended meanwhile, the append is a version conflict; the
//     handler then loads only the events after the cached version, folds them in and decides again
//     (up to the handler's retry limit).
//   - A decision that appends nothing (an error, or nothing to change, such as a repeated
//     client_message_id) is not checked by an append, so when it was made on a cached state, the
//     handler first loads the events after the cached version and, if there are any, decides again.
//
// The cached state is always the fold of the aggregate's stored events up to its version: it is
// replaced only after an append succeeded or after a load, so a failed or unknown append leaves a
// correct, at worst older, state (the next append conflicts and catches up). States are shared with
// callers (Result.State) and folded further by later commands, so S must be a value that Evolve
// never changes in place: maps or slices inside it must be copied or persistent. Aggregates that
// do not exist (version 0) are not kept.
//
// It is safe for concurrent use.
type StateCache[S any] struct {
	size int

	mu      sync.Mutex
	entries map[domain.AggregateRef]*cacheEntry[S]
	lru     list.List // of *cacheEntry[S], most recently used first
}

// cacheEntry is one aggregate's cached state and its turn.
type cacheEntry[S any] struct {
	agg domain.AggregateRef
	// turn holds a token while a Handle works on the aggregate.
	turn chan struct{}

	// Guarded by StateCache.mu.
	elem  *list.Element
	users int // Handles holding or waiting for the turn; an entry in use is never dropped

	// Guarded by turn.
	state   S
	version uint64
	loaded  bool
}

// NewStateCache returns an empty cache for states of type S.
func NewStateCache[S any](cfg CacheConfig) (*StateCache[S], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &StateCache[S]{size: cfg.Size, entries: make(map[domain.AggregateRef]*cacheEntry[S])}, nil
}

// Len returns how many aggregates are cached (or being worked on).
func (c *StateCache[S]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// WithStateCache makes a Handler keep its aggregates' decided states in c (see StateCache). The
// cache's state type must be the handler's; NewHandler panics otherwise. One cache may serve
// several handlers of the same aggregate type.
func WithStateCache[S any](c *StateCache[S]) HandlerOption {
	return func(o *handlerOptions) {
		if c != nil {
			o.cache = c
		}
	}
}

// acquire returns agg's entry once it is the caller's turn, or the context's error.
func (c *StateCache[S]) acquire(ctx context.Context, agg domain.AggregateRef) (*cacheEntry[S], error) {
	c.mu.Lock()
	e := c.entries[agg]
	if e == nil {
		e = &cacheEntry[S]{agg: agg, turn: make(chan struct{}, 1)}
		e.elem = c.lru.PushFront(e)
		c.entries[agg] = e
	} else {
		c.lru.MoveToFront(e.elem)
	}
	e.users++
	c.mu.Unlock()
	select {
	case e.turn <- struct{}{}:
		return e, nil
	case <-ctx.Done():
		c.mu.Lock()
		c.done(e)
		c.mu.Unlock()
		return nil, &domain.Error{Code: domain.EUNAVAILABLE, Message: "The request was cancelled or timed out; retry it.",
			Err: fmt.Errorf("wait for the turn on %s: %w", agg, ctx.Err())}
	}
}

// release ends the caller's turn. The entry stays cached if it holds an existing aggregate.
func (c *StateCache[S]) release(e *cacheEntry[S]) {
	keep := e.loaded && e.version > 0 // read while holding the turn
	if !keep {
		e.loaded = false
	}
	c.mu.Lock()
	if keep {
		e.users--
		c.evict()
	} else {
		c.done(e)
	}
	c.mu.Unlock()
	<-e.turn
}

// done forgets one user of e, and e itself when nobody else uses it and it holds nothing worth
// keeping. c.mu must be held.
func (c *StateCache[S]) done(e *cacheEntry[S]) {
	e.users--
	// e.loaded is guarded by the turn, but read here only when nobody holds or awaits it (users
	// is 0), after the last holder's writes (ordered by c.mu).
	if e.users == 0 && !e.loaded {
		c.remove(e)
	}
}

// evict drops least recently used entries nobody is using until the cache is within its size.
// c.mu must be held.
func (c *StateCache[S]) evict() {
	el := c.lru.Back()
	for len(c.entries) > c.size && el != nil {
		prev := el.Prev()
		if e, _ := el.Value.(*cacheEntry[S]); e != nil && e.users == 0 {
			c.remove(e)
		}
		el = prev
	}
}

// remove drops e from the cache. c.mu must be held.
func (c *StateCache[S]) remove(e *cacheEntry[S]) {
	if e.elem != nil {
		c.lru.Remove(e.elem)
		e.elem = nil
	}
	if c.entries[e.agg] == e {
		delete(c.entries, e.agg)
	}
}

// handleCached runs cmd with the handler's cache (see StateCache).
func (h *Handler[S, C]) handleCached(ctx context.Context, agg domain.AggregateRef, cmd C, md Metadata) (Result[S], error) {
	e, err := h.cache.acquire(ctx, agg)
	if err != nil {
		return Result[S]{}, fmt.Errorf("handle %T on %s: %w", cmd, agg, err)
	}
	defer h.cache.release(e)
	// fresh: the state includes every event stored before this command began.
	fresh := false
	if !e.loaded {
		if _, err := h.catchUp(ctx, agg, cmd, e); err != nil {
			return Result[S]{}, err
		}
		fresh = true
	}
	for conflicts := 0; ; {
		decided, derr := h.decider.Decide(e.state, cmd)
		if derr != nil || len(decided) == 0 {
			if !fresh {
				n, err := h.catchUp(ctx, agg, cmd, e)
				if err != nil {
					return Result[S]{}, err
				}
				fresh = true
				if n > 0 {
					continue
				}
			}
			res := Result[S]{State: e.state, Version: e.version}
			if derr != nil {
				return res, fmt.Errorf("handle %T on %s: %w", cmd, agg, derr)
			}
			return res, nil
		}
		envs, err := h.envelopes(agg, cmd, decided, md)
		if err != nil {
			return Result[S]{}, err
		}
		res, err := h.store.Append(ctx, agg, e.version, envs...)
		var conflict *domain.ConcurrencyError
		switch {
		case err == nil:
			state := e.state
			for i := range envs {
				envs[i].Sequence = res.FirstSequence + uint64(i)
				state = h.decider.Evolve(state, decided[i])
			}
			e.state, e.version = state, res.LastSequence
			return Result[S]{State: state, Version: res.LastSequence, Events: envs}, nil
		case errors.As(err, &conflict) && conflicts < h.maxRetries && ctx.Err() == nil:
			conflicts++
			h.log.DebugContext(ctx, "command conflicted, catching up", "aggregate", agg.String(),
				"attempt", conflicts, "expected", conflict.Expected, "actual", conflict.Actual)
			if _, err := h.catchUp(ctx, agg, cmd, e); err != nil {
				return Result[S]{}, err
			}
			fresh = true
		default:
			return Result[S]{}, fmt.Errorf("handle %T on %s: %w", cmd, agg, err)
		}
	}
}

// catchUp loads the events after the entry's version (all of them when it is not loaded), folds
// them into its state and returns how many there were. The entry changes only on success.
func (h *Handler[S, C]) catchUp(ctx context.Context, agg domain.AggregateRef, cmd C, e *cacheEntry[S]) (int, error) {
	state, after := e.state, e.version
	if !e.loaded {
		state, after = h.decider.Initial(), 0
	}
	stored, version, err := h.store.Load(ctx, agg, after)
	if err != nil {
		return 0, fmt.Errorf("handle %T on %s: %w", cmd, agg, err)
	}
	for _, env := range stored {
		ev, err := h.reg.Decode(env)
		if err != nil {
			return 0, fmt.Errorf("handle %T on %s: event %s at sequence %d: %w", cmd, agg, env.ID, env.Sequence, err)
		}
		state = h.decider.Evolve(state, ev)
	}
	e.state, e.version, e.loaded = state, max(version, after), true
	return len(stored), nil
}
