package pgserver_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/metachat/metachat/adapters/pgserver"
)

// helperEnv makes the test binary act as a Metachat process that starts postgres and is then
// killed by TestParentKilledStopsPostgres.
const helperEnv = "PGSERVER_TEST_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		runHelper(dir)
		return
	}
	goleak.VerifyTestMain(m)
}

func runHelper(dir string) {
	srv, err := pgserver.Start(context.Background(), pgserver.Config{DataDir: dir, NoSync: true})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("PID", srv.PID())
	select {} // wait to be killed
}

// newConfig returns a fast test configuration with its data dir in a fresh temporary directory
// that the postgres user can reach when the tests run as root.
func newConfig(t *testing.T) pgserver.Config {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		// testing creates the parent of t.TempDir() with mode 0700.
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return pgserver.Config{
		DataDir: filepath.Join(dir, "postgres"),
		NoSync:  true,
		Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func start(t *testing.T, cfg pgserver.Config) *pgserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv, err := pgserver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return srv
}

func connect(t *testing.T, srv *pgserver.Server) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// processGone waits until pid has exited.
func processGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStartStopPersists(t *testing.T) {
	t.Parallel()
	cfg := newConfig(t)
	srv := start(t, cfg)
	if !strings.HasPrefix(srv.URL(), "postgres://postgres@127.0.0.1:") || srv.Port() == 5432 {
		t.Fatalf("unexpected URL %s", srv.URL())
	}
	conn := connect(t, srv)
	var v string
	if err := conn.QueryRow(t.Context(), "SELECT '[1,2,3]'::vector::text").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "[1,2,3]" {
		t.Fatalf("vector = %q", v)
	}
	if _, err := conn.Exec(t.Context(), "CREATE TABLE kept (id int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	pid := srv.PID()
	if err := srv.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("postgres %d still there after Stop: %v", pid, err)
	}
	select {
	case <-srv.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}

	srv2 := start(t, cfg)
	var id int
	if err := connect(t, srv2).QueryRow(t.Context(), "SELECT id FROM kept").Scan(&id); err != nil || id != 42 {
		t.Fatalf("after restart: id=%d err=%v", id, err)
	}
}

// crash starts a server on cfg and SIGKILLs its postmaster, leaving a stale postmaster.pid.
func crash(t *testing.T, cfg pgserver.Config) {
	t.Helper()
	srv, err := pgserver.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(srv.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-srv.Done()
	if err := srv.Stop(t.Context()); err == nil {
		t.Error("Stop after a crash: want an error")
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "pgdata", "postmaster.pid")); err != nil {
		t.Fatalf("expected a stale lock file: %v", err)
	}
}

func TestRestartAfterCrash(t *testing.T) {
	t.Parallel()
	cfg := newConfig(t)
	crash(t, cfg)
	srv := start(t, cfg) // the lock file's pid is dead: postgres ignores it
	if err := connect(t, srv).Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestRestartAfterCrashWithReusedPid(t *testing.T) {
	t.Parallel()
	cfg := newConfig(t)
	crash(t, cfg)

	// A stale lock file whose pid now belongs to another live process of the postgres user
	// makes postgres itself refuse to start, so Start must clear it.
	sleeper := exec.Command("sleep", "60")
	if os.Geteuid() == 0 {
		sleeper.SysProcAttr = &syscall.SysProcAttr{Credential: runAsCredential(t)}
	}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	lock := filepath.Join(cfg.DataDir, "pgdata", "postmaster.pid")
	b, err := os.ReadFile(lock)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "\n")
	if err := os.WriteFile(lock, []byte(strconv.Itoa(sleeper.Process.Pid)+"\n"+rest), 0o600); err != nil {
		t.Fatal(err)
	}

	srv := start(t, cfg)
	if err := connect(t, srv).Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func runAsCredential(t *testing.T) *syscall.Credential {
	t.Helper()
	out, err := exec.Command("id", "-u", pgserver.DefaultRunAsUser).Output()
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	out, err = exec.Command("id", "-g", pgserver.DefaultRunAsUser).Output()
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func TestSecondStartOnSameDirFails(t *testing.T) {
	t.Parallel()
	cfg := newConfig(t)
	start(t, cfg)
	_, err := pgserver.Start(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Start: %v", err)
	}
}

func TestLongDataDirUsesShortSocketDir(t *testing.T) {
	t.Parallel()
	cfg := newConfig(t)
	cfg.DataDir = filepath.Join(cfg.DataDir, strings.Repeat("long-directory-name/", 5))
	srv := start(t, cfg)
	if strings.HasPrefix(srv.SocketDir(), cfg.DataDir) || len(srv.SocketDir())+len("/.s.PGSQL.65535") > 107 {
		t.Fatalf("socket dir %s", srv.SocketDir())
	}
	if err := connect(t, srv).Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.SocketDir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket dir left behind: %v", err)
	}
}

func TestUnreachableDataDirAsRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root runs postgres as another user")
	}
	dir := t.TempDir() // its parent has mode 0700
	_, err := pgserver.Start(t.Context(), pgserver.Config{DataDir: filepath.Join(dir, "pg"), NoSync: true})
	if err == nil || !strings.Contains(err.Error(), "chmod o+x "+filepath.Dir(dir)) {
		t.Fatalf("want advice to chmod %s, got %v", filepath.Dir(dir), err)
	}
	t.Log(err)
}

func TestParentKilledStopsPostgres(t *testing.T) {
	t.Parallel()
	cfg := newConfig(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+cfg.DataDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "PID ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper: %q %v", line, err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "PID ")))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	processGone(t, pid)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (pgserver.Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	err := pgserver.Config{Port: 70000, Database: strings.Repeat("d", 64), StartTimeout: -time.Second}.Validate()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"port 70000", "longer than 63", "start timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
