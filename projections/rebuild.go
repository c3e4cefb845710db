package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/domain"
)

// Progress reports a rebuild's progress: done events of total applied so far. total is the
// stream's last sequence when the rebuild started, raised if the rebuild passes it. With
// schollz/progressbar/v3:
//
//	bar := progressbar.Default(-1, "rebuild tenants")
//	progress := func(done, total uint64) { bar.ChangeMax64(int64(total)); _ = bar.Set64(int64(done)) }
type Progress func(done, total uint64)

// Rebuild replays the whole stream into a new generation of the projection beside the live one
// and then switches reads to it. It creates generation N+1 (state building, Setup in
// rm_<name>_g<N+1>), runs a runner for it from sequence 1 until its checkpoint reaches the stream's
// last sequence as of the start (reporting progress, which may be nil), then activates it in one
// transaction: the public views, the generation states, and a SwitchChannel notification, on which
// every Manager.Run (in any process) stops the old generation's runner and runs the new one. The
// old generation keeps serving reads until that commit, and stays as a retired generation until
// DropRetired. Rebuild returns the new generation. Only one rebuild of a projection runs at a time
// (ECONFLICT otherwise); a generation left building by an interrupted rebuild is retired by the
// next one. A poison event fails the rebuild and leaves the old generation active.
func (m *Manager) Rebuild(ctx context.Context, name string, progress Progress) (int, error) {
	p, err := m.projection(name)
	if err != nil {
		return 0, err
	}
	if progress == nil {
		progress = func(uint64, uint64) {}
	}
	lock, err := acquireSessionLock(ctx, m.cfg.Owner, rebuildLockKey(name), false)
	if err != nil {
		return 0, fmt.Errorf("rebuild %s: %w", name, err)
	}
	if lock == nil {
		return 0, domain.Errorf(domain.ECONFLICT, "A rebuild of projection %s is already running.", name)
	}
	defer lock.release()
	if err := m.ensure(ctx, p); err != nil {
		return 0, fmt.Errorf("rebuild %s: %w", name, err)
	}
	gen, err := m.newGeneration(ctx, p)
	if err != nil {
		return 0, fmt.Errorf("rebuild %s: %w", name, err)
	}
	log := m.log.With("projection", name, "generation", gen)
	target, err := m.cfg.Store.LastSequence(ctx)
	if err != nil {
		return 0, fmt.Errorf("rebuild %s: %w", name, err)
	}
	log.InfoContext(ctx, "rebuild started", "events", target)
	started := time.Now()
	progress(0, target)
	if target > 0 {
		if err := m.catchUp(ctx, p, gen, target, progress); err != nil {
			return 0, fmt.Errorf("rebuild %s generation %d: %w", name, gen, err)
		}
	}
	if err := m.switchTo(ctx, name, gen); err != nil {
		return 0, fmt.Errorf("rebuild %s: switch to generation %d: %w", name, gen, err)
	}
	log.InfoContext(ctx, "rebuild switched reads to the new generation", "events", target, "took", time.Since(started))
	return gen, nil
}

// switchAttempts is how many times Rebuild tries to switch when long reading transactions keep the
// views locked.
const switchAttempts = 10

// switchTo activates generation gen, retrying when the views stay locked by readers.
func (m *Manager) switchTo(ctx context.Context, name string, gen int) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, m.cfg.Owner, func(tx pgx.Tx) error { return activate(ctx, tx, name, gen) })
		var pgErr *pgconn.PgError
		if err == nil || attempt == switchAttempts || !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
			return err
		}
		m.log.WarnContext(ctx, "switch waits for long reading transactions; retrying",
			"projection", name, "generation", gen, "attempt", attempt)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// newGeneration retires generations left building by an interrupted rebuild and creates the next
// generation in state building.
func (m *Manager) newGeneration(ctx context.Context, p Projection) (int, error) {
	name := p.Name()
	var gen int
	err := pgx.BeginFunc(ctx, m.cfg.Owner, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", generationsLockKey(name)); err != nil {
			return fmt.Errorf("lock generations: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE public.projection_generations SET state = 'retired', retired_at = now()
			WHERE projection = $1 AND state = 'building'`, name); err != nil {
			return fmt.Errorf("retire abandoned generations: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(generation), 0) + 1 FROM public.projection_generations
			WHERE projection = $1`, name).Scan(&gen); err != nil {
			return fmt.Errorf("next generation: %w", err)
		}
		return createGeneration(ctx, tx, p, gen)
	})
	return gen, err
}

