package projections

import (
	"context"
	"errors"
	"sync"
	"time"
)

// supervisor keeps one runner going for the active generation of one projection, inside
// Manager.Run.
type supervisor struct {
	m *Manager
	p Projection
	// poke asks the supervisor to re-read the active generation (a switch, or the periodic check).
	poke chan struct{}
	// resume restarts a runner stopped by a poison event.
	resume chan struct{}

	mu     sync.Mutex
	runner *Runner
}

// current returns the runner of the moment, nil between runners.
func (s *supervisor) current() *Runner {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runner
}

func (s *supervisor) run(ctx context.Context) {
	name := s.p.Name()
	log := s.m.log.With("projection", name)
	delay := s.m.cfg.RetryDelay
	for ctx.Err() == nil {
		gen, err := activeGeneration(ctx, s.m.cfg.Projector, name)
		if err == nil && gen == 0 {
			err = errors.New("no active generation")
		}
		if err != nil {
			if ctx.Err() == nil {
				log.ErrorContext(ctx, "read active generation", "error", err, "retry_in", delay)
			}
			s.wait(ctx, delay)
			delay = min(2*delay, s.m.cfg.MaxRetryDelay)
			continue
		}
		r, err := NewRunner(s.m.runnerConfig(s.p, gen))
		if err != nil { // the configuration was validated by NewManager
			log.ErrorContext(ctx, "new runner", "error", err)
			return
		}
		s.mu.Lock()
		s.runner = r
		s.mu.Unlock()
		err = s.runUntilSwitch(ctx, r, gen)
		var stopped *StoppedError
		switch {
		case ctx.Err() != nil:
			return
		case errors.As(err, &stopped):
			s.waitForResume(ctx, gen)
			delay = s.m.cfg.RetryDelay
		case err != nil:
			log.ErrorContext(ctx, "projection runner failed; restarting", "generation", gen, "error", err, "retry_in", delay)
			s.wait(ctx, delay)
			delay = min(2*delay, s.m.cfg.MaxRetryDelay)
		default:
			delay = s.m.cfg.RetryDelay
		}
		s.mu.Lock()
		s.runner = nil
		s.mu.Unlock()
	}
}

// runUntilSwitch runs r until it returns, or until the active generation is no longer gen.
func (s *supervisor) runUntilSwitch(ctx context.Context, r *Runner, gen int) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	for {
		select {
		case err := <-done:
			return err
		case <-s.poke:
			if s.switched(ctx, gen) {
				cancel()
				return <-done // nil: the runner stops cleanly when cancelled
			}
		}
	}
}

// switched reports whether the active generation is known to differ from gen.
func (s *supervisor) switched(ctx context.Context, gen int) bool {
	now, err := activeGeneration(ctx, s.m.cfg.Projector, s.p.Name())
	return err == nil && now != 0 && now != gen
}

// waitForResume waits, after a poison event stopped generation gen, for Resume, a switch to
// another generation (a rebuild with fixed code) or the end of ctx.
func (s *supervisor) waitForResume(ctx context.Context, gen int) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.resume:
			return
		case <-s.poke:
			if s.switched(ctx, gen) {
				return
			}
		}
	}
}

// wait sleeps for d, cut short by ctx, a poke or a resume.
func (s *supervisor) wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-s.poke:
	case <-s.resume:
	}
}
