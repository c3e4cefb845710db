package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/domain"
)

// Message headers written with every event.
const (
	hdrMsgID           = "Nats-Msg-Id"
	hdrExpectedSubjSeq = "Nats-Expected-Last-Subject-Sequence"
	hdrBatchID         = "Nats-Batch-Id"
	hdrBatchSeq        = "Nats-Batch-Sequence"
	hdrBatchCommit     = "Nats-Batch-Commit"
)

// HeaderEventType is the message header carrying an event's type, so consumers can skip events
// without decoding them.
const HeaderEventType = "Metachat-Event-Type"

// JetStream API error codes (err_code) Append handles.
const (
	errWrongLastSequence      = 10071 // wrong last sequence: {seq}
	errWrongLastSequenceConst = 10164 // wrong last sequence (clustered, subject in flight)
	errBatchDuplicate         = 10201 // atomic publish batch contains duplicate message id
	errDuplicateInProcess     = 10158 // duplicate message id is in process
	errBatchIncomplete        = 10176 // atomic publish batch is incomplete
	errBatchTooManyInflight   = 10210
	errBatchTooLarge          = 10199
	errMessageTooLarge        = 10054
	errHeaderTooLarge         = 10097
	errTooManyRequests        = 10167
	errClusterNotLeader       = 10009
	errInsufficientResources  = 10023
	errStoreFailed            = 10077
)

// pubAck is the server's answer to a publish: an acknowledgement or an error.
type pubAck struct {
	Stream    string    `json:"stream"`
	Sequence  uint64    `json:"seq"`
	Duplicate bool      `json:"duplicate,omitempty"`
	BatchID   string    `json:"batch,omitempty"`
	Count     uint64    `json:"count,omitempty"`
	Error     *apiError `json:"error,omitempty"`
}

// apiError is a JetStream API error.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

// Error implements error.
func (e *apiError) Error() string {
	return fmt.Sprintf("jetstream error %d (code %d): %s", e.ErrCode, e.Code, e.Description)
}

// Append stores events for one aggregate, all or none, if the aggregate's version is expected. One
// event is a plain JetStream publish; several are one atomic batch. See domain.EventStore.
func (s *JetStream) Append(ctx context.Context, agg domain.AggregateRef, expected uint64, events ...domain.Envelope) (domain.AppendResult, error) {
	// Metrics (metrics.go): the latency and outcome of every append.
	start := time.Now()
	res, err := s.append(ctx, agg, expected, events...)
	s.cfg.Metrics.observeAppend(time.Since(start), len(events), res, err)
	return res, err
}

// append is Append without its metrics.
func (s *JetStream) append(ctx context.Context, agg domain.AggregateRef, expected uint64, events ...domain.Envelope) (domain.AppendResult, error) {
	envs, bodies, err := prepareAppend(agg, events, s.cfg.Now)
	if err != nil {
		return domain.AppendResult{}, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	subject := Subject(s.cfg.SubjectPrefix, agg)
	msgs := make([]*nats.Msg, len(envs))
	for i, e := range envs {
		m := nats.NewMsg(subject)
		m.Data = bodies[i]
		m.Header.Set(hdrMsgID, e.ID)
		m.Header.Set(HeaderEventType, e.Type)
		msgs[i] = m
	}
	msgs[0].Header.Set(hdrExpectedSubjSeq, strconv.FormatUint(expected, 10))

	var ack *pubAck
	err = retry(ctx, retryablePublish, func() error {
		var err error
		if len(msgs) == 1 {
			ack, err = s.request(ctx, msgs[0])
		} else {
			ack, err = s.publishBatch(ctx, msgs)
		}
		if err == nil && ack.Error != nil && ack.Error.ErrCode == errWrongLastSequenceConst {
			return ack.Error
		}
		return err
	})
	if ae := (*apiError)(nil); errors.As(err, &ae) && ae.ErrCode == errWrongLastSequenceConst {
		return s.appendFailed(ctx, agg, expected, envs, ae)
	}
	if err != nil {
		return domain.AppendResult{}, err
	}
	if ack.Error != nil {
		return s.appendFailed(ctx, agg, expected, envs, ack.Error)
	}
	n := uint64(len(envs))
	if ack.Sequence < n {
		return domain.AppendResult{}, unavailable("append to "+agg.String(), fmt.Errorf("acknowledged sequence %d for %d events", ack.Sequence, n))
	}
	res := domain.AppendResult{FirstSequence: ack.Sequence - n + 1, LastSequence: ack.Sequence, Duplicate: ack.Duplicate}
	if ack.Duplicate {
		s.log.DebugContext(ctx, "duplicate event not stored again", "aggregate", agg.String(), "event_id", envs[0].ID, "sequence", ack.Sequence)
	}
	return res, nil
}

// publishBatch sends msgs as one JetStream atomic batch: every message carries the batch id and its
// position, the last one commits. Only the commit asks for an answer: a message the server rejects
// earlier makes the batch incomplete, which the commit reports.
func (s *JetStream) publishBatch(ctx context.Context, msgs []*nats.Msg) (*pubAck, error) {
	id := uuid.NewString()
	for i, m := range msgs {
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
	}
	last := len(msgs) - 1
	msgs[last].Header.Set(hdrBatchCommit, "1")
	// Refuse a batch the connection cannot send whole before starting it on the server.
	for _, m := range msgs {
		if size := msgSize(m); size > s.nc.MaxPayload() {
			return nil, publishError("publish atomic batch to "+m.Subject,
				fmt.Errorf("%w: message of %d bytes, at most %d", nats.ErrMaxPayload, size, s.nc.MaxPayload()))
		}
	}
	for _, m := range msgs[:last] {
		if err := s.nc.PublishMsg(m); err != nil {
			return nil, publishError("publish atomic batch to "+m.Subject, err)
		}
	}
	ack, err := s.request(ctx, msgs[last])
	switch {
	case err != nil:
		return nil, err
	case ack.Error != nil && ack.Error.ErrCode == errBatchIncomplete:
		// Messages were lost before the commit (nothing is stored): the batch may be sent again.
		return nil, unavailable("publish atomic batch to "+msgs[last].Subject, ack.Error)
	case ack.Error == nil && (ack.BatchID != id || ack.Count != uint64(len(msgs))):
		return nil, unavailable("publish atomic batch to "+msgs[last].Subject,
			fmt.Errorf("acknowledged batch %q of %d messages, want %q of %d", ack.BatchID, ack.Count, id, len(msgs)))
	}
	return ack, nil
}

// msgSize returns the size of a message's data and encoded headers.
func msgSize(m *nats.Msg) int64 {
	size := len(m.Data) + len("NATS/1.0\r\n\r\n")
	for k, vs := range m.Header {
		for _, v := range vs {
			size += len(k) + len(": \r\n") + len(v)
		}
	}
	return int64(size)
}

// retryablePublish reports whether an append failed without storing anything in a way a new
// attempt may fix: nobody answered, an atomic batch arrived incomplete, or a clustered stream was
// still applying the subject's previous write.
func retryablePublish(err error) bool {
	var ae *apiError
	return noResponders(err) ||
		errors.As(err, &ae) && (ae.ErrCode == errBatchIncomplete || ae.ErrCode == errWrongLastSequenceConst)
}

// request publishes m and decodes the server's acknowledgement.
func (s *JetStream) request(ctx context.Context, m *nats.Msg) (*pubAck, error) {
	resp, err := s.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return nil, publishError("publish to "+m.Subject, err)
	}
	ack, ok := decodePubAck(resp.Data)
	if !ok {
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return nil, unavailable("publish to "+m.Subject, fmt.Errorf("malformed acknowledgement %q: %w", resp.Data, err))
		}
	}
	if ack.Error == nil && ack.Stream != s.cfg.Stream {
		return nil, unavailable("publish to "+m.Subject, fmt.Errorf("acknowledged by stream %q, not %q", ack.Stream, s.cfg.Stream))
	}
	return &ack, nil
}

