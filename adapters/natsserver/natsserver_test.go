package natsserver_test

import (
	"bytes"
	"context"
	"errors"
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

func TestCheckServerVersion(t *testing.T) {
	srv := start(t, newConfig(t))
	nc := connect(t, srv.ClientURL())
	if err := natsserver.CheckServerVersion(nc, natsserver.MinServerVersion); err != nil {
		t.Fatalf("embedded server %s: %v", nc.ConnectedServerVersion(), err)
	}
	tests := []struct {
		min     string
		tooOld  bool
		invalid bool
	}{
		{min: "2.9"},
		{min: "2.12"},
		{min: "v2.12.0"},
		{min: nc.ConnectedServerVersion()},
		{min: nc.ConnectedServerVersion() + "-rc.1"},
		{min: "2.99.0", tooOld: true},
		{min: "3", tooOld: true},
		{min: "two", invalid: true},
		{min: "2.12.0-", invalid: true},
	}
	for _, tt := range tests {
		err := natsserver.CheckServerVersion(nc, tt.min)
		var verr *natsserver.VersionError
		switch {
		case tt.tooOld && !errors.As(err, &verr):
			t.Errorf("min %s: want a VersionError, got %v", tt.min, err)
		case tt.invalid && (err == nil || errors.As(err, &verr)):
			t.Errorf("min %s: want an invalid-version error, got %v", tt.min, err)
		case !tt.tooOld && !tt.invalid && err != nil:
			t.Errorf("min %s: %v", tt.min, err)
		}
	}
}

// TestCheckServerVersionRefusesOldServer uses the machine's own NATS on the standard port, when
// there is one and it is older than Metachat needs.
func TestCheckServerVersionRefusesOldServer(t *testing.T) {
	nc, err := nats.Connect(nats.DefaultURL, nats.Timeout(2*time.Second), nats.NoReconnect())
	if err != nil {
		t.Skipf("no NATS server at %s: %v", nats.DefaultURL, err)
	}
	defer nc.Close()
	err = natsserver.CheckServerVersion(nc, natsserver.MinServerVersion)
	if err == nil {
		t.Skipf("NATS server at %s is %s, not older than %s", nats.DefaultURL, nc.ConnectedServerVersion(), natsserver.MinServerVersion)
	}
	var verr *natsserver.VersionError
	if !errors.As(err, &verr) || !strings.Contains(err.Error(), "unset NATS_URL") {
		t.Fatalf("want a VersionError, got %v", err)
	}
	t.Log(err)
}

func TestConfigValidate(t *testing.T) {
	if err := (natsserver.Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	err := natsserver.Config{Port: -1, SyncAlways: true, SyncInterval: time.Second, MaxStore: -5}.Validate()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"port -1", "mutually exclusive", "max store"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
