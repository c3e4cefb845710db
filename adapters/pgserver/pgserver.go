// Package pgserver runs a private PostgreSQL server for Metachat as child processes, so that a
// machine with PostgreSQL binaries installed gets a working database without any setup.
//
// The server keeps its files under Config.DataDir: the cluster in DataDir/pgdata (created by
// initdb on first start) and its unix socket in DataDir/run. It listens on that socket and on
// 127.0.0.1 only, with trust authentication, and has the pgvector extension created in the
// application database. When Metachat runs as root, initdb and postgres run as an unprivileged
// user (PostgreSQL refuses to run as root), which then owns DataDir.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// superuser is the cluster's superuser, created by initdb.
const superuser = "postgres"

// portAttempts is how often Start tries another free port when the chosen one was taken.
const portAttempts = 3

// Server is a running PostgreSQL server started by Start. Stop it with Stop.
type Server struct {
	cfg     Config
	log     *slog.Logger
	pgdata  string
	sockDir string
	tmpSock bool
	port    int

	cmd      *exec.Cmd
	out      *logWriter
	exited   chan struct{} // closed once postgres has exited and waitErr is set
	waitErr  error         // written before exited is closed
	stopping atomic.Bool
	stopOnce sync.Once
	stopErr  error
}

// Start runs PostgreSQL on cfg.DataDir, creating the cluster, the application database and the
// pgvector extension (installing pgvector first when missing) as needed. It returns once the
// server accepts connections. ctx bounds the start only; the server runs until Stop.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s, err := start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	return s, nil
}

func start(ctx context.Context, cfg Config) (*Server, error) {
	log := cfg.Logger
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	acct, err := resolveAccount(cfg.RunAsUser)
	if err != nil {
		return nil, err
	}
	if err := makeDataDir(dataDir); err != nil {
		return nil, err
	}
	if err := checkReachable(dataDir, acct); err != nil {
		return nil, err
	}
	pgdata := filepath.Join(dataDir, "pgdata")
	clusterMajor, err := readPGVersion(pgdata)
	if err != nil {
		return nil, err
	}
	binDir := cfg.BinDir
	if binDir == "" {
		if binDir, err = findBinDir(clusterMajor); err != nil {
			return nil, err
		}
	}
	major, err := serverMajor(ctx, binDir)
	if err != nil {
		return nil, err
	}
	if clusterMajor != 0 && clusterMajor != major {
		return nil, fmt.Errorf("cluster in %s was created by PostgreSQL %d but %s holds PostgreSQL %d: "+
			"install PostgreSQL %d, or upgrade the cluster with pg_upgrade", pgdata, clusterMajor, binDir, major, clusterMajor)
	}
	if err := ensurePgvector(ctx, binDir, major, log); err != nil {
		return nil, err
	}
	sockDir, tmpSock, err := socketDir(dataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, pgdata: pgdata, sockDir: sockDir, tmpSock: tmpSock}
	if err := s.prepare(ctx, binDir, dataDir, clusterMajor == 0, acct); err != nil {
		s.removeTempSocketDir()
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		err := s.launch(ctx, binDir, dataDir, acct)
		if err == nil {
			break
		}
		if cfg.Port == 0 && attempt < portAttempts && s.out != nil && s.out.contains("already in use") {
			log.Warn("postgres port was taken, trying another", "port", s.port)
			continue
		}
		s.removeTempSocketDir()
		return nil, err
	}
	if err := s.setupDatabase(ctx); err != nil {
		_ = s.Stop(context.Background())
		return nil, err
	}
	log.Info("postgres ready", "pid", s.PID(), "port", s.port, "socket_dir", s.sockDir, "database", cfg.Database)
	return s, nil
}

// prepare hands the directories to the postgres user, creates the cluster if needed and deals
// with a lock file left by a previous run.
func (s *Server) prepare(ctx context.Context, binDir, dataDir string, create bool, acct account) error {
	if err := chownTree(dataDir, acct); err != nil {
		return err
	}
	if s.tmpSock {
		if err := chownTree(s.sockDir, acct); err != nil {
			return err
		}
	}
	if create {
		if err := initdb(ctx, s.cfg, binDir, dataDir, s.pgdata, acct, s.log); err != nil {
			return err
		}
	}
	return clearStaleLock(ctx, s.pgdata, s.log)
}

