package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/domain"
)

// subscribeHeartbeat is how often the server tells an idle subscription it is alive. Two missed
// heartbeats make the client recreate the consumer: a short period recovers quickly from a pull
// request lost while a clustered stream's consumer was being placed.
const subscribeHeartbeat = time.Second

// Subscribe calls fn for every event matching filter from sequence from on, in order: the stored
// ones, then new ones as they are appended. It reads with an ordered consumer, which the client
// recreates after a gap or a reconnection. It returns nil when ctx is done and fn's error as is when
// fn fails.
func (s *JetStream) Subscribe(ctx context.Context, from uint64, filter domain.Filter, fn func(domain.Envelope) error) error {
	return s.SubscribePassing(ctx, from, filter, nil, fn)
}

// SubscribePassing implements domain.PassingSubscriber: pass, when not nil, sees each event's
// aggregate (from its subject) and sequence first, and an event it passes over is not decoded.
func (s *JetStream) SubscribePassing(ctx context.Context, from uint64, filter domain.Filter,
	pass func(domain.AggregateRef, uint64) bool, fn func(domain.Envelope) error) error {
	subject, err := FilterSubject(s.cfg.SubjectPrefix, filter)
	if err != nil {
		return err
	}
	if fn == nil {
		return domain.Errorf(domain.EINVALID, "Subscribe needs a function to call.")
	}
	cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    max(from, 1),
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return unavailable("create ordered consumer on "+subject, err)
	}
	it, err := cons.Messages(jetstream.PullHeartbeat(subscribeHeartbeat))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return unavailable("consume "+subject, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return unavailable("consume "+subject, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return unavailable("consume "+subject, fmt.Errorf("message metadata: %w", err))
		}
		if pass != nil {
			if agg, err := aggregateOfSubject(msg.Subject()); err == nil && pass(agg, md.Sequence.Stream) {
				continue
			}
		}
		env, err := DecodeMsg(msg.Subject(), msg.Data(), md.Sequence.Stream)
		if err != nil {
			return fmt.Errorf("subscribe to %s: %w", subject, err)
		}
		if err := fn(env); err != nil {
			return err
		}
	}
}
