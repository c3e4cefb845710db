package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/metachat/metachat/domain"
)

// Defaults of WaiterConfig.
const (
	DefaultWaitTimeout  = 2 * time.Second
	DefaultFallbackPoll = 250 * time.Millisecond
)

// WaiterConfig configures a Waiter.
type WaiterConfig struct {
	// Pool reads the bookkeeping tables and provides the listening connection; the app pool will do.
	Pool *pgxpool.Pool
	// Timeout bounds each WaitFor. Default DefaultWaitTimeout.
	Timeout time.Duration
	// FallbackPoll is how often a WaitFor re-reads the checkpoint while the listening connection
	// is down (it is not used while notifications flow). Default DefaultFallbackPoll.
	FallbackPoll time.Duration
	// RetryDelay is the wait before reconnecting the listening connection. Default
	// DefaultRetryDelay.
	RetryDelay time.Duration
	// Logger receives the waiter's logs. Nil discards them.
	Logger *slog.Logger
}

func (c *WaiterConfig) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultWaitTimeout
	}
	if c.FallbackPoll == 0 {
		c.FallbackPoll = DefaultFallbackPoll
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c WaiterConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Pool == nil {
		errs = append(errs, errors.New("no pool"))
	}
	if c.Timeout < 0 || c.FallbackPoll < 0 || c.RetryDelay < 0 {
		errs = append(errs, errors.New("timeout, fallback poll and retry delay must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid waiter config: %w", err)
	}
	return nil
}

// genKey names one projection generation.
type genKey struct {
	projection string
	generation int
}

// Waiter gives reads their writes: WaitFor returns once a projection's active generation has
// applied a given stream sequence. Run must be running for it to learn of progress from
// notifications; without it WaitFor falls back to re-reading the checkpoint every FallbackPoll.
type Waiter struct {
	cfg WaiterConfig
	log *slog.Logger

	mu        sync.Mutex
	listening bool
	active    map[string]int                      // projection → active generation
	latest    map[genKey]uint64                   // generation → highest checkpoint seen
	waiters   map[string]map[chan struct{}]uint64 // projection → wake-up channel of each WaitFor call → its seq
}

// NewWaiter returns a waiter for cfg.
func NewWaiter(cfg WaiterConfig) (*Waiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Waiter{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "projections.waiter"),
		active:  make(map[string]int),
		latest:  make(map[genKey]uint64),
		waiters: make(map[string]map[chan struct{}]uint64),
	}, nil
}

// Run holds one connection listening to CheckpointChannel and SwitchChannel until ctx ends,
// reconnecting when it breaks and re-reading every active checkpoint on each (re)connection. It
// returns nil when ctx ends.
func (w *Waiter) Run(ctx context.Context) error {
	l := &listener{
		pool:     w.cfg.Pool,
		channels: []string{CheckpointChannel, SwitchChannel},
		retry:    w.cfg.RetryDelay,
		log:      w.log,
		onConnect: func(ctx context.Context) {
			if err := w.reload(ctx); err != nil {
				w.log.WarnContext(ctx, "re-read checkpoints", "error", err)
			}
			w.mu.Lock()
			w.listening = true
			w.mu.Unlock()
			w.wakeAll()
		},
		onNotify: w.notified,
		onDisconnect: func() {
			w.mu.Lock()
			w.listening = false
			w.mu.Unlock()
			w.wakeAll()
		},
	}
	l.run(ctx)
	return nil
}

// WaitFor returns nil once the active generation of projection has applied the event at stream
// sequence seq, at once when it already has. It waits at most the configured Timeout and returns an
// EUNAVAILABLE error when that passes first (the read model is lagging; the caller may retry), the
// context's error when ctx ends first.
func (w *Waiter) WaitFor(ctx context.Context, projection string, seq uint64) error {
	if seq == 0 {
		return nil
	}
	if ok, known := w.reached(projection, seq); ok && known {
		return nil
	}
	wake := make(chan struct{}, 1)
	w.register(projection, seq, wake)
	defer w.unregister(projection, wake)
	// Registered before reading, so a notification that arrives meanwhile is not missed. While
	// notifications flow and the active generation is known, they are enough: no read.
	if _, known := w.reached(projection, seq); known {
		// wait below
	} else if err := w.read(ctx, projection); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("wait for projection %s to reach %d: %w", projection, seq, ctx.Err())
		}
		return &domain.Error{Code: domain.EUNAVAILABLE, Message: "The read model is unavailable.", Err: err}
	}
	// One timer serves both the poll and the timeout: it fires every FallbackPoll, and the wait
	// ends with a timeout at the first firing at or after the deadline.
	deadline := time.Now().Add(w.cfg.Timeout)
	timer := time.NewTimer(min(w.cfg.FallbackPoll, w.cfg.Timeout))
	defer timer.Stop()
	for {
		if ok, _ := w.reached(projection, seq); ok {
			return nil
		}
		// Notifications normally wake us first; the poll is the safety net for one that was missed
		// (for example a commit between the initial read and LISTEN taking effect), so a miss costs
		// at most FallbackPoll instead of the whole timeout.
		select {
		case <-wake:
		case <-timer.C:
			left := time.Until(deadline)
			if left <= 0 {
				return &domain.Error{
					Code:    domain.EUNAVAILABLE,
					Message: "The data is not up to date yet; retry shortly.",
					Err:     fmt.Errorf("projection %s did not reach sequence %d within %v", projection, seq, w.cfg.Timeout),
				}
			}
			if err := w.read(ctx, projection); err != nil && ctx.Err() == nil {
				w.log.WarnContext(ctx, "re-read checkpoint", "projection", projection, "error", err)
			}
			timer.Reset(min(w.cfg.FallbackPoll, left))
		case <-ctx.Done():
			return fmt.Errorf("wait for projection %s to reach %d: %w", projection, seq, ctx.Err())
		}
	}
}

