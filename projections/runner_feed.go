package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// feed is a runner's subscription to its consumer. JetStream pushes events ahead of the runner,
// up to one batch buffered, so while a batch is being applied the next one is already arriving
// and taking it costs no round trip to the server. The library re-requests events after a
// reconnect or a missed heartbeat by itself; only errors that end the subscription (the consumer
// was deleted, the connection closed) reach the runner.
type feed struct {
	cc   jetstream.ConsumeContext
	msgs chan jetstream.Msg
	errs chan error
	done chan struct{}
}

// subscribe starts consuming cons into a feed; close it with stop.
func (r *Runner) subscribe(cons jetstream.Consumer) (*feed, error) {
	f := &feed{
		msgs: make(chan jetstream.Msg, r.cfg.Tuning.BatchSize),
		errs: make(chan error, 1),
		done: make(chan struct{}),
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case f.msgs <- m:
		case <-f.done:
		}
	},
		jetstream.PullMaxMessages(r.cfg.Tuning.BatchSize),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !endsFeed(err) {
				r.log.Debug("consume events", "error", err)
				return
			}
			select {
			case f.errs <- err:
			default:
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("consume events: %w", err)
	}
	f.cc = cc
	return f, nil
}

// endsFeed reports the consume errors after which no more events come.
func endsFeed(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrConnectionClosed)
}

// stop ends the subscription; events buffered and not yet handed out are redelivered later (they
// are not acknowledged).
func (f *feed) stop() {
	f.cc.Stop()
	close(f.done)
}

// next waits up to idle for the next event, then takes whatever else is already buffered, up to
// limit in all; under steady traffic (pace) a small batch also lingers up to Tuning.Linger for
// more. No event within idle is an empty batch and no error.
func (f *feed) next(ctx context.Context, idle time.Duration, limit int, pace *lingerPace) ([]jetstream.Msg, error) {
	timer := time.NewTimer(idle)
	defer timer.Stop()
	var first jetstream.Msg
	select {
	case first = <-f.msgs:
	case err := <-f.errs:
		return nil, fmt.Errorf("fetch events: %w", err)
	case <-timer.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	msgs := make([]jetstream.Msg, 1, min(limit, len(f.msgs)+1))
	msgs[0] = first
	linger := pace.arrived(time.Now())
	defer func() { pace.events = len(msgs) }()
	var lingered <-chan time.Time
	for len(msgs) < limit {
		select {
		case m := <-f.msgs:
			msgs = append(msgs, m)
			continue
		default:
		}
		if linger <= 0 || len(msgs) >= lingerBelow {
			return msgs, nil
		}
		if lingered == nil {
			timer.Reset(linger)
			lingered = timer.C
		}
		select {
		case m := <-f.msgs:
			msgs = append(msgs, m)
		case <-lingered:
			return msgs, nil
		case <-ctx.Done():
			return msgs, nil // the batch is applied; the next call sees ctx
		}
	}
	return msgs, nil
}

// lingerBelow is the batch size from which a batch no longer lingers for more events.
const lingerBelow = 8

// lingerPace decides whether a batch lingers for more events after its first (Tuning.Linger):
// only when the events before it came faster than one per linger period, so that waiting is likely
// to gather more. A lone write, or a writer that waits for each of its writes to be applied before
// the next, is applied at once; steady traffic (thousands of sends a second, each waiting for its
// own) is applied a few events a transaction instead of one, which takes most of the
// per-transaction cost in Postgres (commit, notification, the listeners' wake-ups) off each event.
type lingerPace struct {
	max    time.Duration // Tuning.Linger
	first  time.Time     // when the previous batch's first event arrived
	events int           // how many events that batch had
}

// arrived records the arrival of a batch's first event at now and returns how long the batch may
// linger.
func (p *lingerPace) arrived(now time.Time) time.Duration {
	prev, n := p.first, p.events
	p.first = now
	if p.max <= 0 || n == 0 || now.Sub(prev)/time.Duration(n) >= p.max {
		return 0
	}
	return p.max
}
