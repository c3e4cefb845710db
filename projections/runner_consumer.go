package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// consumer returns the generation's durable consumer, positioned so that the next event it
// delivers is the one after the checkpoint. It creates the consumer at checkpoint+1 when there is
// none. An existing consumer is kept when it is clean; it is recreated at checkpoint+1 when it
// holds events delivered to an earlier runner and never acknowledged (JetStream would redeliver
// them only after AckWait, delaying a failover by that long), when it acknowledged past the
// checkpoint (the database was restored from an older backup: keeping it would lose events), or
// when its acknowledgement policy or filter differ from the runner's. Only the holder of the
// generation's lock calls this, so nobody else uses the consumer meanwhile.
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
	filter := r.cfg.Store.Config().SubjectPrefix + ".>"
	cons, err := stream.Consumer(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return r.createConsumer(ctx, stream, name, filter, cp)
	case err != nil:
		return nil, fmt.Errorf("look up consumer %s: %w", name, err)
	}
	ci := cons.CachedInfo()
	var why string
	switch {
	case ci.NumAckPending > 0:
		why = "events of an earlier runner are unacknowledged"
	case ci.AckFloor.Stream > cp:
		why = "the consumer acknowledged past the checkpoint"
	case ci.Config.AckPolicy != jetstream.AckAllPolicy:
		why = "acknowledgement policy differs"
	case ci.Config.FilterSubject != filter || len(ci.Config.FilterSubjects) > 0:
		why = "filter differs"
	default:
		return cons, nil
	}
	r.log.InfoContext(ctx, "recreating consumer at the checkpoint", "consumer", name, "reason", why,
		"ack_floor", ci.AckFloor.Stream, "ack_pending", ci.NumAckPending, "checkpoint", cp)
	if err := stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("delete consumer %s: %w", name, err)
	}
	return r.createConsumer(ctx, stream, name, filter, cp)
}

func (r *Runner) createConsumer(ctx context.Context, stream jetstream.Stream, name, filter string, cp uint64) (jetstream.Consumer, error) {
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   fmt.Sprintf("Metachat projection %s generation %d", r.name, r.cfg.Generation),
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   cp + 1,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       r.cfg.Tuning.AckWait,
		MaxDeliver:    -1,
		FilterSubject: filter,
		MaxAckPending: r.cfg.Tuning.MaxAckPending,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s at %d: %w", name, cp+1, err)
	}
	return cons, nil
}
