package eventstore_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// countingStore is a real store that counts what the handler asks of it.
type countingStore struct {
	domain.EventStore
	loads   atomic.Int64 // Load calls
	loaded  atomic.Int64 // events returned by Load
	appends atomic.Int64 // Append calls
}

func (s *countingStore) Load(ctx context.Context, agg domain.AggregateRef, after uint64) ([]domain.Envelope, uint64, error) {
	events, version, err := s.EventStore.Load(ctx, agg, after)
	s.loads.Add(1)
	s.loaded.Add(int64(len(events)))
	return events, version, err
}

func (s *countingStore) Append(ctx context.Context, agg domain.AggregateRef, expected uint64, events ...domain.Envelope) (domain.AppendResult, error) {
	s.appends.Add(1)
	return s.EventStore.Append(ctx, agg, expected, events...)
}

// counts returns loads, events loaded and appends so far.
func (s *countingStore) counts() (int64, int64, int64) {
	return s.loads.Load(), s.loaded.Load(), s.appends.Load()
}

type convHandler = eventstore.Handler[domain.Conversation, domain.ConversationCommand]

// newConvHandler returns a conversation handler with its own cache of size (0: no cache).
func newConvHandler(t testing.TB, store domain.EventStore, size int, opts ...eventstore.HandlerOption) *convHandler {
	t.Helper()
	if size > 0 {
		c, err := eventstore.NewStateCache[domain.Conversation](eventstore.CacheConfig{Size: size})
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, eventstore.WithStateCache(c))
	}
	return eventstore.NewHandler(store, domain.NewDefaultRegistry(), domain.ConversationDecider(), opts...)
}

func newConvRef() domain.AggregateRef {
	return domain.AggregateRef{TenantID: uuid.NewString(), Type: domain.ConversationAggregate, ID: uuid.NewString()}
}

var agent = domain.Author{Type: domain.AuthorUser, ID: "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5aff"}

func startConv(t testing.TB, h *convHandler, agg domain.AggregateRef) {
	t.Helper()
	_, err := h.Handle(context.Background(), agg, domain.StartConversation{
		ConversationID: agg.ID, Channel: domain.ChannelAPI, Contact: domain.Contact{ExternalID: "c-1"}, At: time.Now(),
	}, eventstore.Metadata{})
	if err != nil {
		t.Fatalf("start conversation: %v", err)
	}
}

func sendMsg(ctx context.Context, h *convHandler, agg domain.AggregateRef, clientID string) (eventstore.Result[domain.Conversation], error) {
	return h.Handle(ctx, agg, domain.SendMessage{
		MessageID: uuid.NewString(), Text: "hello", Author: agent, ClientMessageID: clientID, At: time.Now(),
	}, eventstore.Metadata{})
}

// fillConv appends n messages to a started conversation straight to the store, in batches.
func fillConv(t testing.TB, store domain.EventStore, agg domain.AggregateRef, n int) {
	t.Helper()
	reg := domain.NewDefaultRegistry()
	_, version, err := store.Load(context.Background(), agg, 0)
	if err != nil {
		t.Fatal(err)
	}
	for seq := 1; seq <= n; {
		var batch []domain.Envelope
		for ; seq <= n && len(batch) < 500; seq++ {
			typ, v, payload, err := reg.Encode(&domain.MessageSent{MessageID: uuid.NewString(), Seq: uint64(seq), Text: "fill",
				Author: agent, ClientMessageID: fmt.Sprintf("fill-%d", seq), SentAt: time.Now().UTC()})
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, domain.Envelope{ID: uuid.NewString(), Type: typ, SchemaVersion: v, Payload: payload})
		}
		res, err := store.Append(context.Background(), agg, version, batch...)
		if err != nil {
			t.Fatal(err)
		}
		version = res.LastSequence
	}
}

// TestCachedHandlerSendCostDoesNotGrow shows that with a state cache a send to a warm conversation
// loads nothing, whether it has 10 or thousands of messages: one append and no load; without the
// cache every send loads the whole conversation.
func TestCachedHandlerSendCostDoesNotGrow(t *testing.T) {
	t.Parallel()
	for _, kind := range storeKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			store := &countingStore{EventStore: kind.open(t)}
			for _, length := range []int{10, 5000} {
				agg := newConvRef()
				startConv(t, newConvHandler(t, store, 0), agg)
				fillConv(t, store, agg, length)

				cached := newConvHandler(t, store, 100)
				l0, e0, _ := store.counts()
				if _, err := sendMsg(t.Context(), cached, agg, ""); err != nil { // cold: loads everything once
					t.Fatal(err)
				}
				l1, e1, a1 := store.counts()
				if l1-l0 != 1 || e1-e0 != int64(length+1) {
					t.Fatalf("length %d, cold send: %d loads of %d events, want 1 of %d", length, l1-l0, e1-e0, length+1)
				}
				const sends = 5
				var last eventstore.Result[domain.Conversation]
				for range sends {
					var err error
					if last, err = sendMsg(t.Context(), cached, agg, uuid.NewString()); err != nil {
						t.Fatal(err)
					}
				}
				l2, e2, a2 := store.counts()
				if l2 != l1 || e2 != e1 || a2-a1 != sends {
					t.Fatalf("length %d, %d warm sends: %d loads of %d events and %d appends, want 0, 0, %d",
						length, sends, l2-l1, e2-e1, a2-a1, sends)
				}
				if want := uint64(length + 1 + sends); last.State.LastSeq != want {
					t.Fatalf("length %d: last seq %d, want %d", length, last.State.LastSeq, want)
				}

				if _, err := sendMsg(t.Context(), newConvHandler(t, store, 0), agg, ""); err != nil {
					t.Fatal(err)
				}
				_, e3, _ := store.counts()
				if want := int64(length + sends + 2); e3-e2 != want {
					t.Fatalf("length %d, uncached send loaded %d events, want %d", length, e3-e2, want)
				}
			}
		})
	}
}

