// Package testkit starts the real components tests talk to: an embedded nats-server with JetStream
// in a temporary directory, and a fresh Postgres database per test on the machine's server. It is
// imported by tests only.
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATS is a running embedded nats-server for one test.
type NATS struct {
	Server *server.Server
	URL    string
	Dir    string
}

// StartNATS starts an embedded nats-server with JetStream on a random loopback port, with its store
// in a temporary directory (or dir, when not empty), and shuts it down when the test ends.
func StartNATS(tb testing.TB, dir string) *NATS {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	opts := &server.Options{
		ServerName: "metachat-test",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   dir,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		tb.Fatalf("testkit: new nats server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		tb.Fatal("testkit: nats server not ready")
	}
	n := &NATS{Server: s, URL: s.ClientURL(), Dir: dir}
	tb.Cleanup(n.Shutdown)
	return n
}

// Shutdown stops the server and waits until it has stopped. It may be called more than once.
func (n *NATS) Shutdown() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}

// Connect returns a client connection to the server, closed when the test ends.
func (n *NATS) Connect(tb testing.TB, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(n.URL, opts...)
	if err != nil {
		tb.Fatalf("testkit: connect nats: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// AdminDatabaseURL is the superuser URL of the Postgres server tests create their databases on:
// METACHAT_TEST_DATABASE_URL, else the machine's server on 127.0.0.1:5432.
func AdminDatabaseURL() string {
	if u := os.Getenv("METACHAT_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Postgres creates a new, empty database with a random name for one test and drops it when the
// test ends. It returns the database's superuser URL.
func Postgres(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := AdminDatabaseURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("testkit: connect postgres %s: %v (is PostgreSQL running? .ci/run starts it)", redact(admin), err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "metachat_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("testkit: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("testkit: drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("testkit: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("testkit: parse %s: %v", redact(admin), err)
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