// publishError maps a failure to send a message: too large for the server (ETOOLARGE), or the
// server unreachable (EUNAVAILABLE).
func publishError(what string, err error) error {
	if errors.Is(err, nats.ErrMaxPayload) {
		return &domain.Error{Code: domain.ETOOLARGE, Message: "The event is too large.", Err: fmt.Errorf("eventstore: %s: %w", what, err)}
	}
	return unavailable(what, err)
}

// appendFailed turns a rejected append into the result or error Append returns. A version conflict
// or a duplicate id may be the retry of an append that was stored (its acknowledgement lost): when
// the aggregate's events right after expected are the appended ones, it is a duplicate.
func (s *JetStream) appendFailed(ctx context.Context, agg domain.AggregateRef, expected uint64, envs []domain.Envelope, apiErr *apiError) (domain.AppendResult, error) {
	switch apiErr.ErrCode {
	case errWrongLastSequence, errWrongLastSequenceConst, errBatchDuplicate:
	case errDuplicateInProcess, errBatchTooManyInflight, errTooManyRequests,
		errClusterNotLeader, errInsufficientResources, errStoreFailed:
		return domain.AppendResult{}, unavailable("append to "+agg.String(), apiErr)
	case errBatchTooLarge, errMessageTooLarge, errHeaderTooLarge:
		return domain.AppendResult{}, &domain.Error{Code: domain.ETOOLARGE, Message: "The events are too large.", Err: apiErr}
	default:
		return domain.AppendResult{}, &domain.Error{
			Code:    domain.EINTERNAL,
			Message: "An internal error has occurred.",
			Err:     fmt.Errorf("eventstore: append to %s: %w", agg, apiErr),
		}
	}

	subject := Subject(s.cfg.SubjectPrefix, agg)
	stored, err := s.leaderEvents(ctx, subject, expected, len(envs))
	if err != nil {
		return domain.AppendResult{}, fmt.Errorf("append to %s rejected (%w), then: %w", agg, apiErr, err)
	}
	if sameEvents(stored, envs) {
		s.log.DebugContext(ctx, "retried append was stored before", "aggregate", agg.String(), "expected", expected, "events", len(envs))
		return domain.AppendResult{
			FirstSequence: stored[0].Sequence,
			LastSequence:  stored[len(envs)-1].Sequence,
			Duplicate:     true,
		}, nil
	}
	// The version the server saw, or else the current one.
	actual := wrongLastSequence(apiErr)
	if apiErr.ErrCode != errWrongLastSequence {
		if actual, err = s.lastSubjectSequence(ctx, subject); err != nil {
			return domain.AppendResult{}, fmt.Errorf("append to %s rejected (%w), then: %w", agg, apiErr, err)
		}
	}
	if apiErr.ErrCode == errBatchDuplicate && actual == expected {
		return domain.AppendResult{}, &domain.Error{
			Code:    domain.ECONFLICT,
			Message: "Some of these events were already stored.",
			Err:     fmt.Errorf("eventstore: append to %s: %w", agg, apiErr),
		}
	}
	s.log.DebugContext(ctx, "append conflict", "aggregate", agg.String(), "expected", expected, "actual", actual)
	return domain.AppendResult{}, &domain.ConcurrencyError{Aggregate: agg, Expected: expected, Actual: actual}
}

// wrongLastSequence parses the actual sequence from "wrong last sequence: 12", 0 when absent.
func wrongLastSequence(e *apiError) uint64 {
	_, after, ok := strings.Cut(e.Description, ":")
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(after), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
