package natsserver_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/metachat/metachat/adapters/natsserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newConfig(t *testing.T) natsserver.Config {
	t.Helper()
	return natsserver.Config{
		StoreDir: t.TempDir(),
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

func start(t *testing.T, cfg natsserver.Config) *natsserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	srv, err := natsserver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestStreamSurvivesRestart(t *testing.T) {
	cfg := newConfig(t)
	srv := start(t, cfg)
	if strings.HasSuffix(srv.ClientURL(), ":4222") || !strings.HasPrefix(srv.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("client URL %s", srv.ClientURL())
	}
	nc := connect(t, srv.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "events.created", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	srv.Shutdown()
	srv.Shutdown() // idempotent

	srv = start(t, cfg)
	js, err = jetstream.New(connect(t, "", srv.InProcessOption()))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != "hello" || msg.Subject != "events.created" {
		t.Fatalf("got %s %q", msg.Subject, msg.Data)
	}
}

func TestInProcessAndTCPClientsMeet(t *testing.T) {
	srv := start(t, newConfig(t))
	inproc := connect(t, "", srv.InProcessOption())
	tcp := connect(t, srv.ClientURL())
	sub, err := inproc.SubscribeSync("greet")
	if err != nil {
		t.Fatal(err)
	}
	if err := inproc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := tcp.Publish("greet", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(msg.Data) != "hi" {
		t.Fatalf("got %v %v", msg, err)
	}
}

func TestSecondServerOnSameStoreFails(t *testing.T) {
	cfg := newConfig(t)
	start(t, cfg)
	srv, err := natsserver.Start(t.Context(), cfg)
	if err == nil {
		srv.Shutdown()
		t.Fatal("second server on the same store started")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := newConfig(t)
	cfg.Port = l.Addr().(*net.TCPAddr).Port
	begin := time.Now()
	srv, err := natsserver.Start(t.Context(), cfg)
	if err == nil {
		srv.Shutdown()
		t.Fatal("started on a taken port")
	}
	if time.Since(begin) > 5*time.Second {
		t.Errorf("failing took %v", time.Since(begin))
	}
	t.Log(err)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLimitsAndSyncAlways(t *testing.T) {
	var logs syncBuffer
	cfg := newConfig(t)
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, t.Output()), nil))
	cfg.SyncAlways = true
	cfg.MaxStore = 64 << 20
	cfg.MaxMemory = 16 << 20
	srv := start(t, cfg)
	for _, want := range []string{"Max Storage:     64.00 MB", "Max Memory:      16.00 MB", "Server is ready"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("server log lacks %q", want)
		}
	}
	js, err := jetstream.New(connect(t, "", srv.InProcessOption()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "s", []byte("x")); err != nil {
		t.Fatal(err)
	}
}
