package eventstore_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/eventstore/storetest"
	"github.com/metachat/metachat/internal/testkit"
)

// oldNATSAddr is where this machine runs a nats-server too old for Metachat.
const oldNATSAddr = "127.0.0.1:4222"

// uniqueConfig returns a configuration with a stream name and subject prefix of its own, so
// stores on one server do not share events.
func uniqueConfig() eventstore.Config {
	id := strings.ReplaceAll(uuid.NewString(), "-", "")
	return eventstore.Config{Stream: "EV_" + id, SubjectPrefix: "t" + id + ".ev"}
}

// openStore opens a store with its own stream on nc.
func openStore(t testing.TB, nc *nats.Conn) *eventstore.JetStream {
	t.Helper()
	s, err := eventstore.Open(t.Context(), nc, uniqueConfig())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestJetStreamConformance(t *testing.T) {
	t.Parallel()
	nc := testkit.StartNATS(t, "").Connect(t)
	storetest.Run(t, func(t *testing.T) domain.EventStore { return openStore(t, nc) })
}

func TestOpenRefusesOldServer(t *testing.T) {
	t.Parallel()
	conn, err := net.DialTimeout("tcp", oldNATSAddr, 500*time.Millisecond)
	if err != nil {
		t.Skipf("no NATS server at %s: %v", oldNATSAddr, err)
	}
	_ = conn.Close()
	nc, err := nats.Connect("nats://"+oldNATSAddr, nats.Timeout(2*time.Second))
	if err != nil {
		t.Skipf("connect %s: %v", oldNATSAddr, err)
	}
	defer nc.Close()
	if v := nc.ConnectedServerVersion(); !strings.HasPrefix(v, "2.9.") {
		t.Skipf("the server at %s is %s, not the old 2.9", oldNATSAddr, v)
	}

	cfg := uniqueConfig()
	_, err = eventstore.Open(t.Context(), nc, cfg)
	if err == nil {
		t.Fatal("Open accepted an old server")
	}
	want := "NATS server " + nc.ConnectedServerVersion() + " at nats://" + oldNATSAddr +
		" is too old: Metachat needs nats-server 2.12 or newer for atomic batch publish; " +
		"upgrade it, or unset NATS_URL to use the embedded server"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("Open error:\n  %v\nwant it to contain:\n  %s", err, want)
	}
	// Nothing was created on the old server.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(t.Context(), cfg.Stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream lookup on the old server: %v, want not found", err)
	}
}

func TestVersionLess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		less bool
	}{
		{"2.9.25", "2.12.0", true},
		{"2.11.9", "2.12.0", true},
		{"2.12.0", "2.12.0", false},
		{"2.12.1", "2.12.0", false},
		{"2.15.2", "2.12.0", false},
		{"3.0.0", "2.12.0", false},
		{"v2.12.0", "2.12.0", false},
		{"2.12.0-RC.1", "2.12.0", true},
		{"2.12.0", "2.12.0-RC.1", false},
		{"2.12.0-RC.1", "2.12.0-RC.2", true},
		{"2.12.0+build", "2.12.0", false},
		{"2.100.0", "2.12.0", false},
	} {
		got, err := eventstore.VersionLess(tc.a, tc.b)
		if err != nil || got != tc.less {
			t.Errorf("VersionLess(%q, %q) = %v, %v; want %v", tc.a, tc.b, got, err, tc.less)
		}
	}
	for _, bad := range []string{"", "2", "2.12", "2.x.0", "2.12.0.1", "-1.0.0"} {
		if _, err := eventstore.VersionLess(bad, "2.12.0"); err == nil {
			t.Errorf("VersionLess(%q, …) accepted a malformed version", bad)
		}
	}
}

