package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of DependencyMonitorConfig.
const (
	DefaultCheckInterval = 15 * time.Second
	DefaultCheckTimeout  = 5 * time.Second
)

// DependencyCheck is one dependency the monitor checks: Check returns nil while it is usable.
type DependencyCheck struct {
	// Name is the dependency's label value, a fixed word such as "nats" or "postgres".
	Name  string
	Check func(ctx context.Context) error
}

// DependencyMonitorConfig configures a DependencyMonitor.
type DependencyMonitorConfig struct {
	// Checks are the dependencies, each with a distinct name.
	Checks []DependencyCheck
	// Interval is the time between two rounds of checks. Default DefaultCheckInterval.
	Interval time.Duration
	// Timeout bounds each check. Default DefaultCheckTimeout.
	Timeout time.Duration
	// Logger receives a line when a dependency goes down (warn) and when it comes back (info).
	// Nil discards them.
	Logger *slog.Logger
}

func (c *DependencyMonitorConfig) setDefaults() {
	if c.Interval == 0 {
		c.Interval = DefaultCheckInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultCheckTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c DependencyMonitorConfig) Validate() error {
	c.setDefaults()
	var errs []error
	seen := map[string]bool{}
	for i, ch := range c.Checks {
		if ch.Name == "" || ch.Check == nil {
			errs = append(errs, fmt.Errorf("check %d needs a name and a function", i))
		}
		if seen[ch.Name] {
			errs = append(errs, fmt.Errorf("check %q is listed twice", ch.Name))
		}
		seen[ch.Name] = true
	}
	if c.Interval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("interval %v is below 10ms", c.Interval))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %v must be positive", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid dependency monitor config: %w", err)
	}
	return nil
}

// DependencyMonitor checks Metachat's dependencies periodically and publishes the outcome as
//
//   - metachat_dependency_up{dependency}: 1 when the last check passed, 0 when it failed;
//   - metachat_dependency_check_duration_seconds{dependency}: how long the last check took.
//
// A dependency has no series until its first check, so a fresh process never claims a dependency
// is down before it looked. The checks run in the background (Run), never in a scrape, so a slow
// dependency cannot slow the scrape down.
type DependencyMonitor struct {
	cfg      DependencyMonitorConfig
	up       *prometheus.GaugeVec
	duration *prometheus.GaugeVec

	mu   sync.Mutex
	last map[string]error // the last outcome of each check
}

// NewDependencyMonitor creates the monitor and registers its series on reg.
func NewDependencyMonitor(reg prometheus.Registerer, cfg DependencyMonitorConfig) (*DependencyMonitor, error) {
	if reg == nil {
		return nil, errors.New("dependency monitor: nil registerer")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m := &DependencyMonitor{
		cfg: cfg,
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "metachat_dependency_up",
			Help: "1 when the last check of the dependency passed, 0 when it failed.",
		}, []string{"dependency"}),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "metachat_dependency_check_duration_seconds",
			Help: "How long the last check of the dependency took.",
		}, []string{"dependency"}),
		last: map[string]error{},
	}
	for _, c := range []prometheus.Collector{m.up, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("dependency monitor: %w", err)
		}
	}
	return m, nil
}

// Run checks every dependency at once, then every Interval, until ctx ends; it returns nil then.
func (m *DependencyMonitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.CheckNow(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// CheckNow runs every check once, concurrently, and publishes the outcomes.
func (m *DependencyMonitor) CheckNow(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range m.cfg.Checks {
		wg.Go(func() { m.check(ctx, c) })
	}
	wg.Wait()
}

func (m *DependencyMonitor) check(ctx context.Context, c DependencyCheck) {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	start := time.Now()
	err := c.Check(cctx)
	d := time.Since(start)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the outcome says nothing about the dependency
	}
	m.duration.WithLabelValues(c.Name).Set(d.Seconds())
	up := 1.0
	if err != nil {
		up = 0
	}
	m.up.WithLabelValues(c.Name).Set(up)

	m.mu.Lock()
	prev, seen := m.last[c.Name]
	m.last[c.Name] = err
	m.mu.Unlock()
	switch {
	case err != nil && (!seen || prev == nil):
		m.cfg.Logger.WarnContext(ctx, "dependency down", "dependency", c.Name, "error", err)
	case err == nil && seen && prev != nil:
		m.cfg.Logger.InfoContext(ctx, "dependency back up", "dependency", c.Name)
	}
}
