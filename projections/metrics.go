package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are what runners record as they work: batch durations, events applied and failures.
// Create them once per registry with NewMetrics and pass them in ManagerConfig.Metrics (or
// RunnerConfig.Metrics); a nil *Metrics records nothing. The state of each generation —
// checkpoint, lag, stopped — is read when scraped, by a StatusCollector.
type Metrics struct {
	batchDuration *prometheus.HistogramVec
	applied       *prometheus.CounterVec
	errors        *prometheus.CounterVec
}

// Values of the kind label of metachat_projection_errors_total.
const (
	// ErrorKindPoison is an event the projection cannot decode or apply: the projection stops.
	ErrorKindPoison = "poison"
	// ErrorKindFailure is any other failure of a runner (database or NATS trouble, a lost lock):
	// the runner is started again after a delay.
	ErrorKindFailure = "failure"
)

// NewMetrics creates the runners' series and registers them on reg, each labelled with the
// projection's name:
//
//   - metachat_projection_batch_duration_seconds (histogram): one fetched batch, from the start of
//     its transaction to its acknowledgement;
//   - metachat_projection_events_applied_total: events applied and checkpointed;
//   - metachat_projection_errors_total{kind}: runner failures, kind "poison" (an event stopped the
//     projection) or "failure" (anything else; the runner restarts).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("projections metrics: nil registerer")
	}
	m := &Metrics{
		batchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "metachat_projection_batch_duration_seconds",
			Help:    "Time a projection runner took to apply, commit and acknowledge one batch of events.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"projection"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metachat_projection_events_applied_total",
			Help: "Events a projection applied and checkpointed.",
		}, []string{"projection"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metachat_projection_errors_total",
			Help: "Projection runner failures: kind poison (an event stopped the projection) or failure (the runner restarts).",
		}, []string{"projection", "kind"}),
	}
	for _, c := range []prometheus.Collector{m.batchDuration, m.applied, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("projections metrics: %w", err)
		}
	}
	return m, nil
}

// batch records one committed batch of projection that applied n events in d.
func (m *Metrics) batch(projection string, n int, d time.Duration) {
	if m == nil {
		return
	}
	m.batchDuration.WithLabelValues(projection).Observe(d.Seconds())
	m.applied.WithLabelValues(projection).Add(float64(n))
}

// failed records a runner failure of projection.
func (m *Metrics) failed(projection, kind string) {
	if m == nil {
		return
	}
	m.errors.WithLabelValues(projection, kind).Inc()
}

// known makes projection's series exist at zero, so that rates work from the start.
func (m *Metrics) known(projection string) {
	if m == nil {
		return
	}
	m.batchDuration.WithLabelValues(projection)
	m.applied.WithLabelValues(projection)
	m.errors.WithLabelValues(projection, ErrorKindPoison)
	m.errors.WithLabelValues(projection, ErrorKindFailure)
}

// DefaultStatusTimeout bounds the reads one scrape of a StatusCollector makes.
const DefaultStatusTimeout = 3 * time.Second

// StatusCollectorConfig configures a StatusCollector.
type StatusCollectorConfig struct {
	// Manager is whose projections are reported.
	Manager *Manager
	// Timeout bounds the reads of one scrape (Manager.Status and one stream read per lagging
	// generation). Default DefaultStatusTimeout.
	Timeout time.Duration
	// Logger receives a line when the status cannot be read. Nil discards it.
	Logger *slog.Logger
	// Now is the clock the lag in seconds is measured with. Default time.Now.
	Now func() time.Time
}

func (c *StatusCollectorConfig) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultStatusTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c StatusCollectorConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Manager == nil {
		errs = append(errs, errors.New("no manager"))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v is negative", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid projection status collector config: %w", err)
	}
	return nil
}

