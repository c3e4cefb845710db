// Package teststack starts the application services of Metachat on a testkit.Core for tests of
// the adapters: identity, conversations, widgets, the live hub and the knowledge base (with its
// document pipeline), with every read model running,
// configured as `metachat serve` configures them.
package teststack

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
	"github.com/metachat/metachat/projections"
)

// Stack is a running Metachat application for one test. Everything stops when the test ends.
type Stack struct {
	*testkit.Core
	Identity      *app.Identity
	Conversations *app.Conversations
	Widgets       *app.Widgets
	Live          *app.Live
	// Knowledge is the knowledge base, with its document pipeline running.
	Knowledge *app.Knowledge
	// Pepper is the server secret the API keys and widget sessions are keyed with; Nonces the
	// store of spent session nonces.
	Pepper []byte
	Nonces eventstore.Once
}

// Start starts a Stack on its own embedded NATS server and Postgres database.
func Start(tb testing.TB) *Stack {
	tb.Helper()
	return StartOn(tb, testkit.StartCore(tb, projections.All), nil)
}

// StartOn starts the services on core, with the given secrets (nil: new ones). Two stacks on two
// cores that share a NATS server and a database are two instances of one deployment.
func StartOn(tb testing.TB, core *testkit.Core, pepper []byte) *Stack {
	tb.Helper()
	s := &Stack{Core: core, Pepper: pepper}
	var err error
	if s.Pepper == nil {
		if s.Pepper, err = app.GenerateAPIKeyPepper(); err != nil {
			tb.Fatal(err)
		}
	}
	signingKey, err := app.GenerateSigningKey()
	if err != nil {
		tb.Fatal(err)
	}
	if s.Identity, err = app.NewIdentity(app.IdentityConfig{
		Store: core.Store, Registry: core.Registry, DB: core.Pools.App, Waiter: core.Waiter,
		SigningKey: signingKey, APIKeyPepper: s.Pepper, Logger: core.Logger,
	}); err != nil {
		tb.Fatal(err)
	}
	if s.Conversations, err = app.NewConversations(app.ConversationsConfig{
		Store: core.Store, Registry: core.Registry, DB: core.Pools.App, Waiter: core.Waiter, Logger: core.Logger,
	}); err != nil {
		tb.Fatal(err)
	}
	if s.Nonces, err = core.Store.NewOnce(context.Background(), "widget_nonces", app.WidgetNonceTTL); err != nil {
		tb.Fatal(err)
	}
	s.Widgets = s.NewWidgets(tb, s.Pepper, nil)
	if s.Live, err = app.NewLive(app.LiveConfig{
		Store: core.Store, Registry: core.Registry, Signals: eventstore.NewNATSSignals(core.Conn, "sig"), Logger: core.Logger,
	}); err != nil {
		tb.Fatal(err)
	}
	objects, err := core.Store.NewObjects(context.Background(), "documents", 0)
	if err != nil {
		tb.Fatal(err)
	}
	if s.Knowledge, err = app.NewKnowledge(app.KnowledgeConfig{
		Store: core.Store, Registry: core.Registry, DB: core.Pools.App, Waiter: core.Waiter, Objects: objects,
		Worker: core.Store, Logger: core.Logger,
	}); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.Live.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			tb.Errorf("live hub: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := s.Knowledge.RunPipeline(ctx); err != nil && !errors.Is(err, context.Canceled) {
			tb.Errorf("document pipeline: %v", err)
		}
	}()
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	select {
	case <-s.Live.Running():
	case <-time.After(10 * time.Second):
		tb.Fatal("the live hub did not start")
	}
	return s
}

// NewWidgets returns another widgets service of this stack, keyed with secret, on the clock now
// (nil: time.Now): an instance whose clock is off, or one with another server secret.
func (s *Stack) NewWidgets(tb testing.TB, secret []byte, now func() time.Time) *app.Widgets {
	tb.Helper()
	w, err := app.NewWidgets(app.WidgetsConfig{
		Store: s.Store, Registry: s.Registry, DB: s.Pools.App, Waiter: s.Waiter,
		Conversations: s.Conversations, Secret: secret, Nonces: s.Nonces, Logger: s.Logger, Now: now,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return w
}
