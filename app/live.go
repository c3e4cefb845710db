package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// DefaultLiveQueueSize is how many events a follower may have waiting before it is dropped as
// lagging.
const DefaultLiveQueueSize = 256

// DefaultLiveIdleAfter is how long the hub keeps reading the stream after its last follower left:
// long enough for a page reload or a socket's reconnection.
const DefaultLiveIdleAfter = 10 * time.Second

// ErrLagged is returned by Follower.Next when the follower fell behind (its queue filled): the
// client should follow again from the last seq it has.
var ErrLagged = errors.New("live: follower fell behind")

// LiveConfig configures a Live hub.
type LiveConfig struct {
	// Store is the event store: the hub follows its conversation events, and followers catch up
	// from it. Registry decodes events (default domain.NewDefaultRegistry()).
	Store    domain.EventStore
	Registry *domain.Registry
	// Signals carry typing notices between instances.
	Signals eventstore.Signals
	// QueueSize bounds each follower's queue. Default DefaultLiveQueueSize.
	QueueSize int
	// IdleAfter is how long the hub keeps reading the stream after its last follower left; it
	// starts again, from the stream's end, when the next one follows. Default
	// DefaultLiveIdleAfter.
	IdleAfter time.Duration
	// Logger receives the hub's logs; nil discards them.
	Logger *slog.Logger
}

func (c *LiveConfig) setDefaults() {
	if c.Registry == nil {
		c.Registry = domain.NewDefaultRegistry()
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultLiveQueueSize
	}
	if c.IdleAfter == 0 {
		c.IdleAfter = DefaultLiveIdleAfter
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with the configuration.
func (c LiveConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("no event store"))
	}
	if c.Signals == nil {
		errs = append(errs, errors.New("no signals"))
	}
	if c.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("queue size %d must be at least 1", c.QueueSize))
	}
	if c.IdleAfter < 0 {
		errs = append(errs, fmt.Errorf("idle time %v must not be negative", c.IdleAfter))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid live config: %w", err)
	}
	return nil
}

// Live delivers each conversation's messages, as they are stored, to everyone following it on
// this instance — the sockets of the web chat, whoever appended the message and on whichever
// instance. One subscription per instance reads the stream's conversation events in order (an
// ordered JetStream consumer, which the client recreates after a gap) and hands each message to
// the followers of its conversation; a follower first catches up from the store, then takes live
// messages, and fills any gap from the store, so what it yields is gap-free and duplicate-free.
// Typing notices travel as signals, not events.
//
// The hub reads the stream only while someone here follows a conversation (and IdleAfter after
// the last one left): an instance nobody watches does not read every message. The first follower
// waits until the hub has fixed the stream sequence it reads from, after the follower registered
// and before it reads the store, so nothing falls between the two.
type Live struct {
	cfg      LiveConfig
	log      *slog.Logger
	instance string
	mu       sync.Mutex
	follows  map[liveKey]map[*Follower]struct{}
	// reading is the current reading of the stream (nil while idle); wanted wakes Run when the
	// first follower creates one. follows holds no empty set, so it is empty without followers.
	reading *liveReading
	wanted  chan struct{}
	decider domain.Decider[domain.Conversation, domain.ConversationCommand]
	// position is the next stream sequence the hub reads.
	position atomic.Uint64
	running  chan struct{}
	once     sync.Once
	// done is closed when Run returns.
	done     chan struct{}
	doneOnce sync.Once
}

// liveReading is one period of reading the stream: ready is closed once its starting sequence is
// fixed.
type liveReading struct {
	ready chan struct{}
}

type liveKey struct{ tenant, conversation string }

// liveItem is one queued event of a follower.
type liveItem struct {
	msg     *Message
	version uint64
	typing  *domain.Author
}

// LiveEvent is what a follower yields: a message of the conversation, or a typing notice.
type LiveEvent struct {
	Message *Message
	Typing  *domain.Author
}

// NewLive returns a hub for cfg; Run starts it.
func NewLive(cfg LiveConfig) (*Live, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Live{
		cfg: cfg, log: cfg.Logger.With("component", "app.live"), instance: uuid.NewString(),
		follows: map[liveKey]map[*Follower]struct{}{}, decider: domain.ConversationDecider(),
		running: make(chan struct{}), wanted: make(chan struct{}, 1), done: make(chan struct{}),
	}, nil
}

// Running is closed once Run has subscribed to the typing signals and serves followers.
func (l *Live) Running() <-chan struct{} { return l.running }

