package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/domain"
)

// Objects keeps files (the originals of uploaded documents) in a JetStream object store, beside
// the events: an event names an object, it never carries the file. Objects are written once and
// read by name; the store keeps them on disk with the stream's replica count.
type Objects struct {
	os jetstream.ObjectStore
}

// NewObjects creates (or opens) the object store bucket on the store's JetStream. maxBytes bounds
// the bucket's total size (0: no limit).
func (s *JetStream) NewObjects(ctx context.Context, bucket string, maxBytes int64) (*Objects, error) {
	cfg := jetstream.ObjectStoreConfig{
		Bucket: bucket, Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas,
		Description: "Metachat files (uploaded documents' originals)",
	}
	if maxBytes > 0 {
		cfg.MaxBytes = maxBytes
	}
	os, err := s.js.CreateOrUpdateObjectStore(ctx, cfg)
	if err != nil {
		return nil, unavailable("create object store "+bucket, err)
	}
	return &Objects{os: os}, nil
}

// Put stores data under name, replacing any object of that name.
func (o *Objects) Put(ctx context.Context, name string, data []byte) error {
	if _, err := o.os.PutBytes(ctx, name, data); err != nil {
		return unavailable("put object "+name, err)
	}
	return nil
}

// Get returns the object called name; a missing one is ENOTFOUND.
func (o *Objects) Get(ctx context.Context, name string) ([]byte, error) {
	b, err := o.os.GetBytes(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, domain.Errorf(domain.ENOTFOUND, "Object %s not found.", name)
	}
	if err != nil {
		return nil, unavailable("get object "+name, err)
	}
	return b, nil
}

// Exists reports whether an object called name is stored.
func (o *Objects) Exists(ctx context.Context, name string) (bool, error) {
	_, err := o.os.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return false, nil
	}
	if err != nil {
		return false, unavailable("stat object "+name, err)
	}
	return true, nil
}

// Delete removes the object called name; a missing one is no error.
func (o *Objects) Delete(ctx context.Context, name string) error {
	if err := o.os.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return unavailable(fmt.Sprintf("delete object %s", name), err)
	}
	return nil
}
