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
// limit in all, without waiting: a batch costs one wait only when the runner is idle. No event
// within idle is an empty batch and no error.
func (f *feed) next(ctx context.Context, idle time.Duration, limit int) ([]jetstream.Msg, error) {
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
	for len(msgs) < limit {
		select {
		case m := <-f.msgs:
			msgs = append(msgs, m)
		default:
			return msgs, nil
		}
	}
	return msgs, nil
}
