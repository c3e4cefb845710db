package eventstore_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/eventstore/storetest"
)

// startCluster starts a JetStream cluster of n embedded servers and returns a connection to the
// first once the cluster has a meta leader. Everything stops when the test ends.
func startCluster(t *testing.T, n int) *nats.Conn {
	t.Helper()
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
	}
	var urls []string
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("metachat-test-%d", i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster:    server.ClusterOpts{Name: "metachat-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("new server %d: %v", i, err)
		}
		s.Start()
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("server %d not ready", i)
		}
		urls = append(urls, s.ClientURL())
	}
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := js.AccountInfo(t.Context())
		if err == nil {
			return nc
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream cluster not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestJetStreamCluster runs the conformance suite on streams with three replicas, where writes go
// through Raft and direct gets may be answered by followers, and checks that Open changes the
// replica count of an existing stream.
func TestJetStreamCluster(t *testing.T) {
	t.Parallel()
	nc := startCluster(t, 3)

	t.Run("OpenUpdatesReplicas", func(t *testing.T) {
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
		cfg.Replicas = 3
		s3, err := eventstore.Open(t.Context(), nc, cfg)
		if err != nil {
			t.Fatalf("reopen with 3 replicas: %v", err)
		}
		info, err := s3.Stream().Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.Replicas != 3 {
			t.Fatalf("replicas %d after reopening with 3", info.Config.Replicas)
		}
		if _, v, err := s3.Load(t.Context(), agg, 0); err != nil || v != res.LastSequence {
			t.Fatalf("Load after scaling up: version %d, %v; want %d", v, err, res.LastSequence)
		}
	})

	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) domain.EventStore {
			cfg := uniqueConfig()
			cfg.Replicas = 3
			s, err := eventstore.Open(t.Context(), nc, cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		})
	})
}
