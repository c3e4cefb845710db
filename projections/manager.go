package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// Defaults of ManagerConfig.
const (
	DefaultRecheckInterval = 30 * time.Second
	DefaultRetryDelay      = time.Second
	DefaultMaxRetryDelay   = 30 * time.Second
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Projections are the read models to keep, each with a distinct name.
	Projections []Projection
	// Store is the event store whose stream is projected.
	Store *eventstore.JetStream
	// Owner is the owner's pool: creating, switching and dropping generations.
	Owner *pgxpool.Pool
	// Projector is the projector pool (metachat_projector): applying events.
	Projector *pgxpool.Pool
	// Tuning is passed to every runner.
	Tuning Tuning
	// RecheckInterval is how often Run re-reads the active generations, in case a switch
	// notification was missed. Default DefaultRecheckInterval.
	RecheckInterval time.Duration
	// RetryDelay is the first wait before a runner that failed (not a poison event: those wait for
	// Resume) is started again; it doubles up to MaxRetryDelay. Defaults DefaultRetryDelay and
	// DefaultMaxRetryDelay.
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// Logger receives the manager's and its runners' logs. Nil discards them.
	Logger *slog.Logger
	// Now is the clock passed to the runners. Default time.Now.
	Now func() time.Time
	// Metrics, when set (NewMetrics), are passed to every runner. Nil records no metrics.
	Metrics *Metrics
}

