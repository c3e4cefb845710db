package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/eventstore"
)

// errGenerationGone makes Runner.Run return when its generation is retired or dropped: nothing
// should consume for it any more.
var errGenerationGone = errors.New("projection generation is retired or dropped")

// errDeliveryLost makes Run return when the consumer delivered an event this runner never
// received: the supervisor starts a new runner, which recreates the consumer at the checkpoint.
var errDeliveryLost = errors.New("an event delivery was lost")

// Hooks let tests stop a runner at the two points where a crash matters. A hook that returns an
// error makes Run return that error right there, as if the process died.
type Hooks struct {
	// AfterApply is called after a batch was applied, before its transaction commits, with the
	// last applied sequence.
	AfterApply func(seq uint64) error
	// AfterCommit is called after a batch committed, before it is acknowledged.
	AfterCommit func(seq uint64) error
}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	// Projection is the read model to build.
	Projection Projection
	// Generation is the generation to build; it must exist (Manager.Ensure or Rebuild create
	// them) and be active or building.
	Generation int
	// Store is the event store whose stream the runner consumes.
	Store *eventstore.JetStream
	// Pool is the projector pool (metachat_projector). The runner's lock connection is taken out of
	// it too.
	Pool *pgxpool.Pool
	// Tuning sets batch size, waits and acknowledgement limits.
	Tuning Tuning
	// Hooks are crash points for tests.
	Hooks Hooks
	// OnCommit, when set, is called after each batch commit with the new checkpoint and the number
	// of events still pending in the stream after it.
	OnCommit func(checkpoint, pending uint64)
	// OnCaughtUp, when set, is called with the checkpoint whenever the runner has none of its
	// events left to apply: when its consumer starts with none pending, and after a commit whose
	// last event had none pending after it.
	OnCaughtUp func(checkpoint uint64)
	// Logger receives the runner's logs. Nil discards them. At debug level it logs every applied
	// event with its id, type, sequence and correlation id, and a summary of every batch.
	Logger *slog.Logger
	// Now is the clock of stopped_at. Default time.Now.
	Now func() time.Time
	// Metrics, when set (NewMetrics), receive batch durations, applied events and failures. Nil
	// records no metrics.
	Metrics *Metrics
}

func (c *RunnerConfig) setDefaults() {
	c.Tuning.setDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c RunnerConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Projection == nil {
		errs = append(errs, errors.New("no projection"))
	} else if err := validName(c.Projection.Name()); err != nil {
		errs = append(errs, err)
	}
	if c.Generation < 1 {
		errs = append(errs, fmt.Errorf("generation %d must be at least 1", c.Generation))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("no event store"))
	}
	if c.Pool == nil {
		errs = append(errs, errors.New("no projector pool"))
	}
	if err := c.Tuning.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid runner config: %w", err)
	}
	return nil
}

// Runner applies the event stream to one projection generation. Run it once; to run again after
// it returned, make a new Runner with the same configuration.
type Runner struct {
	cfg    RunnerConfig
	name   string
	schema string
	log    *slog.Logger

	started atomic.Bool

	mu     sync.Mutex
	status Status

	// deliveries is the consumer sequence of the last delivery taken from the feed.
	deliveries uint64
	// checkpoint is the generation's checkpoint as this runner last read (at start) or committed
	// it, which holds as long as it holds the generation's lock; the pipelined batch
	// (runner_pipeline.go) applies the events after it and proves it still there. Only Run's
	// goroutine uses it.
	checkpoint uint64
}

// NewRunner returns a runner for cfg.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	name := cfg.Projection.Name()
	cfg.Metrics.known(name)
	return &Runner{
		cfg:    cfg,
		name:   name,
		schema: SchemaName(name, cfg.Generation),
		log:    cfg.Logger.With("component", "projections", "projection", name, "generation", cfg.Generation),
		status: Status{Projection: name, Generation: cfg.Generation},
	}, nil
}

// Status returns what the runner knows of its generation: checkpoint, lag (from the last batch),
// whether it runs, waits for the lock or was stopped by a poison event.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (r *Runner) update(f func(s *Status)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.status)
}