// reached reports whether the projection's active generation is known to have reached seq, and
// whether the in-memory view can be trusted (notifications flow and the active generation is
// known); when it cannot, WaitFor re-reads the database.
func (w *Waiter) reached(projection string, seq uint64) (ok, known bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cp, found := w.activeCheckpoint(projection)
	return found && cp >= seq, found && w.listening
}

// activeCheckpoint is the highest checkpoint seen of the projection's active generation, if that
// generation is known. w.mu must be held.
func (w *Waiter) activeCheckpoint(projection string) (uint64, bool) {
	gen, found := w.active[projection]
	if !found {
		return 0, false
	}
	return w.latest[genKey{projection, gen}], true
}

// read reads the active generation and checkpoint of one projection into memory.
func (w *Waiter) read(ctx context.Context, projection string) error {
	var (
		gen int
		cp  int64
	)
	err := w.cfg.Pool.QueryRow(ctx, `SELECT g.generation, c.last_seq FROM public.projection_generations g
		JOIN public.projection_checkpoints c USING (projection, generation)
		WHERE g.projection = $1 AND g.state = 'active'`, projection).Scan(&gen, &cp)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // no such projection yet: it cannot have reached anything
	}
	if err != nil {
		return fmt.Errorf("read checkpoint of %s: %w", projection, err)
	}
	w.mu.Lock()
	w.active[projection] = gen
	w.raise(genKey{projection, gen}, uint64(cp))
	w.mu.Unlock()
	return nil
}

// reload reads every active generation and checkpoint into memory.
func (w *Waiter) reload(ctx context.Context) error {
	rows, err := w.cfg.Pool.Query(ctx, `SELECT g.projection, g.generation, c.last_seq
		FROM public.projection_generations g JOIN public.projection_checkpoints c USING (projection, generation)
		WHERE g.state = 'active'`)
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	type row struct {
		key genKey
		cp  int64
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.key.projection, &x.key.generation, &x.cp)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, x := range all {
		w.active[x.key.projection] = x.key.generation
		w.raise(x.key, uint64(x.cp))
	}
	return nil
}

// raise records a checkpoint, which only grows. w.mu must be held.
func (w *Waiter) raise(k genKey, cp uint64) {
	if cp > w.latest[k] {
		w.latest[k] = cp
	}
}

// notified handles "<projection>:<generation>:<seq>" on CheckpointChannel and
// "<projection>:<generation>" on SwitchChannel.
func (w *Waiter) notified(channel, payload string) {
	parts := strings.Split(payload, ":")
	if len(parts) < 2 {
		return
	}
	gen, err := strconv.Atoi(parts[1])
	if err != nil {
		return
	}
	projection := parts[0]
	w.mu.Lock()
	switch {
	case channel == CheckpointChannel && len(parts) == 3:
		cp, err := strconv.ParseUint(parts[2], 10, 64)
		if err != nil {
			w.mu.Unlock()
			return
		}
		w.raise(genKey{projection, gen}, cp)
	case channel == SwitchChannel:
		w.active[projection] = gen
	}
	// Only the calls whose seq the active generation has reached are woken (signal does not
	// block); after a switch, all of them re-check.
	reached, _ := w.activeCheckpoint(projection)
	for ch, seq := range w.waiters[projection] {
		if channel == SwitchChannel || seq <= reached {
			signal(ch)
		}
	}
	w.mu.Unlock()
}

// register adds a WaitFor call's wake-up channel and seq. A projection's set is kept when it
// empties: there are few projections, and waits come and go all the time.
func (w *Waiter) register(projection string, seq uint64, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiters[projection] == nil {
		w.waiters[projection] = make(map[chan struct{}]uint64)
	}
	w.waiters[projection][ch] = seq
}

func (w *Waiter) unregister(projection string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.waiters[projection], ch)
}

// wakeAll wakes every WaitFor, to re-check after a (re)connection or a disconnection.
func (w *Waiter) wakeAll() {
	w.mu.Lock()
	var wakes []chan struct{}
	for _, set := range w.waiters {
		for ch := range set {
			wakes = append(wakes, ch)
		}
	}
	w.mu.Unlock()
	for _, ch := range wakes {
		signal(ch)
	}
}