func (c *ManagerConfig) setDefaults() {
	c.Tuning.setDefaults()
	if c.RecheckInterval == 0 {
		c.RecheckInterval = DefaultRecheckInterval
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.MaxRetryDelay == 0 {
		c.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c ManagerConfig) Validate() error {
	c.setDefaults()
	var errs []error
	seen := make(map[string]bool, len(c.Projections))
	for i, p := range c.Projections {
		if p == nil {
			errs = append(errs, fmt.Errorf("projection %d is nil", i))
			continue
		}
		if err := validName(p.Name()); err != nil {
			errs = append(errs, err)
		}
		if seen[p.Name()] {
			errs = append(errs, fmt.Errorf("projection %q is listed twice", p.Name()))
		}
		seen[p.Name()] = true
	}
	if c.Store == nil {
		errs = append(errs, errors.New("no event store"))
	}
	if c.Owner == nil {
		errs = append(errs, errors.New("no owner pool"))
	}
	if c.Projector == nil {
		errs = append(errs, errors.New("no projector pool"))
	}
	if err := c.Tuning.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.RecheckInterval < 0 || c.RetryDelay < 0 || c.MaxRetryDelay < c.RetryDelay {
		errs = append(errs, errors.New("recheck interval and retry delays must be positive, the maximum at least the first"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid projections manager config: %w", err)
	}
	return nil
}

// Manager keeps a set of projections: it creates their first generation, runs a runner for each
// active generation and follows switches, rebuilds generations and drops retired ones. Its methods
// are safe for concurrent use.
type Manager struct {
	cfg    ManagerConfig
	log    *slog.Logger
	byName map[string]Projection

	mu   sync.Mutex
	sups map[string]*supervisor // while Run runs
}

// NewManager returns a manager for cfg.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m := &Manager{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "projections"),
		byName: make(map[string]Projection, len(cfg.Projections)),
	}
	for _, p := range cfg.Projections {
		m.byName[p.Name()] = p
	}
	return m, nil
}

// projection returns the projection called name, ENOTFOUND if the manager has none.
func (m *Manager) projection(name string) (Projection, error) {
	p, ok := m.byName[name]
	if !ok {
		return nil, domain.Errorf(domain.ENOTFOUND, "Unknown projection %q.", name)
	}
	return p, nil
}

// runnerConfig is the configuration of a runner of p's generation gen.
func (m *Manager) runnerConfig(p Projection, gen int) RunnerConfig {
	return RunnerConfig{
		Projection: p,
		Generation: gen,
		Store:      m.cfg.Store,
		Pool:       m.cfg.Projector,
		Tuning:     m.cfg.Tuning,
		Logger:     m.cfg.Logger,
		Now:        m.cfg.Now,
		Metrics:    m.cfg.Metrics,
	}
}

// Ensure makes sure every projection has an active generation, creating generation 1 (schema,
// tables, views, checkpoint 0) for those that have none yet. It is idempotent and safe to call
// from several processes at once.
func (m *Manager) Ensure(ctx context.Context) error {
	for _, p := range m.cfg.Projections {
		if err := m.ensure(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) ensure(ctx context.Context, p Projection) error {
	name := p.Name()
	if gen, err := activeGeneration(ctx, m.cfg.Owner, name); err != nil {
		return err
	} else if gen != 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, m.cfg.Owner, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", generationsLockKey(name)); err != nil {
			return fmt.Errorf("lock generations of %s: %w", name, err)
		}
		var active, exists bool
		if err := tx.QueryRow(ctx, `SELECT coalesce(bool_or(state = 'active'), false), count(*) > 0
			FROM public.projection_generations WHERE projection = $1`, name).Scan(&active, &exists); err != nil {
			return fmt.Errorf("read generations of %s: %w", name, err)
		}
		switch {
		case active:
			return nil
		case exists:
			return fmt.Errorf("projection %s has generations but none is active; activate or rebuild it", name)
		}
		if err := createGeneration(ctx, tx, p, 1); err != nil {
			return err
		}
		if err := activate(ctx, tx, name, 1); err != nil {
			return err
		}
		m.log.InfoContext(ctx, "projection created", "projection", name, "generation", 1)
		return nil
	})
}

// Resume starts again a projection that a poison event stopped (in this process's Run), after its
// cause was fixed. The runner retries the event it stopped at.
func (m *Manager) Resume(name string) error {
	if _, err := m.projection(name); err != nil {
		return err
	}
	m.mu.Lock()
	s := m.sups[name]
	m.mu.Unlock()
	if s == nil {
		return domain.Errorf(domain.EUNAVAILABLE, "The projections are not running.")
	}
	signal(s.resume)
	return nil
}

// signal sends on a channel of capacity one without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Status returns each projection's active generation, any generation being built and any retired
// generation not dropped yet, with its
// checkpoint, the stream's last sequence, the lag, whether a runner of this process runs it and
// whether a poison event stopped it.
func (m *Manager) Status(ctx context.Context) ([]Status, error) {
	last, err := m.cfg.Store.LastSequence(ctx)
	if err != nil {
		return nil, fmt.Errorf("projections status: %w", err)
	}
	names := make([]string, 0, len(m.cfg.Projections))
	for _, p := range m.cfg.Projections {
		names = append(names, p.Name())
	}
	rows, err := m.cfg.Projector.Query(ctx, `SELECT g.projection, g.generation, g.state, c.last_seq,
			c.stopped_at, coalesce(c.stop_error, ''), coalesce(c.stop_seq, 0)
		FROM public.projection_generations g
		JOIN public.projection_checkpoints c USING (projection, generation)
		WHERE g.projection = ANY($1) AND g.state IN ('active', 'building', 'retired')
		ORDER BY g.projection, g.generation`, names)
	if err != nil {
		return nil, fmt.Errorf("projections status: %w", err)
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Status, error) {
		var (
			s         Status
			cp, stop  int64
			stoppedAt *time.Time
		)
		err := row.Scan(&s.Projection, &s.Generation, &s.State, &cp, &stoppedAt, &s.Error, &stop)
		s.Checkpoint, s.StopSeq = uint64(cp), uint64(stop)
		if stoppedAt != nil {
			s.Stopped, s.StoppedAt = true, *stoppedAt
		}
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("projections status: %w", err)
	}
	out := make([]Status, 0, len(found)+len(names))
	for _, name := range names {
		n := len(out)
		for _, s := range found {
			if s.Projection == name {
				out = append(out, s)
			}
		}
		if len(out) == n {
			out = append(out, Status{Projection: name})
		}
	}
	m.mu.Lock()
	sups := m.sups
	m.mu.Unlock()
	for i := range out {
		s := &out[i]
		s.StreamLastSeq = max(last, s.Checkpoint)
		s.Lag = m.lag(ctx, *s)
		if sup := sups[s.Projection]; sup != nil {
			if r := sup.current(); r != nil && r.cfg.Generation == s.Generation {
				rs := r.Status()
				s.Running, s.Waiting = rs.Running, rs.Waiting
				if rs.Stopped {
					s.Stopped, s.StopSeq, s.StoppedAt, s.Error = true, rs.StopSeq, rs.StoppedAt, rs.Error
				}
			}
		}
	}
	return out, nil
}

// Run ensures every projection has an active generation, then runs a runner for each active
// generation until ctx ends, following switches: when a rebuild (in any process) activates a new
// generation, the runner of the old one stops and one for the new one starts. A failed runner is
// started again after a growing delay; one stopped by a poison event waits for Resume (or a
// restart of the process). Run returns nil when ctx ends, or the error of Ensure.
func (m *Manager) Run(ctx context.Context) error {
	if err := m.Ensure(ctx); err != nil {
		return fmt.Errorf("run projections: %w", err)
	}
	sups := make(map[string]*supervisor, len(m.cfg.Projections))
	for _, p := range m.cfg.Projections {
		sups[p.Name()] = &supervisor{m: m, p: p, poke: make(chan struct{}, 1), resume: make(chan struct{}, 1)}
	}
	m.mu.Lock()
	if m.sups != nil {
		m.mu.Unlock()
		return errors.New("run projections: already running")
	}
	m.sups = sups
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.sups = nil
		m.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pokeAll := func(context.Context) {
		for _, s := range sups {
			signal(s.poke)
		}
	}
	l := &listener{
		pool:      m.cfg.Projector,
		channels:  []string{SwitchChannel},
		retry:     m.cfg.RetryDelay,
		log:       m.log,
		onConnect: pokeAll,
		onNotify: func(_, payload string) {
			name, _, _ := strings.Cut(payload, ":")
			if s := sups[name]; s != nil {
				signal(s.poke)
			}
		},
	}
	var wg sync.WaitGroup
	wg.Go(func() { l.run(ctx) })
	wg.Go(func() {
		t := time.NewTicker(m.cfg.RecheckInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				pokeAll(ctx)
			}
		}
	})
	for _, s := range sups {
		wg.Go(func() { s.run(ctx) })
	}
	wg.Wait()
	return nil
}

