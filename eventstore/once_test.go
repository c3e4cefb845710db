package eventstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
)

func openOnceStore(t *testing.T) (*eventstore.JetStream, *testkit.NATS) {
	t.Helper()
	srv := testkit.StartNATS(t, t.TempDir())
	store, err := eventstore.Open(t.Context(), srv.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return store, srv
}

// onceContract is what every Once must do: one winner among concurrent users, false afterwards.
func onceContract(t *testing.T, a, b eventstore.Once) {
	t.Helper()
	ctx := context.Background()
	key := uuid.NewString()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := a
			if i%2 == 1 {
				o = b
			}
			ok, err := o.Use(ctx, key)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent first uses, want 1", wins.Load())
	}
	if ok, err := b.Use(ctx, uuid.NewString()); !ok || err != nil {
		t.Fatalf("a new key: %v, %v", ok, err)
	}
}

func TestJetStreamOnce(t *testing.T) {
	store, srv := openOnceStore(t)
	// Two instances: two connections, one bucket.
	store2, err := eventstore.Open(t.Context(), srv.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := store.NewOnce(t.Context(), "test_once", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, err := store2.NewOnce(t.Context(), "test_once", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	onceContract(t, a, b)
	if _, err := a.Use(t.Context(), "bad key with spaces"); err == nil {
		t.Error("an invalid key was accepted")
	}
	if _, err := store.NewOnce(t.Context(), "x", 0); err == nil {
		t.Error("a zero ttl was accepted")
	}
}

func TestMemoryOnce(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	o := eventstore.NewMemoryOnce(time.Minute, func() time.Time { return now })
	onceContract(t, o, o)
	if ok, _ := o.Use(t.Context(), "k"); !ok {
		t.Fatal("first use refused")
	}
	now = now.Add(2 * time.Minute)
	if ok, _ := o.Use(t.Context(), "k"); !ok {
		t.Error("a value is still spent after its ttl")
	}
}

func TestSignals(t *testing.T) {
	_, srv := openOnceStore(t)
	impls := map[string][2]eventstore.Signals{
		"nats":   {eventstore.NewNATSSignals(srv.Connect(t), "sig"), eventstore.NewNATSSignals(srv.Connect(t), "sig")},
		"memory": func() [2]eventstore.Signals { m := eventstore.NewMemorySignals(); return [2]eventstore.Signals{m, m} }(),
	}
	for name, pair := range impls {
		t.Run(name, func(t *testing.T) {
			got := make(chan string, 10)
			stop, err := pair[1].Subscribe("typing.*.>", func(subject string, data []byte) { got <- subject + "=" + string(data) })
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"typing.t1.c1", "other.t1.c1", "typing.t1", "typing.t2.c2.x"} {
				if err := pair[0].Publish(t.Context(), s, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			want := []string{"typing.t1.c1=x", "typing.t2.c2.x=x"}
			for _, w := range want {
				select {
				case g := <-got:
					if g != w {
						t.Errorf("got %s, want %s", g, w)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("no signal %s", w)
				}
			}
			stop()
			_ = pair[0].Publish(t.Context(), "typing.t1.c1", []byte("late"))
			select {
			case g := <-got:
				t.Errorf("signal after stop or unmatched: %s", g)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}
