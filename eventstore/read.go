package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/domain"
)

// directBatchSize is how many messages one batched direct get asks for.
const directBatchSize = 1000

// Direct get response headers and statuses.
const (
	hdrStatus     = "Status"
	hdrSequence   = "Nats-Sequence"
	hdrSubject    = "Nats-Subject"
	hdrNumPending = "Nats-Num-Pending"

	statusEndOfBatch   = "204"
	statusNotFound     = "404"
	statusNoResponders = "503"
)

// directGetRequest is a batched direct get: up to Batch messages from sequence Seq on, on
// subjects matching NextFor.
type directGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

// Load returns the aggregate's events with a sequence greater than after, in order, and its
// version (last subject sequence). It reads with batched direct gets.
func (s *JetStream) Load(ctx context.Context, agg domain.AggregateRef, after uint64) ([]domain.Envelope, uint64, error) {
	if err := agg.Validate(); err != nil {
		return nil, 0, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	return s.load(ctx, agg, after)
}

// load returns the aggregate's events after a sequence and its version.
func (s *JetStream) load(ctx context.Context, agg domain.AggregateRef, after uint64) ([]domain.Envelope, uint64, error) {
	subject := Subject(s.cfg.SubjectPrefix, agg)
	for {
		events, err := s.fetch(ctx, after+1, subject, 0)
		if err != nil {
			return nil, 0, fmt.Errorf("load %s: %w", agg, err)
		}
		if len(events) > 0 {
			return events, events[len(events)-1].Sequence, nil
		}
		if after == 0 {
			return nil, 0, nil
		}
		// Nothing after: the version is at or before after — unless an event was appended since
		// the fetch. Then fetch again: answering that later version with no events would make the
		// caller's state pass for a version it has not seen (and a command decided on it be
		// appended as if it had).
		version, err := s.lastSubjectSequence(ctx, subject)
		if err != nil {
			return nil, 0, fmt.Errorf("load %s: %w", agg, err)
		}
		if version <= after {
			return nil, version, nil
		}
	}
}

// Version returns the aggregate's current version: the sequence of the last message on its
// subject, asked of the stream leader (one request), so an append acknowledged before the call is
// always reflected.
func (s *JetStream) Version(ctx context.Context, agg domain.AggregateRef) (uint64, error) {
	if err := agg.Validate(); err != nil {
		return 0, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	v, err := s.lastSubjectSequence(ctx, Subject(s.cfg.SubjectPrefix, agg))
	if err != nil {
		return 0, fmt.Errorf("version of %s: %w", agg, err)
	}
	return v, nil
}

// Read returns at most limit events with a sequence of at least from that match filter, in stream
// order. A limit below 1 or an invalid filter is an EINVALID error.
func (s *JetStream) Read(ctx context.Context, from uint64, filter domain.Filter, limit int) ([]domain.Envelope, error) {
	subject, err := FilterSubject(s.cfg.SubjectPrefix, filter)
	if err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, domain.Invalid("Invalid read limit.", domain.FieldError{Field: "limit", Message: "must be at least 1"})
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	events, err := s.fetch(ctx, max(from, 1), subject, limit)
	if err != nil {
		return nil, fmt.Errorf("read from %d on %s: %w", from, subject, err)
	}
	return events, nil
}

// fetch returns up to limit (0: all) events on subjects matching filter with a sequence of at least
// from, with as many batched direct gets as needed. With several replicas, the replica answering a
// direct get may lag behind the leader: before concluding that the stream ends, fetch asks the
// leader for the next event, and goes on when there is one.
func (s *JetStream) fetch(ctx context.Context, from uint64, filter string, limit int) ([]domain.Envelope, error) {
	var out []domain.Envelope
	for {
		batch := directBatchSize
		if limit > 0 {
			batch = min(batch, limit-len(out))
		}
		var got []domain.Envelope
		var pending uint64
		err := retry(ctx, noResponders, func() (err error) {
			got, pending, err = s.directBatch(ctx, directGetRequest{Seq: from, NextFor: filter, Batch: batch})
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
		if limit > 0 && len(out) >= limit {
			return out, nil
		}
		if len(got) > 0 {
			from = got[len(got)-1].Sequence + 1
			if pending > 0 {
				continue
			}
		}
		if s.cfg.Replicas == 1 {
			return out, nil
		}
		next, err := s.leaderEvents(ctx, filter, from-1, 1)
		if err != nil {
			return nil, err
		}
		if len(next) == 0 {
			return out, nil
		}
		s.log.DebugContext(ctx, "direct get behind the stream leader", "filter", filter, "sequence", next[0].Sequence)
		out = append(out, next[0])
		from = next[0].Sequence + 1
	}
}

// directBatch runs one batched direct get and returns its events and how many matching messages
// remained after them.
func (s *JetStream) directBatch(ctx context.Context, req directGetRequest) ([]domain.Envelope, uint64, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, 0, fmt.Errorf("encode direct get request: %w", err)
	}
	// The response is at most Batch messages and an end-of-batch marker: a channel that holds
	// them all never drops one (and is much smaller than a sync subscription's buffer).
	msgs := make(chan *nats.Msg, req.Batch+1)
	inbox := s.nc.NewInbox()
	sub, err := s.nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		return nil, 0, unavailable("subscribe for direct get", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := s.nc.PublishRequest(s.directGet, inbox, body); err != nil {
		return nil, 0, unavailable("direct get", err)
	}
	var out []domain.Envelope
	for {
		var msg *nats.Msg
		select {
		case msg = <-msgs:
		case <-ctx.Done():
			return nil, 0, unavailable("direct get", ctx.Err())
		}
		switch status := msg.Header.Get(hdrStatus); status {
		case "":
		case statusEndOfBatch:
			pending, err := strconv.ParseUint(msg.Header.Get(hdrNumPending), 10, 64)
			if err != nil {
				return nil, 0, unavailable("direct get", fmt.Errorf("end of batch without a valid %s header", hdrNumPending))
			}
			return out, pending, nil
		case statusNoResponders:
			return nil, 0, unavailable("direct get", nats.ErrNoResponders)
		case statusNotFound:
			if len(out) > 0 {
				return nil, 0, unavailable("direct get", errors.New("not found in the middle of a batch"))
			}
			return nil, 0, nil
		default:
			return nil, 0, unavailable("direct get", fmt.Errorf("status %s %s", status, msg.Header.Get("Description")))
		}
		env, err := decodeDirect(msg)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, env)
	}
}

// decodeDirect decodes one message of a direct get response.
func decodeDirect(msg *nats.Msg) (domain.Envelope, error) {
	seq, err := strconv.ParseUint(msg.Header.Get(hdrSequence), 10, 64)
	if err != nil {
		return domain.Envelope{}, unavailable("direct get", fmt.Errorf("message without a valid %s header", hdrSequence))
	}
	return DecodeMsg(msg.Header.Get(hdrSubject), msg.Data, seq)
}
