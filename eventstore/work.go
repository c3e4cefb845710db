package eventstore

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
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
	// Concurrency is how many events are worked on at once in this process (default 1). Events of
	// one aggregate always go to the same worker, so they are worked on one at a time and in order.
	Concurrency int
	// Logger receives failures; nil discards them.
	Logger *slog.Logger
}

// Work calls fn for every event matching cfg.Filter — the stored ones the durable consumer has
// not acknowledged yet, then new ones — acknowledging each after fn returns nil and asking for
// redelivery after the configured backoff when fn fails. It is the at-least-once delivery of
// reactors (the document pipeline, the assistant): fn must be idempotent. Up to cfg.Concurrency
// events are worked on at once, those of one aggregate one at a time and in order; only a few
// events per worker are taken ahead, and a job that runs long tells JetStream it is still in
// progress, so nothing is handed out again merely for waiting its turn. It returns nil when ctx is
// done.
func (s *JetStream) Work(ctx context.Context, cfg WorkConfig, fn func(context.Context, domain.Envelope) error) error {
	subject, err := FilterSubject(s.cfg.SubjectPrefix, cfg.Filter)
	if err != nil {
		return err
	}
	if cfg.Durable == "" || fn == nil {
		return domain.Errorf(domain.EINVALID, "Work needs a durable name and a function.")
	}
	cfg.setDefaults()
	cons, err := s.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: cfg.Durable, FilterSubjects: []string{subject}, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: workMaxAckPending, Replicas: s.cfg.Replicas,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return unavailable("create work consumer "+cfg.Durable, err)
	}
	it, err := cons.Messages(jetstream.PullHeartbeat(subscribeHeartbeat), jetstream.PullMaxMessages(cfg.Concurrency+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return unavailable("consume "+cfg.Durable, err)
	}
	defer it.Stop()
	w := worker{cfg: cfg, fn: fn, taken: map[jetstream.Msg]struct{}{}}
	pctx, stopPings := context.WithCancel(ctx)
	defer stopPings()
	go w.ping(pctx)
	// A worker's queue holds every event taken for it: at most MaxAckPending in all, so handing an
	// event to a worker never waits.
	queues := make([]chan jetstream.Msg, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan jetstream.Msg, workMaxAckPending)
		wg.Go(func() {
			for msg := range queues[i] {
				w.job(ctx, msg)
				w.done(msg)
			}
		})
	}
	defer func() {
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
	}()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if errors.Is(err, jetstream.ErrNoHeartbeat) && ctx.Err() == nil {
			// A busy or briefly unreachable server: the iterator asks again by itself.
			cfg.Logger.Warn("work: missed heartbeats; asking for events again", "consumer", cfg.Durable)
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return unavailable("consume "+cfg.Durable, err)
		}
		w.take(msg)
		h := fnv.New32a()
		_, _ = h.Write([]byte(msg.Subject()))
		queues[h.Sum32()%uint32(len(queues))] <- msg
	}
}

// workMaxAckPending bounds the events a work consumer has handed out and not had acknowledged.
const workMaxAckPending = 1000

func (c *WorkConfig) setDefaults() {
	if c.AckWait <= 0 {
		c.AckWait = 2 * time.Minute
	}
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 20
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// worker works on the events Work hands it.
type worker struct {
	cfg WorkConfig
	fn  func(context.Context, domain.Envelope) error

	mu    sync.Mutex
	taken map[jetstream.Msg]struct{} // events taken and not yet done with
}

// take records msg as taken: it is in progress from now on, waiting for its worker or worked on.
func (w *worker) take(msg jetstream.Msg) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.taken[msg] = struct{}{}
}

// done records that msg was acknowledged, or handed back.
func (w *worker) done(msg jetstream.Msg) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.taken, msg)
}

// ping tells JetStream every half AckWait that the taken events are in progress, until ctx ends,
// so that none is handed out again while it waits for its worker or is worked on.
func (w *worker) ping(ctx context.Context) {
	t := time.NewTicker(w.cfg.AckWait / 2)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		w.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(w.taken))
		for m := range w.taken {
			msgs = append(msgs, m)
		}
		w.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
}

// job works on one event: decodes it, runs fn, then acknowledges it or asks for it again after the
// backoff.
func (w *worker) job(ctx context.Context, msg jetstream.Msg) {
	if ctx.Err() != nil {
		_ = msg.Nak() // stopping: handed out again at once, to whoever works next
		return
	}
	log, cfg := w.cfg.Logger, w.cfg
	md, err := msg.Metadata()
	if err != nil {
		log.Error("work: message without metadata left", "consumer", cfg.Durable, "err", err)
		_ = msg.Term()
		return
	}
	env, err := DecodeMsg(msg.Subject(), msg.Data(), md.Sequence.Stream)
	if err != nil {
		// An event this code cannot read never becomes readable by waiting: leave it.
		log.Error("work: undecodable event left", "consumer", cfg.Durable, "seq", md.Sequence.Stream, "err", err)
		_ = msg.Term()
		return
	}
	err = w.fn(domain.WithCorrelationID(ctx, env.CorrelationID), env)
	if err != nil {
		if ctx.Err() != nil {
			_ = msg.Nak()
			return
		}
		delay := cfg.Backoff[min(int(md.NumDelivered)-1, len(cfg.Backoff)-1)]
		log.Warn("work: job failed, will retry", "consumer", cfg.Durable, "event_id", env.ID, "type", env.Type,
			"attempt", md.NumDelivered, "retry_in", delay, "err", err)
		if int(md.NumDelivered) >= cfg.MaxDeliver {
			log.Error("work: job failed for the last time", "consumer", cfg.Durable, "event_id", env.ID, "err", err)
		}
		_ = msg.NakWithDelay(delay)
		return
	}
	if err := msg.DoubleAck(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("work: ack failed; the job will be redelivered", "consumer", cfg.Durable, "event_id", env.ID, "err", err)
	}
}