// launch starts postgres on a port and waits until it accepts connections. On failure the
// process is gone when launch returns.
func (s *Server) launch(ctx context.Context, binDir, dataDir string, acct account) error {
	s.port = s.cfg.Port
	if s.port == 0 {
		var err error
		if s.port, err = freePort(); err != nil {
			return err
		}
	}
	args := []string{"-D", s.pgdata, "-p", strconv.Itoa(s.port), "-h", "127.0.0.1",
		"-c", "unix_socket_directories=" + quoteGUCList(s.sockDir),
		"-c", "log_line_prefix=", "-c", "logging_collector=off"}
	if s.cfg.NoSync {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	s.out = newLogWriter(s.log.With("component", "postgres"))
	s.cmd = exec.Command(filepath.Join(binDir, "postgres"), args...)
	acct.configure(s.cmd, dataDir, syscall.SIGINT)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.WaitDelay = 5 * time.Second
	s.exited = make(chan struct{})
	s.stopping.Store(false)

	started := make(chan error, 1)
	go s.run(started)
	if err := <-started; err != nil {
		return fmt.Errorf("run postgres: %w", err)
	}
	if err := s.waitReady(ctx); err != nil {
		s.kill()
		return err
	}
	return nil
}

// run starts postgres and waits for it to exit. It keeps its goroutine on one OS thread for the
// lifetime of postgres because the parent-death signal fires when the thread that forked the
// child exits, and Go may end threads of other goroutines that lock them.
func (s *Server) run(started chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
	if err := s.cmd.Start(); err != nil {
		close(s.exited)
		started <- err
		return
	}
	started <- nil
	err := s.cmd.Wait()
	s.out.flush()
	s.waitErr = err
	if !s.stopping.Load() {
		s.log.Error("postgres exited unexpectedly", "err", err)
	}
	close(s.exited)
}

// waitReady polls the unix socket, which only this server can own, until postgres answers.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, s.socketDSN("postgres"))
		ccancel()
		if err == nil {
			return conn.Close(ctx)
		}
		lastErr = err
		select {
		case <-s.exited:
			return fmt.Errorf("postgres exited during startup (%w):\n%s", s.waitErr, s.out.Tail())
		case <-ctx.Done():
			return fmt.Errorf("wait for postgres to accept connections: %w (last attempt: %w)", ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

// setupDatabase creates the application database and the vector extension when missing.
func (s *Server) setupDatabase(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.socketDSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", s.cfg.Database).Scan(&exists)
	if err == nil && !exists {
		s.log.Info("creating database", "database", s.cfg.Database)
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.cfg.Database}.Sanitize())
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P04" {
			err = nil // created concurrently
		}
	}
	if cerr := conn.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", s.cfg.Database, err)
	}
	conn, err = pgx.Connect(ctx, s.socketDSN(s.cfg.Database))
	if err != nil {
		return fmt.Errorf("connect to database %q: %w", s.cfg.Database, err)
	}
	_, err = conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector")
	if cerr := conn.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create extension vector in %q: %w", s.cfg.Database, err)
	}
	return nil
}

// socketDSN is a connection string for database over the unix socket.
func (s *Server) socketDSN(database string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		quoteDSN(s.sockDir), s.port, superuser, quoteDSN(database))
}

// URL returns a connection URL for the application database as the superuser over TCP, e.g.
// postgres://postgres@127.0.0.1:5433/metachat?sslmode=disable.
func (s *Server) URL() string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + s.cfg.Database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port returns the TCP port the server listens on at 127.0.0.1.
func (s *Server) Port() int { return s.port }

// SocketDir returns the directory holding the server's unix socket (psql -h SocketDir -p Port).
func (s *Server) SocketDir() string { return s.sockDir }

// PID returns the process id of the postmaster.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Done is closed when postgres has exited, whether through Stop or unexpectedly.
func (s *Server) Done() <-chan struct{} { return s.exited }

// Stop shuts postgres down: a fast shutdown (SIGINT, which rolls back open transactions),
// then SIGKILL to its process group if it has not exited within Config.StopTimeout or before ctx
// ends. It returns an error when postgres did not exit cleanly. Later calls return the same result.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.stopErr = s.stop(ctx)
		s.removeTempSocketDir()
	})
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	s.stopping.Store(true)
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return fmt.Errorf("stop postgres: it had already exited: %w", s.waitErr)
		}
		return nil
	default:
	}
	s.log.Info("stopping postgres", "pid", s.PID())
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.log.Warn("signal postgres", "err", err)
	}
	timer := time.NewTimer(s.cfg.StopTimeout)
	defer timer.Stop()
	var reason error
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return fmt.Errorf("stop postgres: %w", s.waitErr)
		}
		return nil
	case <-ctx.Done():
		reason = ctx.Err()
	case <-timer.C:
		reason = fmt.Errorf("no exit within %v", s.cfg.StopTimeout)
	}
	s.log.Warn("postgres did not shut down in time; killing it", "reason", reason)
	s.kill()
	return fmt.Errorf("stop postgres: killed after graceful shutdown failed: %w", reason)
}

// kill SIGKILLs postgres's process group and waits until the postmaster has exited.
func (s *Server) kill() {
	s.stopping.Store(true)
	select {
	case <-s.exited:
		return
	default:
	}
	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		_ = s.cmd.Process.Kill()
	}
	<-s.exited
}

func (s *Server) removeTempSocketDir() {
	if s.tmpSock {
		if err := os.RemoveAll(s.sockDir); err != nil {
			s.log.Warn("remove socket dir", "dir", s.sockDir, "err", err)
		}
	}
}