// StatusCollector reports, at each scrape, the state of every active or building projection
// generation, read the way Manager.Status reads it (the checkpoint rows in Postgres, the stream's
// last sequence in NATS), so every instance reports the same figures whichever one runs the
// projection. Labels: projection, generation and state (active or building):
//
//   - metachat_projection_checkpoint_sequence: the stream sequence of the last event applied;
//   - metachat_projection_lag_events: events in the stream after the checkpoint (for a Selective
//     projection, of its own aggregate types: Manager.Status);
//   - metachat_projection_lag_seconds: the age of the oldest unapplied event — now minus the time
//     the stream stored the first event after the checkpoint; 0 when caught up. It grows by one
//     second per second while the projection is stuck, however little is written;
//   - metachat_projection_stopped: 1 while a poison event stops the generation, else 0;
//   - metachat_projection_running: 1 while a runner of this process holds the generation's lock
//     (exactly one instance should, for each active generation).
//
// When the status cannot be read (Postgres or NATS down) the scrape has none of these series; the
// dependency metrics say why.
type StatusCollector struct {
	cfg                                            StatusCollectorConfig
	checkpoint, lagEvents, lagSeconds, stopped, up *prometheus.Desc
}

// NewStatusCollector creates the collector and registers it on reg.
func NewStatusCollector(reg prometheus.Registerer, cfg StatusCollectorConfig) (*StatusCollector, error) {
	if reg == nil {
		return nil, errors.New("projection status collector: nil registerer")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	labels := []string{"projection", "generation", "state"}
	c := &StatusCollector{
		cfg: cfg,
		checkpoint: prometheus.NewDesc("metachat_projection_checkpoint_sequence",
			"Stream sequence of the last event the projection generation applied.", labels, nil),
		lagEvents: prometheus.NewDesc("metachat_projection_lag_events",
			"Events in the stream after the projection generation's checkpoint.", labels, nil),
		lagSeconds: prometheus.NewDesc("metachat_projection_lag_seconds",
			"Age of the oldest event the projection generation has not applied (0 when caught up).", labels, nil),
		stopped: prometheus.NewDesc("metachat_projection_stopped",
			"1 while a poison event stops the projection generation, else 0.", labels, nil),
		up: prometheus.NewDesc("metachat_projection_running",
			"1 while a runner of this process holds the projection generation's lock and applies events.", labels, nil),
	}
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("projection status collector: %w", err)
	}
	return c, nil
}

// Describe implements prometheus.Collector.
func (c *StatusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.checkpoint, c.lagEvents, c.lagSeconds, c.stopped, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *StatusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	st, err := c.cfg.Manager.Status(ctx)
	if err != nil {
		c.cfg.Logger.WarnContext(ctx, "projection metrics: status unavailable", "error", err)
		return
	}
	now := c.cfg.Now()
	for _, s := range st {
		if s.State != StateActive && s.State != StateBuilding {
			continue
		}
		lv := []string{s.Projection, strconv.Itoa(s.Generation), s.State}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
		}
		gauge(c.checkpoint, float64(s.Checkpoint))
		gauge(c.lagEvents, float64(s.Lag))
		gauge(c.stopped, boolValue(s.Stopped))
		gauge(c.up, boolValue(s.Running))
		age, err := c.lagAge(ctx, s, now)
		if err != nil {
			c.cfg.Logger.WarnContext(ctx, "projection metrics: oldest unapplied event unavailable",
				"projection", s.Projection, "generation", s.Generation, "error", err)
			continue
		}
		gauge(c.lagSeconds, age.Seconds())
	}
}

// lagAge returns how long the first event after s's checkpoint has been in the stream, 0 when
// there is none.
func (c *StatusCollector) lagAge(ctx context.Context, s Status, now time.Time) (time.Duration, error) {
	if s.Lag == 0 {
		return 0, nil
	}
	m := c.cfg.Manager
	msg, err := m.cfg.Store.Stream().GetMsg(ctx, s.Checkpoint+1, jetstream.WithGetMsgSubject(m.lagSubject(s.Projection)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read event after %d: %w", s.Checkpoint, err)
	}
	return max(now.Sub(msg.Time), 0), nil
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
