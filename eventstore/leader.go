package eventstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/domain"
)

// errNoMessageFound is the JetStream err_code of a get that found no message.
const errNoMessageFound = 10037

// Direct gets are answered by any replica that is nearly caught up, so with several replicas they
// may miss the last few events. The stream leader answers the message get API with everything it
// acknowledged: the store uses it where it must see its own writes (an aggregate's version, the
// check that a rejected append had been stored), and direct gets for the bulk of the events.

// msgGetRequest is a request to the leader's message get API.
type msgGetRequest struct {
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
}

// storedMsg is a message returned by the message get API.
type storedMsg struct {
	Subject  string `json:"subject"`
	Sequence uint64 `json:"seq"`
	Data     []byte `json:"data,omitempty"`
}

// msgGetResponse is the message get API's answer.
type msgGetResponse struct {
	Message *storedMsg `json:"message,omitempty"`
	Error   *apiError  `json:"error,omitempty"`
}

// leaderGet asks the stream leader for one message; nil when there is none.
func (s *JetStream) leaderGet(ctx context.Context, req msgGetRequest) (*storedMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode message get request: %w", err)
	}
	var resp *nats.Msg
	err = retry(ctx, noResponders, func() (err error) {
		resp, err = s.nc.RequestWithContext(ctx, s.msgGet, body)
		return err
	})
	if err != nil {
		return nil, unavailable("get message", err)
	}
	var r msgGetResponse
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, unavailable("get message", fmt.Errorf("malformed response %q: %w", resp.Data, err))
	}
	switch {
	case r.Error != nil && r.Error.ErrCode == errNoMessageFound:
		return nil, nil
	case r.Error != nil:
		return nil, unavailable("get message", r.Error)
	case r.Message == nil:
		return nil, unavailable("get message", fmt.Errorf("response %q without a message", resp.Data))
	}
	return r.Message, nil
}

// lastSubjectSequence returns the stream leader's sequence of the last message on subject, 0 when
// there is none.
func (s *JetStream) lastSubjectSequence(ctx context.Context, subject string) (uint64, error) {
	m, err := s.leaderGet(ctx, msgGetRequest{LastFor: subject})
	if err != nil || m == nil {
		return 0, err
	}
	return m.Sequence, nil
}

// leaderEvents returns up to limit (at least 1) events on subject after sequence after, one leader
// get each.
func (s *JetStream) leaderEvents(ctx context.Context, subject string, after uint64, limit int) ([]domain.Envelope, error) {
	var out []domain.Envelope
	for len(out) < limit {
		m, err := s.leaderGet(ctx, msgGetRequest{Seq: after + 1, NextFor: subject})
		if err != nil {
			return nil, err
		}
		if m == nil {
			break
		}
		env, err := DecodeMsg(m.Subject, m.Data, m.Sequence)
		if err != nil {
			return nil, err
		}
		out = append(out, env)
		after = m.Sequence
	}
	return out, nil
}

// msgGetSubject is the subject of a stream's message get API.
func msgGetSubject(stream string) string {
	return jetstream.DefaultAPIPrefix + "STREAM.MSG.GET." + stream
}
