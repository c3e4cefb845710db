package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// runLive starts a hub for cfg (with in-memory signals) until the test ends, and waits until it
// runs.
func runLive(t *testing.T, cfg app.LiveConfig) *app.Live {
	t.Helper()
	cfg.Signals = eventstore.NewMemorySignals()
	live, err := app.NewLive(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = live.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	<-live.Running()
	return live
}

// TestLiveReadsTheStreamOnlyWithFollowers shows the hub idle without followers, reading once one
// follows, going idle again IdleAfter after the last one left, and a follower that comes while
// it is idle getting every message: those stored meanwhile by catching up, and one stored while
// it follows live, without another message to reveal a gap.
func TestLiveReadsTheStreamOnlyWithFollowers(t *testing.T) {
	t.Parallel()
	h := newConvHarness(t)
	live := runLive(t, app.LiveConfig{Store: h.Store, Registry: h.Registry, IdleAfter: 20 * time.Millisecond})
	ctx := t.Context()

	agent := convAgent()
	conv := h.create(t, agent, domain.Contact{ExternalID: "visitor-1"})
	sent := 0
	send := func() {
		t.Helper()
		sent++
		if _, err := h.svc.SendMessage(ctx, agent, conv.ID, app.SendMessageInput{Text: fmt.Sprintf("message %d", sent)}); err != nil {
			t.Errorf("send %d: %v", sent, err)
		}
	}
	next := func(f *app.Follower, want int) {
		t.Helper()
		nctx, ncancel := context.WithTimeout(ctx, 5*time.Second)
		defer ncancel()
		ev, err := f.Next(nctx)
		if err != nil || ev.Message == nil || ev.Message.Seq != uint64(want) || ev.Message.Text != fmt.Sprintf("message %d", want) {
			t.Fatalf("next = %+v, %v; want message %d", ev, err, want)
		}
	}
	idle := func() {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); live.Reading(); {
			if time.Now().After(deadline) {
				t.Fatal("the hub still reads the stream without followers")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	send()
	if live.Reading() {
		t.Fatal("the hub reads the stream before anyone follows")
	}
	f, err := live.Follow(ctx, agent, conv.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !live.Reading() {
		t.Error("the hub does not read the stream with a follower")
	}
	next(f, 1) // caught up
	send()
	next(f, 2) // live
	f.Close()
	idle()

	// Followers coming while the hub is idle, each with a message stored while it comes.
	for round := range 10 {
		send() // stored while idle
		k := sent
		var racing sync.WaitGroup
		racing.Go(send) // stored while the follower registers and the hub starts reading
		f, err := live.Follow(ctx, agent, conv.ID, uint64(k-1))
		if err != nil {
			t.Fatal(err)
		}
		racing.Wait()
		next(f, k)
		next(f, k+1)
		f.Close()
		if round%3 == 0 {
			idle()
		}
	}
	if n := live.Followers(); n != 0 {
		t.Errorf("%d followers left", n)
	}
}