func TestOpenCreatesStream(t *testing.T) {
	t.Parallel()
	nc := testkit.StartNATS(t, "").Connect(t)
	s, err := eventstore.Open(t.Context(), nc, eventstore.Config{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	cfg := s.Config()
	if cfg.Stream != eventstore.DefaultStream || cfg.SubjectPrefix != "ev" || cfg.Replicas != 1 ||
		cfg.DuplicateWindow != 2*time.Minute || cfg.MinServerVersion != "2.12.0" || cfg.Logger == nil || cfg.Now == nil {
		t.Fatalf("Config() = %+v: defaults not applied", cfg)
	}
	if s.JetStream() == nil {
		t.Fatal("JetStream() is nil")
	}
	info, err := s.Stream().Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sc := info.Config
	switch {
	case sc.Name != "METACHAT_EVENTS", len(sc.Subjects) != 1 || sc.Subjects[0] != "ev.>":
		t.Fatalf("stream %s on %v", sc.Name, sc.Subjects)
	case sc.Storage != jetstream.FileStorage, sc.Retention != jetstream.LimitsPolicy:
		t.Fatalf("storage %v, retention %v", sc.Storage, sc.Retention)
	case !sc.DenyDelete, !sc.DenyPurge, !sc.AllowAtomicPublish, !sc.AllowDirect:
		t.Fatalf("deny delete %v, deny purge %v, atomic %v, direct %v", sc.DenyDelete, sc.DenyPurge, sc.AllowAtomicPublish, sc.AllowDirect)
	case sc.Duplicates != 2*time.Minute, sc.Replicas != 1:
		t.Fatalf("duplicates %v, replicas %d", sc.Duplicates, sc.Replicas)
	case sc.MaxAge != 0, sc.MaxMsgs != -1, sc.MaxBytes != -1, sc.MaxMsgsPerSubject != -1:
		t.Fatalf("limits: age %v, msgs %d, bytes %d, per subject %d", sc.MaxAge, sc.MaxMsgs, sc.MaxBytes, sc.MaxMsgsPerSubject)
	}

	// Deleting and purging are refused.
	res, err := s.Append(t.Context(), domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: "a"}, 0, event("ticket.opened"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stream().DeleteMsg(t.Context(), res.LastSequence); err == nil {
		t.Fatal("deleting an event succeeded")
	}
	if err := s.Stream().Purge(t.Context()); err == nil {
		t.Fatal("purging the stream succeeded")
	}
}

func TestOpenIsIdempotentAndUpdates(t *testing.T) {
	t.Parallel()
	nc := testkit.StartNATS(t, "").Connect(t)
	cfg := uniqueConfig()
	s1, err := eventstore.Open(t.Context(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	agg := domain.AggregateRef{TenantID: "acme", Type: "ticket", ID: "a"}
	res, err := s1.Append(t.Context(), agg, 0, event("ticket.opened"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DuplicateWindow = 5 * time.Minute
	s2, err := eventstore.Open(t.Context(), nc, cfg)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	info, err := s2.Stream().Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Duplicates != 5*time.Minute {
		t.Fatalf("duplicate window %v after reopening with 5m", info.Config.Duplicates)
	}
	if _, v, err := s2.Load(t.Context(), agg, 0); err != nil || v != res.LastSequence {
		t.Fatalf("events kept across Open: version %d, %v; want %d", v, err, res.LastSequence)
	}
	// A single server cannot hold 3 replicas: the update is attempted and refused.
	cfg.Replicas = 3
	if _, err := eventstore.Open(t.Context(), nc, cfg); err == nil || domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Fatalf("Open with 3 replicas on a single server: %v", err)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	t.Parallel()
	nc := testkit.StartNATS(t, "").Connect(t)
	bad := eventstore.Config{Stream: "bad.name", SubjectPrefix: "ev.>", Replicas: 7, DuplicateWindow: -time.Second, MinServerVersion: "two"}
	_, err := eventstore.Open(t.Context(), nc, bad)
	if err == nil {
		t.Fatal("Open accepted a bad configuration")
	}
	for _, want := range []string{"stream name", "subject prefix", "replicas 7", "duplicate window", "minimum server version"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := eventstore.Open(t.Context(), nil, eventstore.Config{}); err == nil {
		t.Fatal("Open accepted a nil connection")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  eventstore.Config
		ok   bool
	}{
		{"zero value", eventstore.Config{}, true},
		{"dotted prefix", eventstore.Config{SubjectPrefix: "metachat.ev"}, true},
		{"5 replicas", eventstore.Config{Replicas: 5}, true},
		{"stream with a dot", eventstore.Config{Stream: "a.b"}, false},
		{"stream with a space", eventstore.Config{Stream: "a b"}, false},
		{"wildcard prefix", eventstore.Config{SubjectPrefix: "ev.*"}, false},
		{"empty prefix token", eventstore.Config{SubjectPrefix: "ev..x"}, false},
		{"negative replicas", eventstore.Config{Replicas: -1}, false},
		{"6 replicas", eventstore.Config{Replicas: 6}, false},
		{"negative window", eventstore.Config{DuplicateWindow: -1}, false},
		{"bad version", eventstore.Config{MinServerVersion: "2.12"}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