// Run waits for the generation's lock (another instance may hold it), then applies the stream
// from the checkpoint on until ctx ends (it returns nil), a poison event stops it (*StoppedError),
// a hook fails (that error) or the environment fails (a wrapped error; running again retries).
func (r *Runner) Run(ctx context.Context) error {
	if r.started.Swap(true) {
		return errors.New("projection runner: Run called twice; make a new Runner")
	}
	r.update(func(s *Status) { s.Waiting, s.Running = true, false })
	defer r.update(func(s *Status) { s.Waiting, s.Running = false, false })
	lock, err := acquireSessionLock(ctx, r.cfg.Pool, runnerLockKey(r.name, r.cfg.Generation), true)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("projection %s generation %d: %w", r.name, r.cfg.Generation, err)
	}
	defer lock.release()
	r.update(func(s *Status) { s.Waiting, s.Running = false, true })

	cp, err := r.start(ctx, lock.conn)
	if err != nil {
		return r.exit(ctx, err)
	}
	cons, err := r.consumer(ctx, cp)
	if err != nil {
		return r.exit(ctx, err)
	}
	r.checkpoint = cp
	r.log.InfoContext(ctx, "projection runner started", "checkpoint", cp)
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 && r.cfg.OnCaughtUp != nil {
		r.cfg.OnCaughtUp(cp)
	}
	return r.exit(ctx, r.loop(ctx, lock, cons))
}

// exit turns an error caused by ctx ending into a clean nil return, and wraps the others.
func (r *Runner) exit(ctx context.Context, err error) error {
	if err == nil || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
		return nil
	}
	var stopped *StoppedError
	if errors.As(err, &stopped) {
		r.cfg.Metrics.failed(r.name, ErrorKindPoison)
		return err
	}
	if !errors.Is(err, errGenerationGone) {
		r.cfg.Metrics.failed(r.name, ErrorKindFailure)
	}
	return fmt.Errorf("projection %s generation %d: %w", r.name, r.cfg.Generation, err)
}

// start reads the generation's state and checkpoint, refusing a generation that is gone.
func (r *Runner) start(ctx context.Context, conn *pgx.Conn) (uint64, error) {
	var (
		state   string
		dropped bool
		cp      int64
	)
	err := conn.QueryRow(ctx, `SELECT g.state, g.dropped_at IS NOT NULL, c.last_seq
		FROM public.projection_generations g
		JOIN public.projection_checkpoints c USING (projection, generation)
		WHERE g.projection = $1 AND g.generation = $2`, r.name, r.cfg.Generation).Scan(&state, &dropped, &cp)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: no checkpoint", errGenerationGone)
	}
	if err != nil {
		return 0, fmt.Errorf("read checkpoint: %w", err)
	}
	if dropped || (state != StateActive && state != StateBuilding) {
		return 0, fmt.Errorf("%w: state %s", errGenerationGone, state)
	}
	r.update(func(s *Status) { s.State, s.Checkpoint = state, uint64(cp) })
	return uint64(cp), nil
}

// loop takes and applies batches until ctx ends or something stops it.
func (r *Runner) loop(ctx context.Context, lock *sessionLock, cons jetstream.Consumer) error {
	f, err := r.subscribe(cons)
	if err != nil {
		return err
	}
	defer f.stop()
	lastCheck := time.Now()
	pace := &lingerPace{max: r.cfg.Tuning.Linger}
	for {
		if err := ctx.Err(); err != nil {
			return err // exit turns it into a clean return
		}
		if r.cfg.Tuning.LockCheckInterval > 0 && time.Since(lastCheck) >= r.cfg.Tuning.LockCheckInterval {
			if err := lock.check(ctx); err != nil {
				return err
			}
			lastCheck = time.Now()
		}
		msgs, err := f.next(ctx, r.cfg.Tuning.IdleWait, r.cfg.Tuning.BatchSize, pace)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			continue
		}
		if err := r.handle(ctx, msgs); err != nil {
			return err
		}
	}
}
