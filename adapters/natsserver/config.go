package natsserver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Defaults applied by Start to zero-valued Config fields.
const (
	DefaultStoreDir     = ".data/nats"
	DefaultHost         = "127.0.0.1"
	DefaultServerName   = "metachat"
	DefaultReadyTimeout = 10 * time.Second
)

// Config describes the embedded NATS server.
type Config struct {
	// StoreDir is where JetStream keeps its data (in StoreDir/jetstream). Default DefaultStoreDir,
	// relative to the working directory.
	StoreDir string
	// Host is the address clients connect to over TCP. Default DefaultHost.
	Host string
	// Port is the client port. 0 picks a random free port (never the standard 4222).
	Port int
	// ServerName names the server in logs and monitoring. Default DefaultServerName.
	ServerName string
	// Logger receives the server's log output. Nil discards it. nats-server debug output is
	// enabled when the logger is enabled for slog.LevelDebug, and protocol tracing when it is
	// enabled for LevelTrace.
	Logger *slog.Logger
	// SyncAlways makes JetStream fsync after every write (sync_interval "always"): the most
	// durable and slowest setting.
	SyncAlways bool
	// SyncInterval is how often JetStream fsyncs in the background. 0 means the server default
	// (two minutes). Must be 0 when SyncAlways is set.
	SyncInterval time.Duration
	// MaxMemory limits JetStream memory storage in bytes. 0 means the server default (75% of RAM).
	MaxMemory int64
	// MaxStore limits JetStream file storage in bytes. 0 means the server default (1 TB or 75% of
	// the free disk space, whichever is less).
	MaxStore int64
	// ReadyTimeout bounds the wait for the server to accept connections in Start.
	// Default DefaultReadyTimeout.
	ReadyTimeout time.Duration
}

// LevelTrace is the slog level of nats-server protocol traces, below slog.LevelDebug.
const LevelTrace = slog.LevelDebug - 4

func (c *Config) setDefaults() {
	if c.StoreDir == "" {
		c.StoreDir = DefaultStoreDir
	}
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.ServerName == "" {
		c.ServerName = DefaultServerName
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range 0-65535", c.Port))
	}
	if net.ParseIP(c.Host) == nil && strings.ContainsAny(c.Host, " /:") {
		errs = append(errs, fmt.Errorf("host %q is not a host name or IP address", c.Host))
	}
	if strings.ContainsAny(c.ServerName, " \t\n") {
		errs = append(errs, fmt.Errorf("server name %q contains whitespace", c.ServerName))
	}
	if c.SyncInterval < 0 {
		errs = append(errs, fmt.Errorf("sync interval %v is negative", c.SyncInterval))
	}
	if c.SyncAlways && c.SyncInterval != 0 {
		errs = append(errs, errors.New("sync always and a sync interval are mutually exclusive"))
	}
	if c.MaxMemory < 0 {
		errs = append(errs, fmt.Errorf("max memory %d is negative", c.MaxMemory))
	}
	if c.MaxStore < 0 {
		errs = append(errs, fmt.Errorf("max store %d is negative", c.MaxStore))
	}
	if c.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("ready timeout %v is negative", c.ReadyTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid natsserver config: %w", err)
	}
	return nil
}