// TestCachedHandlerCatchesUpOnConflict: two processes (two caches) write one conversation; each
// append at a stale cached version conflicts and loads only the events it missed.
func TestCachedHandlerCatchesUpOnConflict(t *testing.T) {
	t.Parallel()
	for _, kind := range storeKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			base := kind.open(t)
			store := &countingStore{EventStore: base}
			a, b := newConvHandler(t, store, 10), newConvHandler(t, base, 10)
			agg := newConvRef()
			startConv(t, a, agg)
			if _, err := sendMsg(t.Context(), a, agg, ""); err != nil {
				t.Fatal(err)
			}
			for range 3 { // the other process appends three messages
				if _, err := sendMsg(t.Context(), b, agg, ""); err != nil {
					t.Fatal(err)
				}
			}
			l0, e0, a0 := store.counts()
			res, err := sendMsg(t.Context(), a, agg, "")
			if err != nil {
				t.Fatal(err)
			}
			l1, e1, a1 := store.counts()
			if res.State.LastSeq != 5 || l1-l0 != 1 || e1-e0 != 3 || a1-a0 != 2 {
				t.Fatalf("seq %d after %d loads of %d events and %d appends; want seq 5, 1 load of the 3 missed events, 2 appends",
					res.State.LastSeq, l1-l0, e1-e0, a1-a0)
			}
		})
	}
}

// TestCachedHandlerChecksDecisionsWithoutEvents: a decision that appends nothing, made on a cached
// state, is checked against the store first, since no append would reveal that the state is old.
func TestCachedHandlerChecksDecisionsWithoutEvents(t *testing.T) {
	t.Parallel()
	for _, kind := range storeKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			store := kind.open(t)
			a, b := newConvHandler(t, store, 10), newConvHandler(t, store, 10)
			ctx := t.Context()
			at := time.Now()
			closed, open := domain.ConversationStatusClosed, domain.ConversationStatusOpen

			// A repeated client_message_id first sent through another process.
			agg := newConvRef()
			startConv(t, a, agg)
			orig, err := sendMsg(ctx, b, agg, "k")
			if err != nil {
				t.Fatal(err)
			}
			again, err := sendMsg(ctx, a, agg, "k")
			if err != nil || len(again.Events) != 0 {
				t.Fatalf("repeat through the other process: %d events, %v; want none", len(again.Events), err)
			}
			want, _ := orig.State.ClientMessage("k")
			if ref, ok := again.State.ClientMessage("k"); !ok || ref.Seq != 1 || ref != want {
				t.Fatalf("repeat answers %+v %v, want the original at seq 1", ref, ok)
			}

			// Closed in the cache, reopened by the other process: an agent may send.
			if _, err := a.Handle(ctx, agg, domain.UpdateConversation{Status: &closed, At: at}, eventstore.Metadata{}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Handle(ctx, agg, domain.UpdateConversation{Status: &open, At: at}, eventstore.Metadata{}); err != nil {
				t.Fatal(err)
			}
			res, err := sendMsg(ctx, a, agg, "")
			if err != nil || res.State.LastSeq != 2 {
				t.Fatalf("send after a reopen elsewhere: seq %d, %v", res.State.LastSeq, err)
			}

			// Open in the cache, closed by the other process: reopening is not a no-op.
			if _, err := b.Handle(ctx, agg, domain.UpdateConversation{Status: &closed, At: at}, eventstore.Metadata{}); err != nil {
				t.Fatal(err)
			}
			res, err = a.Handle(ctx, agg, domain.UpdateConversation{Status: &open, At: at}, eventstore.Metadata{})
			if err != nil || len(res.Events) != 1 || res.Events[0].Type != domain.EventConversationReopened || res.State.Status != open {
				t.Fatalf("reopen after a close elsewhere: %+v, %v", res, err)
			}
		})
	}
}

