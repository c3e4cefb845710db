package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/domain"
)

// Once records one-time values (the nonces of single-use tokens) for every instance at once: the
// first Use of a value reports true, every later one false, until the value's time to live has
// passed. The JetStream implementation keeps the values in a key-value bucket whose entries expire
// after the TTL, and decides with a create that fails when the key exists, so two instances using
// one value at the same moment cannot both win.
type Once interface {
	// Use records key and reports whether this was its first use.
	Use(ctx context.Context, key string) (bool, error)
}

// JetStreamOnce is Once on a JetStream key-value bucket.
type JetStreamOnce struct {
	kv jetstream.KeyValue
}

// NewOnce creates (or opens) the key-value bucket bucket, whose entries live ttl, on the store's
// JetStream, with the store's replica count. Entries are kept on disk, like the events.
func (s *JetStream) NewOnce(ctx context.Context, bucket string, ttl time.Duration) (*JetStreamOnce, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("once bucket %s: ttl %v must be positive", bucket, ttl)
	}
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, TTL: ttl, History: 1, Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas,
		Description: "Metachat one-time values (single-use token nonces)",
	})
	if err != nil {
		return nil, unavailable("create key-value bucket "+bucket, err)
	}
	return &JetStreamOnce{kv: kv}, nil
}

// Use implements Once. Keys must be valid key-value keys (letters, digits, '-', '_', '=', '.').
func (o *JetStreamOnce) Use(ctx context.Context, key string) (bool, error) {
	_, err := o.kv.Create(ctx, key, nil)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	case errors.Is(err, jetstream.ErrInvalidKey):
		return false, domain.Errorf(domain.EINVALID, "Invalid one-time value.")
	}
	return false, unavailable("record one-time value", err)
}

// MemoryOnce is Once in one process's memory, for tests and single-process tools.
type MemoryOnce struct {
	ttl  time.Duration
	now  func() time.Time
	mu   sync.Mutex
	seen map[string]time.Time
}

// NewMemoryOnce returns a MemoryOnce whose values live ttl by the clock now (time.Now when nil).
func NewMemoryOnce(ttl time.Duration, now func() time.Time) *MemoryOnce {
	if now == nil {
		now = time.Now
	}
	return &MemoryOnce{ttl: ttl, now: now, seen: map[string]time.Time{}}
}

// Use implements Once.
func (o *MemoryOnce) Use(_ context.Context, key string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	for k, exp := range o.seen {
		if now.After(exp) {
			delete(o.seen, k)
		}
	}
	if _, ok := o.seen[key]; ok {
		return false, nil
	}
	o.seen[key] = now.Add(o.ttl)
	return true, nil
}
