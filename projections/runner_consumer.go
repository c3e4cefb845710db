package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// consumer returns the generation's durable consumer, created afresh so that the next event it
// delivers is the one after the checkpoint. An existing one is deleted first, always: it may still
// hold pull requests of a runner that died (a killed process's requests live on in the server
// until they expire, and an event delivered to one is lost to this runner until AckWait passes,
// while later events come here — a gap), events delivered and never acknowledged, or an
// acknowledgement floor past the checkpoint (a database restored from an older backup). A fresh
// consumer also numbers its deliveries from 1, which is how the runner notices a delivery it never
// received (runner_batch.go). Only the holder of the generation's lock calls this, so nobody else
// uses the consumer meanwhile.
func (r *Runner) consumer(ctx context.Context, cp uint64) (jetstream.Consumer, error) {
	stream := r.cfg.Store.Stream()
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read stream state: %w", err)
	}
	if cp > info.State.LastSeq {
		return nil, fmt.Errorf("checkpoint %d is beyond the stream's last sequence %d: the stream is not the one "+
			"this read model was built from; rebuild the projection", cp, info.State.LastSeq)
	}
	name := ConsumerName(r.name, r.cfg.Generation)
	filters := subjectsOf(r.cfg.Projection, r.cfg.Store.Config().SubjectPrefix)
	if err := stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("delete consumer %s: %w", name, err)
	}
	return r.createConsumer(ctx, stream, name, filters, cp)
}

func (r *Runner) createConsumer(ctx context.Context, stream jetstream.Stream, name string, filters []string, cp uint64) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   fmt.Sprintf("Metachat projection %s generation %d", r.name, r.cfg.Generation),
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   cp + 1,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       r.cfg.Tuning.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: r.cfg.Tuning.MaxAckPending,
	}
	if len(filters) == 1 {
		cfg.FilterSubject = filters[0]
	} else {
		cfg.FilterSubjects = filters
	}
	cons, err := stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s at %d: %w", name, cp+1, err)
	}
	return cons, nil
}