// TestCachedHandlerQueuesCommandsOnOneAggregate: concurrent commands on one aggregate in one
// process take turns, so none conflicts even without retries, and seqs are gap-free.
func TestCachedHandlerQueuesCommandsOnOneAggregate(t *testing.T) {
	t.Parallel()
	const senders = 20
	for _, kind := range storeKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			store := kind.open(t)
			h := newConvHandler(t, store, 10, eventstore.WithMaxRetries(0))
			agg := newConvRef()
			startConv(t, h, agg)
			seqs := make([]int, senders)
			var wg sync.WaitGroup
			for i := range senders {
				wg.Go(func() {
					res, err := sendMsg(context.Background(), h, agg, fmt.Sprint(i))
					if err != nil {
						t.Errorf("sender %d: %v", i, err)
						return
					}
					seqs[i] = int(res.State.LastSeq)
				})
			}
			wg.Wait()
			sort.Ints(seqs)
			for i, s := range seqs {
				if s != i+1 {
					t.Fatalf("seqs %v, want 1..%d", seqs, senders)
				}
			}
		})
	}
}

func TestStateCacheEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	store := &countingStore{EventStore: eventstore.NewMemory(eventstore.MemoryConfig{})}
	c, err := eventstore.NewStateCache[domain.Conversation](eventstore.CacheConfig{Size: 2})
	if err != nil {
		t.Fatal(err)
	}
	h := eventstore.NewHandler(store, domain.NewDefaultRegistry(), domain.ConversationDecider(), eventstore.WithStateCache(c))
	aggs := []domain.AggregateRef{newConvRef(), newConvRef(), newConvRef()}
	for _, agg := range aggs {
		startConv(t, h, agg)
	}
	if n := c.Len(); n != 2 {
		t.Fatalf("%d cached, want 2", n)
	}
	l0, _, _ := store.counts()
	if _, err := sendMsg(t.Context(), h, aggs[2], ""); err != nil { // most recent: cached
		t.Fatal(err)
	}
	l1, _, _ := store.counts()
	if _, err := sendMsg(t.Context(), h, aggs[0], ""); err != nil { // least recent: evicted
		t.Fatal(err)
	}
	l2, _, _ := store.counts()
	if l1 != l0 || l2 != l1+1 {
		t.Fatalf("loads: %d for the cached aggregate, %d for the evicted one; want 0 and 1", l1-l0, l2-l1)
	}
	if _, err := sendMsg(t.Context(), h, newConvRef(), ""); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("send to a missing conversation: %v", err)
	}
	if n := c.Len(); n != 2 {
		t.Fatalf("%d cached after a missing aggregate, want 2 (missing ones are not kept)", n)
	}
}

// blockingStore holds every Append until release is closed.
type blockingStore struct {
	domain.EventStore
	entered chan struct{}
	release chan struct{}
}

func (s *blockingStore) Append(ctx context.Context, agg domain.AggregateRef, expected uint64, events ...domain.Envelope) (domain.AppendResult, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.EventStore.Append(ctx, agg, expected, events...)
}

func TestCachedHandlerWaitForTurnRespectsContext(t *testing.T) {
	t.Parallel()
	mem := eventstore.NewMemory(eventstore.MemoryConfig{})
	agg := newConvRef()
	startConv(t, newConvHandler(t, mem, 0), agg)
	store := &blockingStore{EventStore: mem, entered: make(chan struct{}, 1), release: make(chan struct{})}
	h := newConvHandler(t, store, 10)
	done := make(chan error, 1)
	go func() {
		_, err := sendMsg(context.Background(), h, agg, "")
		done <- err
	}()
	<-store.entered // the first send holds the aggregate's turn
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := sendMsg(ctx, h, agg, ""); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Fatalf("send while another holds the turn, past its deadline: %v, want EUNAVAILABLE", err)
	}
	close(store.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res, err := sendMsg(t.Context(), h, agg, ""); err != nil || res.State.LastSeq != 2 {
		t.Fatalf("next send: seq %d, %v; want 2", res.State.LastSeq, err)
	}
}

func TestStateCacheConfig(t *testing.T) {
	t.Parallel()
	if err := (eventstore.CacheConfig{Size: -1}).Validate(); err == nil {
		t.Fatal("negative size accepted")
	}
	if _, err := eventstore.NewStateCache[domain.Tenant](eventstore.CacheConfig{}); err != nil {
		t.Fatal(err)
	}
	c, _ := eventstore.NewStateCache[domain.Tenant](eventstore.CacheConfig{})
	defer func() {
		if recover() == nil {
			t.Fatal("a cache of tenants accepted by a conversation handler")
		}
	}()
	eventstore.NewHandler(eventstore.NewMemory(eventstore.MemoryConfig{}), domain.NewDefaultRegistry(), domain.ConversationDecider(), eventstore.WithStateCache(c))
}

// BenchmarkSend times one message send to a conversation of 10 or 5,000 messages, with and
// without the state cache, on the memory store (so the figures are the handler's own costs).
func BenchmarkSend(b *testing.B) {
	for _, length := range []int{10, 5000} {
		for _, size := range []int{0, 100} {
			name := fmt.Sprintf("messages=%d/cached=%v", length, size > 0)
			b.Run(name, func(b *testing.B) {
				store := eventstore.NewMemory(eventstore.MemoryConfig{})
				agg := newConvRef()
				h := newConvHandler(b, store, size)
				startConv(b, h, agg)
				fillConv(b, store, agg, length)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := sendMsg(b.Context(), h, agg, ""); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
