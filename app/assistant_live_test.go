package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// TestLiveRepliesCarryCitations: the assistant's reply reaches a visitor's live follower with its
// citations, both live (followed before the question) and on catching up (followed afterwards).
func TestLiveRepliesCarryCitations(t *testing.T) {
	t.Parallel()
	h := newAsstHarness(t, nil)
	live := runLive(t, app.LiveConfig{Store: h.Store, Registry: h.Registry})
	ctx := t.Context()

	h.upload(t, "bikes.md", bikeManual)
	conv, visitor := h.start(t, true)
	before, err := live.Follow(ctx, visitor, conv, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	h.ask(t, visitor, conv, "How many days do I have to return a bike?")
	botReply := func(f *app.Follower) *app.Message {
		t.Helper()
		nctx, ncancel := context.WithTimeout(ctx, 15*time.Second)
		defer ncancel()
		for {
			ev, err := f.Next(nctx)
			if err != nil {
				t.Fatalf("waiting for the reply: %v", err)
			}
			if ev.Message != nil && ev.Message.Author.Type == domain.AuthorBot {
				return ev.Message
			}
		}
	}
	want := h.waitMessages(t, conv, 2)[1]
	if len(want.Citations) == 0 {
		t.Fatalf("the stored reply has no citations: %+v", want)
	}
	if got := botReply(before); len(got.Citations) != len(want.Citations) || got.Citations[0] != want.Citations[0] {
		t.Errorf("live reply citations %+v, want %+v", got.Citations, want.Citations)
	}
	after, err := live.Follow(ctx, visitor, conv, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if got := botReply(after); len(got.Citations) != len(want.Citations) || got.Citations[0] != want.Citations[0] {
		t.Errorf("caught-up reply citations %+v, want %+v", got.Citations, want.Citations)
	}
}
