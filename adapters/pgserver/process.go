package pgserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// maxSocketPath is the longest unix socket path Linux accepts (sizeof(sun_path) - 1).
const maxSocketPath = 107

// socketName is the longest socket file name postgres creates in its socket directory.
const socketName = "/.s.PGSQL.65535"

// configure makes cmd run as the account in dir with a clean environment. The child gets
// deathSig when the thread that started it dies, and its own process group so that a Ctrl-C
// meant for Metachat reaches postgres only through Stop.
func (a account) configure(cmd *exec.Cmd, dir string, deathSig syscall.Signal) {
	cmd.Dir = dir
	cmd.Env = childEnv(a)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: a.cred, Pdeathsig: deathSig, Setpgid: true}
}

// childEnv is the current environment without variables that would steer PostgreSQL tools
// (PG*, locale settings), with HOME and USER of the account.
func childEnv(a account) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" ||
			(a.cred != nil && (k == "HOME" || k == "USER" || k == "LOGNAME")) {
			continue
		}
		env = append(env, kv)
	}
	if a.cred != nil {
		env = append(env, "HOME="+a.home, "USER="+a.name, "LOGNAME="+a.name)
	}
	return env
}

// readPGVersion returns the major version of the cluster in pgdata, or 0 when there is none.
func readPGVersion(pgdata string) (int, error) {
	b, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("read cluster version: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read cluster version: malformed PG_VERSION in %s", pgdata)
	}
	return v, nil
}

// serverMajor returns the major version of the postgres binary in binDir.
func serverMajor(ctx context.Context, binDir string) (int, error) {
	bin := filepath.Join(binDir, "postgres")
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("run %s --version: %w", bin, err)
	}
	// "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
	fields := strings.Fields(string(out))
	for i, f := range fields {
		if f == "(PostgreSQL)" && i+1 < len(fields) {
			major, _, _ := strings.Cut(fields[i+1], ".")
			if v, err := strconv.Atoi(major); err == nil {
				return v, nil
			}
		}
	}
	return 0, fmt.Errorf("unrecognised %s --version output %q", bin, strings.TrimSpace(string(out)))
}

// initdb creates the cluster in pgdata. It initialises a sibling directory and renames it into
// place, so an interrupted run never leaves a half-made cluster behind.
func initdb(ctx context.Context, cfg Config, binDir, dataDir, pgdata string, a account, log *slog.Logger) error {
	tmp := pgdata + ".init"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("initdb: remove leftover %s: %w", tmp, err)
	}
	args := []string{"-D", tmp, "-U", "postgres", "-E", "UTF8", "--locale", cfg.Locale,
		"-A", "trust"}
	if cfg.NoSync {
		args = append(args, "--no-sync")
	}
	log.Info("creating PostgreSQL cluster", "dir", pgdata, "bin_dir", binDir, "user", a.name)
	out := newLogWriter(log.With("component", "initdb"))
	out.level = slog.LevelDebug
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), args...)
	a.configure(cmd, dataDir, syscall.SIGKILL)
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	out.flush()
	if err != nil {
		return fmt.Errorf("initdb (%w):\n%s", err, out.Tail())
	}
	if err := os.Rename(tmp, pgdata); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	return nil
}

// socketDir returns the directory for postgres's unix socket: dataDir/run, or a new temporary
// directory when that path is too long for a socket address.
func socketDir(dataDir string) (dir string, temp bool, err error) {
	dir = filepath.Join(dataDir, "run")
	if len(dir)+len(socketName) <= maxSocketPath {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", false, fmt.Errorf("create socket dir: %w", err)
		}
		return dir, false, nil
	}
	parent := os.TempDir()
	if len(parent)+len("/metachat-pg-0123456789")+len(socketName) > maxSocketPath {
		parent = "/tmp"
	}
	dir, err = os.MkdirTemp(parent, "metachat-pg-")
	if err != nil {
		return "", false, fmt.Errorf("create socket dir: %w", err)
	}
	return dir, true, nil
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// quoteGUCList quotes a directory for a comma-separated GUC list such as unix_socket_directories.
func quoteGUCList(dir string) string {
	return `"` + strings.ReplaceAll(dir, `"`, `""`) + `"`
}

// quoteDSN quotes a value for a libpq keyword/value connection string.
func quoteDSN(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
