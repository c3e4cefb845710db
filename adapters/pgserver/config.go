package pgserver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Start to zero-valued Config fields.
const (
	DefaultDataDir      = ".data/postgres"
	DefaultDatabase     = "metachat"
	DefaultRunAsUser    = "postgres"
	DefaultLocale       = "C.UTF-8"
	DefaultStartTimeout = 60 * time.Second
	DefaultStopTimeout  = 30 * time.Second
)

// debianBinGlob matches the per-version binary directories of Debian's postgresql-N packages.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// Config describes the managed PostgreSQL server.
type Config struct {
	// DataDir is the directory Metachat owns for PostgreSQL. The cluster lives in DataDir/pgdata and
	// the unix socket in DataDir/run. Default DefaultDataDir, relative to the working directory.
	DataDir string
	// BinDir holds initdb, postgres and pg_config. Default: the /usr/lib/postgresql/N/bin matching
	// an existing cluster's PG_VERSION, else the highest N installed, else the directory of
	// postgres found in PATH.
	BinDir string
	// Port is the TCP port postgres listens on at 127.0.0.1. 0 picks a free port at each start.
	Port int
	// RunAsUser is the unprivileged user initdb and postgres run as when the current process is
	// root (PostgreSQL refuses to run as root). Ignored when not running as root.
	// Default DefaultRunAsUser.
	RunAsUser string
	// Database is the application database, created when missing. Default DefaultDatabase.
	Database string
	// Locale is the cluster locale passed to initdb (the encoding is always UTF8).
	// Default DefaultLocale.
	Locale string
	// NoSync trades durability for speed: initdb --no-sync and fsync=off. For tests only.
	NoSync bool
	// Logger receives the server's log output and lifecycle events. Nil discards them.
	Logger *slog.Logger
	// StartTimeout bounds the wait for a started postgres to accept connections.
	// Default DefaultStartTimeout.
	StartTimeout time.Duration
	// StopTimeout bounds the graceful shutdown in Stop before postgres is killed.
	// Default DefaultStopTimeout.
	StopTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.RunAsUser == "" {
		c.RunAsUser = DefaultRunAsUser
	}
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.Locale == "" {
		c.Locale = DefaultLocale
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range 0-65535", c.Port))
	}
	if len(c.Database) > 63 {
		errs = append(errs, fmt.Errorf("database name %q longer than 63 bytes", c.Database))
	}
	if strings.ContainsRune(c.Database, 0) {
		errs = append(errs, errors.New("database name contains a NUL byte"))
	}
	if strings.ContainsAny(c.RunAsUser, ":/ \t\n") {
		errs = append(errs, fmt.Errorf("run-as user %q is not a valid user name", c.RunAsUser))
	}
	if strings.ContainsAny(c.DataDir, "\x00\n") {
		errs = append(errs, errors.New("data dir contains a NUL or newline"))
	}
	if c.StartTimeout < 0 {
		errs = append(errs, fmt.Errorf("start timeout %v is negative", c.StartTimeout))
	}
	if c.StopTimeout < 0 {
		errs = append(errs, fmt.Errorf("stop timeout %v is negative", c.StopTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid pgserver config: %w", err)
	}
	return nil
}

// findBinDir returns the PostgreSQL binary directory to use for a cluster whose PG_VERSION is
// clusterMajor (0 when there is no cluster yet).
func findBinDir(clusterMajor int) (string, error) {
	dirs, _ := filepath.Glob(debianBinGlob)
	type cand struct {
		dir   string
		major int
	}
	var cands []cand
	for _, d := range dirs {
		major, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			cands = append(cands, cand{d, major})
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].major > cands[j].major })
	for _, c := range cands {
		if c.major == clusterMajor {
			return c.dir, nil
		}
	}
	if len(cands) > 0 {
		return cands[0].dir, nil
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no PostgreSQL server binaries found in %s or PATH: install them "+
		"(Debian: apt-get install postgresql) or set the binary directory", debianBinGlob)
}
