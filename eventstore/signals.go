package eventstore

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// Signals carry ephemeral notices between instances — "someone is typing" — that are not events:
// nothing stores them and a missed one costs nothing. Subjects are dot-separated tokens.
type Signals interface {
	// Publish sends data to every current subscriber of subject, on any instance.
	Publish(ctx context.Context, subject string, data []byte) error
	// Subscribe calls fn for every signal whose subject matches pattern ("*" matches one token,
	// a final ">" the rest) until stop is called.
	Subscribe(pattern string, fn func(subject string, data []byte)) (stop func(), err error)
}

// NATSSignals are Signals on core NATS, under a subject prefix.
type NATSSignals struct {
	nc     *nats.Conn
	prefix string
}

// NewNATSSignals returns Signals published on nc under prefix (e.g. "sig").
func NewNATSSignals(nc *nats.Conn, prefix string) *NATSSignals {
	return &NATSSignals{nc: nc, prefix: prefix}
}

// Publish implements Signals.
func (s *NATSSignals) Publish(_ context.Context, subject string, data []byte) error {
	if err := s.nc.Publish(s.prefix+"."+subject, data); err != nil {
		return unavailable("publish signal", err)
	}
	return nil
}

// Subscribe implements Signals.
func (s *NATSSignals) Subscribe(pattern string, fn func(subject string, data []byte)) (func(), error) {
	sub, err := s.nc.Subscribe(s.prefix+"."+pattern, func(m *nats.Msg) {
		fn(strings.TrimPrefix(m.Subject, s.prefix+"."), m.Data)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to signals %s: %w", pattern, err)
	}
	// Flush: the subscription is known to the server when Subscribe returns.
	if err := s.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, unavailable("subscribe to signals "+pattern, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// MemorySignals are Signals within one process, for tests and the memory store.
type MemorySignals struct {
	mu   sync.Mutex
	next int
	subs map[int]memorySignalSub
}

type memorySignalSub struct {
	pattern []string
	fn      func(string, []byte)
}

// NewMemorySignals returns Signals delivered within this process.
func NewMemorySignals() *MemorySignals { return &MemorySignals{subs: map[int]memorySignalSub{}} }

// Publish implements Signals. Subscribers are called synchronously.
func (s *MemorySignals) Publish(_ context.Context, subject string, data []byte) error {
	s.mu.Lock()
	var fns []func(string, []byte)
	for _, sub := range s.subs {
		if subjectMatches(sub.pattern, strings.Split(subject, ".")) {
			fns = append(fns, sub.fn)
		}
	}
	s.mu.Unlock()
	for _, fn := range fns {
		fn(subject, data)
	}
	return nil
}

// Subscribe implements Signals.
func (s *MemorySignals) Subscribe(pattern string, fn func(string, []byte)) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.next
	s.next++
	s.subs[id] = memorySignalSub{pattern: strings.Split(pattern, "."), fn: fn}
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}, nil
}

// subjectMatches matches NATS-style subject tokens against a pattern's.
func subjectMatches(pattern, subject []string) bool {
	for i, p := range pattern {
		if p == ">" {
			return len(subject) > i
		}
		if i >= len(subject) || (p != "*" && p != subject[i]) {
			return false
		}
	}
	return len(pattern) == len(subject)
}
