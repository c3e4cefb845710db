package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/domain"
)

// WorkConfig configures Work.
type WorkConfig struct {
	// Durable names the durable consumer; every instance that works with the same name shares
	// the work (each event goes to one of them at a time).
	Durable string
	// Filter selects the events.
	Filter domain.Filter
	// AckWait is how long a job may take before it is handed out again (default 2 minutes).
	AckWait time.Duration
	// Backoff are the redelivery delays after failures (default 1s, 5s, 30s, 2m); the last one
	// repeats.
	Backoff []time.Duration
	// MaxDeliver bounds the attempts of one event (default 20); after them the event is logged
	// and left.
	MaxDeliver int
	// Logger receives failures; nil discards them.
	Logger *slog.Logger
}

// Work calls fn for every event matching cfg.Filter — the stored ones the durable consumer has
// not acknowledged yet, then new ones — acknowledging each after fn returns nil and asking for
// redelivery after the configured backoff when fn fails. It is the at-least-once delivery of
// reactors (the document pipeline, the assistant): fn must be idempotent. It returns nil when ctx
// is done.
func (s *JetStream) Work(ctx context.Context, cfg WorkConfig, fn func(context.Context, domain.Envelope) error) error {
	subject, err := FilterSubject(s.cfg.SubjectPrefix, cfg.Filter)
	if err != nil {
		return err
	}
	if cfg.Durable == "" || fn == nil {
		return domain.Errorf(domain.EINVALID, "Work needs a durable name and a function.")
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 2 * time.Minute
	}
	if len(cfg.Backoff) == 0 {
		cfg.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = 20
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cons, err := s.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: cfg.Durable, FilterSubjects: []string{subject}, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas: s.cfg.Replicas,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return unavailable("create work consumer "+cfg.Durable, err)
	}
	it, err := cons.Messages(jetstream.PullHeartbeat(subscribeHeartbeat))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return unavailable("consume "+cfg.Durable, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return unavailable("consume "+cfg.Durable, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return unavailable("consume "+cfg.Durable, fmt.Errorf("message metadata: %w", err))
		}
		env, err := DecodeMsg(msg.Subject(), msg.Data(), md.Sequence.Stream)
		if err != nil {
			// An event this code cannot read never becomes readable by waiting: leave it.
			log.Error("work: undecodable event left", "consumer", cfg.Durable, "seq", md.Sequence.Stream, "err", err)
			_ = msg.Term()
			continue
		}
		jobCtx := domain.WithCorrelationID(ctx, env.CorrelationID)
		if err := fn(jobCtx, env); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			delay := cfg.Backoff[min(int(md.NumDelivered)-1, len(cfg.Backoff)-1)]
			log.Warn("work: job failed, will retry", "consumer", cfg.Durable, "event_id", env.ID, "type", env.Type,
				"attempt", md.NumDelivered, "retry_in", delay, "err", err)
			if int(md.NumDelivered) >= cfg.MaxDeliver {
				log.Error("work: job failed for the last time", "consumer", cfg.Durable, "event_id", env.ID, "err", err)
			}
			_ = msg.NakWithDelay(delay)
			continue
		}
		if err := msg.DoubleAck(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("work: ack failed; the job will be redelivered", "consumer", cfg.Durable, "event_id", env.ID, "err", err)
		}
	}
}
