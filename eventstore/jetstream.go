package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/domain"
)

// defaultRequestTimeout bounds a request to the server when the context has no deadline.
const defaultRequestTimeout = 10 * time.Second

// Requests that failed without effect, for a reason that soon passes, are retried, waiting 10ms,
// 20ms, … (630ms in all): right after a stream is created, or while its leader moves, the server a client is
// connected to may not know where the stream is yet (no responders); a clustered stream briefly
// refuses an expected-sequence write on a subject whose previous write it has acknowledged but not
// finished applying.
const (
	retryAttempts  = 7
	retryFirstWait = 10 * time.Millisecond
)

// JetStream is the event store on a NATS JetStream stream. It is safe for concurrent use. It does
// not own the connection: closing it is the caller's business.
type JetStream struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	log    *slog.Logger
	// directGet and msgGet are the subjects of the stream's direct get and message get APIs.
	directGet string
	msgGet    string
}

var _ domain.EventStore = (*JetStream)(nil)

// Open checks that the server is recent enough, creates the event stream or updates its
// configuration (it is idempotent) and returns the store. It refuses a server older than
// cfg.MinServerVersion.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*JetStream, error) {
	if nc == nil {
		return nil, errors.New("open event store: nil NATS connection")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open event store: %w", err)
	}
	cfg.setDefaults()
	if err := checkServerVersion(nc, cfg.MinServerVersion); err != nil {
		return nil, fmt.Errorf("open event store: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open event store: jetstream: %w", err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	stream, err := js.CreateOrUpdateStream(ctx, streamConfig(cfg))
	if err != nil {
		return nil, unavailable(fmt.Sprintf("create or update stream %s", cfg.Stream), err)
	}
	s := &JetStream{
		cfg:       cfg,
		nc:        nc,
		js:        js,
		stream:    stream,
		log:       cfg.Logger.With("component", "eventstore", "stream", cfg.Stream),
		directGet: jetstream.DefaultAPIPrefix + "DIRECT.GET." + cfg.Stream,
		msgGet:    msgGetSubject(cfg.Stream),
	}
	info := stream.CachedInfo()
	s.log.InfoContext(ctx, "event store ready",
		"subjects", info.Config.Subjects, "replicas", info.Config.Replicas,
		"messages", info.State.Msgs, "last_sequence", info.State.LastSeq,
		"server_version", nc.ConnectedServerVersion())
	return s, nil
}

// streamConfig is the stream every event is stored in: kept forever, never deleted from.
func streamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               cfg.Stream,
		Description:        "Metachat events: the source of truth. Never delete or purge.",
		Subjects:           []string{cfg.SubjectPrefix + ".>"},
		Retention:          jetstream.LimitsPolicy,
		MaxConsumers:       -1,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxAge:             0,
		MaxMsgsPerSubject:  -1,
		MaxMsgSize:         -1,
		Discard:            jetstream.DiscardNew,
		Storage:            jetstream.FileStorage,
		Replicas:           cfg.Replicas,
		Duplicates:         cfg.DuplicateWindow,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowDirect:        true,
		AllowAtomicPublish: true,
	}
}

// checkServerVersion refuses a server older than minVersion, naming the server and the way out.
func checkServerVersion(nc *nats.Conn, minVersion string) error {
	want, err := parseVersion(minVersion)
	if err != nil {
		return err
	}
	raw := nc.ConnectedServerVersion()
	got, err := parseVersion(raw)
	if err != nil {
		return fmt.Errorf("NATS server at %s reports version %q: %w", nc.ConnectedUrlRedacted(), raw, err)
	}
	if got.less(want) {
		return fmt.Errorf("NATS server %s at %s is too old: Metachat needs nats-server %s or newer "+
			"for atomic batch publish; upgrade it, or unset NATS_URL to use the embedded server",
			raw, nc.ConnectedUrlRedacted(), want.short())
	}
	return nil
}

// Stream returns the handle of the event stream, for creating consumers on it.
func (s *JetStream) Stream() jetstream.Stream { return s.stream }

// JetStream returns the JetStream context the store uses.
func (s *JetStream) JetStream() jetstream.JetStream { return s.js }

// Config returns the store's configuration with defaults applied.
func (s *JetStream) Config() Config { return s.cfg }

// LastSequence returns the sequence of the last event in the stream (0 when empty).
func (s *JetStream) LastSequence(ctx context.Context) (uint64, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, unavailable("read the event stream's state", err)
	}
	return info.State.LastSeq, nil
}

// withDefaultTimeout bounds ctx by defaultRequestTimeout unless it already has a deadline.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultRequestTimeout)
}

// retry calls fn until it succeeds, fails with an error retryable does not accept, runs out of
// attempts or ctx ends, waiting twice as long after each attempt.
func retry(ctx context.Context, retryable func(error) bool, fn func() error) error {
	wait := retryFirstWait
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !retryable(err) || attempt == retryAttempts {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait *= 2
	}
}

// noResponders reports whether err is a request nobody answered.
func noResponders(err error) bool { return errors.Is(err, nats.ErrNoResponders) }

// unavailable wraps a failure to reach the server (or any unexpected server answer) as EUNAVAILABLE.
func unavailable(what string, err error) error {
	return &domain.Error{
		Code:    domain.EUNAVAILABLE,
		Message: "The event store is unavailable; retry later.",
		Err:     fmt.Errorf("eventstore: %s: %w", what, err),
	}
}