// Reading reports whether the hub reads the stream now (it does while it has followers).
func (l *Live) Reading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reading != nil
}

// Run serves followers until ctx is done: while there are any, it follows the stream from its end
// at the time the first of them came, resuming a broken subscription where it stopped. It
// returns nil when ctx is done.
func (l *Live) Run(ctx context.Context) error {
	stop, err := l.cfg.Signals.Subscribe("typing.*.*", l.onTyping)
	if err != nil {
		return err
	}
	defer stop()
	defer l.doneOnce.Do(func() { close(l.done) })
	l.once.Do(func() { close(l.running) })
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.wanted:
		}
		l.mu.Lock()
		r := l.reading
		l.mu.Unlock()
		if r == nil {
			continue
		}
		if !l.read(ctx, r) {
			return nil
		}
	}
}

// read is one reading period: it fixes the starting sequence (the stream's end, read after the
// first follower registered), releases the waiting followers, and follows the stream until the
// hub has had no follower for IdleAfter. It reports false when ctx ended.
func (l *Live) read(ctx context.Context, r *liveReading) bool {
	for {
		last, err := l.cfg.Store.LastSequence(ctx)
		if err == nil {
			l.position.Store(last + 1)
			break
		}
		l.log.WarnContext(ctx, "live: read the stream position", "error", err)
		if !sleepCtx(ctx, time.Second) {
			return false
		}
	}
	close(r.ready)
	// sctx ends when the hub goes idle (or ctx ends).
	sctx, cancel := context.WithCancel(ctx)
	idle := make(chan struct{})
	go func() {
		defer close(idle)
		l.untilIdle(sctx, r)
		cancel()
	}()
	defer func() { cancel(); <-idle }()
	backoff := 100 * time.Millisecond
	for {
		err := l.subscribe(sctx)
		if sctx.Err() != nil {
			return ctx.Err() == nil
		}
		l.log.WarnContext(ctx, "live: subscription ended; resuming", "from", l.position.Load(), "error", err)
		if !sleepCtx(sctx, backoff) {
			return ctx.Err() == nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// untilIdle returns once the hub has had no follower for IdleAfter (ending reading r), or when
// ctx ends.
func (l *Live) untilIdle(ctx context.Context, r *liveReading) {
	t := time.NewTicker(min(l.cfg.IdleAfter, time.Second))
	defer t.Stop()
	var since time.Time
	for {
		select {
		case <-ctx.Done():
			l.mu.Lock()
			l.reading = nil
			l.mu.Unlock()
			return
		case now := <-t.C:
			l.mu.Lock()
			switch {
			case len(l.follows) > 0:
				since = time.Time{}
			case since.IsZero():
				since = now
			case now.Sub(since) >= l.cfg.IdleAfter:
				if l.reading == r {
					l.reading = nil
				}
				l.mu.Unlock()
				return
			}
			l.mu.Unlock()
		}
	}
}

// sleepCtx waits d, reporting false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// subscribe follows the conversation events from the hub's position. With a store that can pass
// events over before decoding them, the events of conversations nobody here follows are not
// decoded (most of them, on a busy instance); a follower that registers after such an event went
// by finds it in the store, since it loads after registering.
func (l *Live) subscribe(ctx context.Context) error {
	filter := domain.Filter{AggregateType: domain.ConversationAggregate}
	if ps, ok := l.cfg.Store.(domain.PassingSubscriber); ok {
		return ps.SubscribePassing(ctx, l.position.Load(), filter, l.passOver, l.onEvent)
	}
	return l.cfg.Store.Subscribe(ctx, l.position.Load(), filter, l.onEvent)
}

// passOver reports whether the event at seq of agg goes by without being decoded: nobody here
// follows its conversation. It moves the position past it either way.
func (l *Live) passOver(agg domain.AggregateRef, seq uint64) bool {
	l.position.Store(seq + 1)
	l.mu.Lock()
	n := len(l.follows[liveKey{agg.TenantID, agg.ID}])
	l.mu.Unlock()
	return n == 0
}

// onEvent hands a stored message to its conversation's followers.
func (l *Live) onEvent(env domain.Envelope) error {
	l.position.Store(env.Sequence + 1)
	if env.Type != domain.EventMessageSent {
		return nil
	}
	key := liveKey{env.TenantID, env.AggregateID}
	l.mu.Lock()
	n := len(l.follows[key])
	l.mu.Unlock()
	if n == 0 {
		return nil
	}
	m, err := l.messageOf(env)
	if err != nil {
		// One undecodable event must not stop every conversation's delivery; the follower that
		// needs it finds the gap and reports it from its catch-up.
		l.log.Error("live: undecodable message", "seq", env.Sequence, "error", err)
		return nil
	}
	l.dispatch(key, liveItem{msg: &m, version: env.Sequence}, nil)
	return nil
}

// dispatch queues item for the followers of key, except skip; a full queue drops its follower
// as lagging.
func (l *Live) dispatch(key liveKey, item liveItem, skip *Follower) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for f := range l.follows[key] {
		if f == skip {
			continue
		}
		select {
		case f.queue <- item:
		default:
			if item.typing != nil {
				continue // a typing notice is not worth dropping a follower for
			}
			l.unfollow(f)
			f.lag()
		}
	}
}

// messageOf decodes a message.sent event.
func (l *Live) messageOf(env domain.Envelope) (Message, error) {
	ev, err := l.cfg.Registry.Decode(env)
	if err != nil {
		return Message{}, err
	}
	e, ok := ev.(*domain.MessageSent)
	if !ok {
		return Message{}, fmt.Errorf("%s decoded to %T", env.Type, ev)
	}
	return messageOf(env.AggregateID, e), nil
}

// messageOf is the message a message.sent event of conversation id records, as the read model
// has it.
func messageOf(id string, m *domain.MessageSent) Message {
	return Message{ID: m.MessageID, ConversationID: id, Seq: m.Seq, Text: m.Text, Author: m.Author,
		ClientMessageID: m.ClientMessageID, Citations: m.Citations, CreatedAt: m.SentAt}
}

// typingSignal is the payload of a typing notice.
type typingSignal struct {
	Author   domain.Author `json:"author"`
	Instance string        `json:"instance"`
	Follower string        `json:"follower"`
}

func (l *Live) onTyping(subject string, data []byte) {
	var sig typingSignal
	if err := json.Unmarshal(data, &sig); err != nil {
		return
	}
	// subject is typing.<tenant>.<conversation>
	parts := strings.Split(subject, ".")
	if len(parts) != 3 {
		return
	}
	tenant, conv := parts[1], parts[2]
	var skip *Follower
	if sig.Instance == l.instance {
		l.mu.Lock()
		for f := range l.follows[liveKey{tenant, conv}] {
			if f.id == sig.Follower {
				skip = f
			}
		}
		l.mu.Unlock()
	}
	a := sig.Author
	l.dispatch(liveKey{tenant, conv}, liveItem{typing: &a}, skip)
}

// Follower is one follower of a conversation. Next yields its events; Close ends it.
type Follower struct {
	live   *Live
	key    liveKey
	id     string
	queue  chan liveItem
	lagged chan struct{}
	closed sync.Once
	lagOne sync.Once
	// pending are caught-up messages not yet yielded; lastSeq and lastVersion are the seq of the
	// last yielded message and the stream sequence of its event (or the catch-up's position).
	pending     []Message
	lastSeq     uint64
	lastVersion uint64
}

func (f *Follower) lag() { f.lagOne.Do(func() { close(f.lagged) }) }

// Follow starts following a conversation of p's tenant from after message afterSeq: Next yields
// every message with a higher seq in order, then live ones. A visitor may follow only their own
// conversation; any other conversation is ENOTFOUND, as a missing one.
func (l *Live) Follow(ctx context.Context, p domain.Principal, conversationID string, afterSeq uint64) (*Follower, error) {
	if err := sendCaller(p); err != nil {
		return nil, err
	}
	id, err := convID(conversationID)
	if err != nil {
		return nil, err
	}
	f := &Follower{live: l, key: liveKey{p.TenantID, id}, id: uuid.NewString(),
		queue: make(chan liveItem, l.cfg.QueueSize), lagged: make(chan struct{}), lastSeq: afterSeq}
	// Register before reading the store: a message stored after the read is then queued, one
	// stored before it is in the read, so nothing falls between the two. When the hub is idle,
	// this follower wakes it and waits until it has fixed where it reads the stream from.
	l.mu.Lock()
	if l.follows[f.key] == nil {
		l.follows[f.key] = map[*Follower]struct{}{}
	}
	l.follows[f.key][f] = struct{}{}
	if l.reading == nil {
		l.reading = &liveReading{ready: make(chan struct{})}
		select {
		case l.wanted <- struct{}{}:
		default:
		}
	}
	r := l.reading
	l.mu.Unlock()
	select {
	case <-l.running:
		select {
		case <-r.ready:
		case <-l.done: // Run ended: only the catch-up
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("follow conversation: %w", ctx.Err())
		}
	default: // Run has not started: there are no live messages yet, only the catch-up
	}
	envs, _, err := l.cfg.Store.Load(ctx, convRef(p, id), 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("follow conversation: %w", err)
	}
	state := l.decider.Initial()
	for _, env := range envs {
		ev, err := l.cfg.Registry.Decode(env)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("follow conversation: decode %s: %w", env.Type, err)
		}
		state = l.decider.Evolve(state, ev)
		if m, ok := ev.(*domain.MessageSent); ok && m.Seq > afterSeq {
			f.pending = append(f.pending, messageOf(id, m))
		}
		f.lastVersion = env.Sequence
	}
	if !state.Exists || (p.Role == domain.RoleVisitor && state.Contact.ExternalID != p.VisitorID) {
		f.Close()
		return nil, convNotFound()
	}
	return f, nil
}

// Next returns the follower's next event, waiting for one until ctx is done. It returns ErrLagged
// once the follower fell behind, and ctx's error when ctx ends.
func (f *Follower) Next(ctx context.Context) (LiveEvent, error) {
	for {
		if len(f.pending) > 0 {
			m := f.pending[0]
			f.pending = f.pending[1:]
			if m.Seq <= f.lastSeq {
				continue
			}
			f.lastSeq = m.Seq
			return LiveEvent{Message: &m}, nil
		}
		select {
		case <-f.lagged:
			return LiveEvent{}, ErrLagged
		default:
		}
		select {
		case <-ctx.Done():
			return LiveEvent{}, ctx.Err()
		case <-f.lagged:
			return LiveEvent{}, ErrLagged
		case it := <-f.queue:
			if it.typing != nil {
				return LiveEvent{Typing: it.typing}, nil
			}
			switch m := it.msg; {
			case m.Seq <= f.lastSeq:
				continue // caught up already
			case m.Seq == f.lastSeq+1:
				f.lastSeq, f.lastVersion = m.Seq, max(f.lastVersion, it.version)
				return LiveEvent{Message: m}, nil
			default:
				if err := f.fill(ctx, it.version); err != nil {
					return LiveEvent{}, err
				}
			}
		}
	}
}

// fill reads the messages after the last yielded one from the store, up to stream sequence upTo,
// into pending: a gap between the catch-up and the live messages, or one the hub skipped.
func (f *Follower) fill(ctx context.Context, upTo uint64) error {
	envs, _, err := f.live.cfg.Store.Load(ctx, domain.AggregateRef{TenantID: f.key.tenant, Type: domain.ConversationAggregate, ID: f.key.conversation}, f.lastVersion)
	if err != nil {
		return fmt.Errorf("fill a gap of conversation %s: %w", f.key.conversation, err)
	}
	for _, env := range envs {
		if env.Sequence > upTo || env.Type != domain.EventMessageSent {
			continue
		}
		m, err := f.live.messageOf(env)
		if err != nil {
			return fmt.Errorf("fill a gap of conversation %s: %w", f.key.conversation, err)
		}
		if m.Seq > f.lastSeq {
			f.pending = append(f.pending, m)
		}
	}
	return nil
}

// Typing tells the conversation's other followers, on every instance, that author is typing.
func (f *Follower) Typing(ctx context.Context, author domain.Author) error {
	data, err := json.Marshal(typingSignal{Author: author, Instance: f.live.instance, Follower: f.id})
	if err != nil {
		return err
	}
	return f.live.cfg.Signals.Publish(ctx, "typing."+f.key.tenant+"."+f.key.conversation, data)
}

// LastSeq is the seq of the last message Next yielded (or the follow's starting point).
func (f *Follower) LastSeq() uint64 { return f.lastSeq }

// Close stops following; Next then only drains what is queued.
func (f *Follower) Close() {
	f.closed.Do(func() {
		l := f.live
		l.mu.Lock()
		l.unfollow(f)
		l.mu.Unlock()
	})
}

// unfollow removes f from the hub, and its conversation's set when that empties. l.mu is held.
func (l *Live) unfollow(f *Follower) {
	delete(l.follows[f.key], f)
	if len(l.follows[f.key]) == 0 {
		delete(l.follows, f.key)
	}
}

// Followers is how many followers the hub has (for metrics and tests).
func (l *Live) Followers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, fs := range l.follows {
		n += len(fs)
	}
	return n
}
