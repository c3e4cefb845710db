// Package natsserver runs an embedded NATS server with JetStream for Metachat, so that a machine
// without a NATS deployment gets a working message bus. Clients connect over TCP (ClientURL) or
// in-process without a socket (InProcessOption).
package natsserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// lockFileName is the file in the store directory that an exclusive flock guards, so that two
// servers never share one JetStream store.
const lockFileName = "metachat-nats.lock"

// Server is a running embedded NATS server started by Start. Stop it with Shutdown.
type Server struct {
	ns   *server.Server
	lock *os.File
	once sync.Once
}

// Start runs a NATS server with JetStream storing into cfg.StoreDir and returns once it accepts
// connections. ctx bounds the start only; the server runs until Shutdown.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	s, err := start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	return s, nil
}

func start(ctx context.Context, cfg Config) (*Server, error) {
	storeDir, err := filepath.Abs(cfg.StoreDir)
	if err != nil {
		return nil, fmt.Errorf("store dir: %w", err)
	}
	lock, err := lockStore(storeDir)
	if err != nil {
		return nil, err
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:         cfg.ServerName,
		Host:               cfg.Host,
		Port:               port,
		JetStream:          true,
		StoreDir:           storeDir,
		JetStreamMaxMemory: cfg.MaxMemory,
		JetStreamMaxStore:  cfg.MaxStore,
		SyncInterval:       cfg.SyncInterval,
		SyncAlways:         cfg.SyncAlways,
		NoSigs:             true,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("configure server: %w", err)
	}
	log := &slogLogger{log: cfg.Logger}
	bg := context.Background()
	ns.SetLoggerV2(log, cfg.Logger.Enabled(bg, slog.LevelDebug), cfg.Logger.Enabled(bg, LevelTrace), false)
	s := &Server{ns: ns, lock: lock}
	ns.Start()
	if err := waitReady(ctx, ns, log, cfg.ReadyTimeout); err != nil {
		s.Shutdown()
		return nil, err
	}
	if !ns.JetStreamEnabled() {
		s.Shutdown()
		return nil, fmt.Errorf("JetStream did not start (%s)", log.lastFatal())
	}
	return s, nil
}

// waitReady waits until ns accepts connections, it reports a fatal error, ctx ends or timeout
// passes.
func waitReady(ctx context.Context, ns *server.Server, log *slogLogger, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !ns.ReadyForConnections(50 * time.Millisecond) {
		if msg := log.lastFatal(); msg != "" {
			return errors.New(msg)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait for server: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready for connections within %v", timeout)
		}
	}
	return nil
}

// lockStore creates storeDir and takes an exclusive lock on it, released by closing the file.
// Missing parent directories are made world-traversable (0755): they are typically shared with
// the managed PostgreSQL, which runs as another user when Metachat runs as root.
func lockStore(storeDir string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(storeDir), 0o755); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	if err := os.Mkdir(storeDir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(storeDir, lockFileName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock store dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("store dir %s is in use by another NATS server (is another Metachat running?)", storeDir)
		}
		return nil, fmt.Errorf("lock store dir: %w", err)
	}
	return f, nil
}

// ClientURL returns the URL clients connect to over TCP, e.g. nats://127.0.0.1:36123.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// InProcessOption returns a nats.Option that connects to this server in-process, without TCP.
// Pass it to nats.Connect together with any URL (it is ignored).
func (s *Server) InProcessOption() nats.Option { return nats.InProcessServer(s.ns) }

// Shutdown stops the server, closing client connections, and waits until it has stopped and
// released its store. It is safe to call more than once.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.lock.Close()
	})
}