// catchUp runs a runner for the building generation gen until its checkpoint reaches target.
func (m *Manager) catchUp(ctx context.Context, p Projection, gen int, target uint64, progress Progress) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reached := make(chan struct{})
	var once sync.Once
	cfg := m.runnerConfig(p, gen)
	done := func(cp uint64) {
		once.Do(func() {
			progress(max(cp, target), max(cp, target))
			close(reached)
			cancel()
		})
	}
	cfg.OnCommit = func(cp, _ uint64) {
		if cp >= target {
			done(cp)
			return
		}
		progress(cp, target)
	}
	// A Selective projection's consumer sees its own events only: none pending means every one
	// of them up to the target (and beyond) is applied, even when the stream ends with others.
	cfg.OnCaughtUp = done
	r, err := NewRunner(cfg)
	if err != nil {
		return err
	}
	err = r.Run(ctx)
	select {
	case <-reached:
		return nil
	default:
	}
	if err == nil {
		return ctx.Err()
	}
	return err
}

// DropRetired drops the retired generations of a projection: for each it waits until no runner
// holds the generation (a process that has not followed the switch yet stops on its notification),
// deletes its consumer, drops its schema and checkpoint and marks it dropped. It returns the
// generations dropped.
func (m *Manager) DropRetired(ctx context.Context, name string) ([]int, error) {
	if _, err := m.projection(name); err != nil {
		return nil, err
	}
	rows, err := m.cfg.Owner.Query(ctx, `SELECT generation FROM public.projection_generations
		WHERE projection = $1 AND state = 'retired' AND dropped_at IS NULL ORDER BY generation`, name)
	if err != nil {
		return nil, fmt.Errorf("drop retired generations of %s: %w", name, err)
	}
	gens, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("drop retired generations of %s: %w", name, err)
	}
	var dropped []int
	for _, gen := range gens {
		if err := m.dropGeneration(ctx, name, gen); err != nil {
			return dropped, fmt.Errorf("drop generation %d of %s: %w", gen, name, err)
		}
		dropped = append(dropped, gen)
		m.log.InfoContext(ctx, "retired generation dropped", "projection", name, "generation", gen)
	}
	return dropped, nil
}

func (m *Manager) dropGeneration(ctx context.Context, name string, gen int) error {
	lock, err := acquireSessionLock(ctx, m.cfg.Owner, runnerLockKey(name, gen), true)
	if err != nil {
		return fmt.Errorf("wait for its runner to stop: %w", err)
	}
	defer lock.release()
	consumer := ConsumerName(name, gen)
	if err := m.cfg.Store.Stream().DeleteConsumer(ctx, consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete consumer %s: %w", consumer, err)
	}
	schema := SchemaName(name, gen)
	return pgx.BeginFunc(ctx, m.cfg.Owner, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", generationsLockKey(name)); err != nil {
			return fmt.Errorf("lock generations: %w", err)
		}
		var state string
		if err := tx.QueryRow(ctx, `SELECT state FROM public.projection_generations
			WHERE projection = $1 AND generation = $2 FOR UPDATE`, name, gen).Scan(&state); err != nil {
			return fmt.Errorf("read generation: %w", err)
		}
		if state != StateRetired {
			return fmt.Errorf("generation is %s, not retired", state)
		}
		// DROP SCHEMA … CASCADE would also drop views reading the schema: refuse if any public
		// view still does (it would mean the switch did not move it).
		var used bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (
				SELECT 1 FROM pg_rewrite r
				JOIN pg_class v ON v.oid = r.ev_class
				JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
					AND d.refclassid = 'pg_class'::regclass
				JOIN pg_class t ON t.oid = d.refobjid
				JOIN pg_namespace tn ON tn.oid = t.relnamespace
				WHERE tn.nspname = $1 AND v.relnamespace <> tn.oid)`, schema).Scan(&used); err != nil {
			return fmt.Errorf("check views on %s: %w", schema, err)
		}
		if used {
			return fmt.Errorf("views outside %s still read it", schema)
		}
		if _, err := tx.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			return fmt.Errorf("drop schema %s: %w", schema, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM public.projection_checkpoints WHERE projection = $1 AND generation = $2`,
			name, gen); err != nil {
			return fmt.Errorf("delete checkpoint: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE public.projection_generations SET dropped_at = now()
			WHERE projection = $1 AND generation = $2`, name, gen); err != nil {
			return fmt.Errorf("mark dropped: %w", err)
		}
		return nil
	})
}