// lag is how many of the projection's events come after the checkpoint of s. For a Selective
// projection that is what its generation's consumer has not had acknowledged (pending, or
// delivered and in flight), at most every event after the checkpoint, which is the answer when
// the consumer cannot be read (no runner has started the generation yet).
func (m *Manager) lag(ctx context.Context, s Status) uint64 {
	all := s.StreamLastSeq - s.Checkpoint
	if _, ok := m.byName[s.Projection].(Selective); !ok || all == 0 {
		return all
	}
	cons, err := m.cfg.Store.Stream().Consumer(ctx, ConsumerName(s.Projection, s.Generation))
	if err != nil {
		return all
	}
	info := cons.CachedInfo()
	if info == nil {
		return all
	}
	return min(all, info.NumPending+uint64(info.NumAckPending))
}

// lagSubject is the subject filter of the events that count in a projection's lag: its
// consumer's one filter, or every event when it has several (the first event after the
// checkpoint is then the first of any aggregate, which is never younger than the projection's).
func (m *Manager) lagSubject(name string) string {
	prefix := m.cfg.Store.Config().SubjectPrefix
	p, ok := m.byName[name]
	if !ok {
		return prefix + ".>"
	}
	if subjects := subjectsOf(p, prefix); len(subjects) == 1 {
		return subjects[0]
	}
	return prefix + ".>"
}
