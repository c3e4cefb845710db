package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/adapters/natsserver"
	"github.com/metachat/metachat/adapters/pgserver"
)

// infra is the two servers Metachat stands on, either given (NATS_URL, DATABASE_URL) or started
// here: an embedded nats-server and a managed local Postgres under the data directory.
type infra struct {
	logger      *slog.Logger
	natsServer  *natsserver.Server // nil when NATS_URL is given or a running serve was found
	pgServer    *pgserver.Server   // nil when DATABASE_URL is given or a running serve was found
	nc          *nats.Conn
	databaseURL string
	discovery   bool // this process wrote the discovery files
}

// Discovery files let the operator commands find the servers a running `metachat serve` started.
const (
	natsURLFile     = "nats.url"
	postgresURLFile = "postgres.url"
)

// startInfra connects to or starts NATS and Postgres. With publish, the URLs of servers it starts
// are written to the data directory for the operator commands; without it, the operator commands
// first look for those files (a running serve) and start their own servers only when none answers.
// serverLogger receives the embedded servers' own logs.
func startInfra(ctx context.Context, cfg Config, logger, serverLogger *slog.Logger, publish bool) (_ *infra, err error) {
	in := &infra{logger: logger, databaseURL: cfg.DatabaseURL}
	defer func() {
		if err != nil {
			in.close(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}

	natsURL := cfg.NATSURL
	if natsURL == "" && !publish {
		natsURL = readDiscovery(cfg, natsURLFile)
	}
	if natsURL != "" {
		in.nc, err = connectNATS(natsURL, logger)
		if err != nil && cfg.NATSURL != "" {
			return nil, fmt.Errorf("connect to NATS_URL: %w", err)
		}
	}
	if in.nc == nil {
		in.natsServer, err = natsserver.Start(ctx, natsserver.Config{
			StoreDir:   cfg.path("nats"),
			SyncAlways: cfg.NATSSyncAlways,
			SyncInterval: func() time.Duration {
				if cfg.NATSSyncAlways {
					return 0
				}
				return cfg.NATSSyncInterval
			}(),
			Logger: serverLogger.With("component", "nats-server"),
		})
		if err != nil {
			return nil, fmt.Errorf("start embedded NATS: %w", err)
		}
		in.nc, err = nats.Connect(in.natsServer.ClientURL(), in.natsServer.InProcessOption(), nats.Name("metachat"))
		if err != nil {
			return nil, fmt.Errorf("connect to embedded NATS: %w", err)
		}
		logger.Info("embedded NATS started", "url", in.natsServer.ClientURL(), "store", cfg.path("nats"))
	}

	if in.databaseURL == "" && !publish {
		if u := readDiscovery(cfg, postgresURLFile); u != "" && pingPostgres(ctx, u) == nil {
			in.databaseURL = u
		}
	}
	if in.databaseURL == "" {
		in.pgServer, err = pgserver.Start(ctx, pgserver.Config{
			DataDir: cfg.path("postgres"),
			Logger:  serverLogger.With("component", "postgres"),
		})
		if err != nil {
			return nil, fmt.Errorf("start managed Postgres: %w", err)
		}
		in.databaseURL = in.pgServer.URL()
		logger.Info("managed Postgres started", "dir", cfg.path("postgres"), "port", in.pgServer.Port())
	}

	if publish {
		in.discovery = true
		if in.natsServer != nil {
			if err := writeDiscovery(cfg, natsURLFile, in.natsServer.ClientURL()); err != nil {
				return nil, err
			}
		}
		if in.pgServer != nil {
			if err := writeDiscovery(cfg, postgresURLFile, in.databaseURL); err != nil {
				return nil, err
			}
		}
	}
	return in, nil
}

// close stops what startInfra started, in reverse order.
func (in *infra) close(ctx context.Context) {
	if in.nc != nil {
		if err := in.nc.Drain(); err != nil {
			in.nc.Close()
		}
		for i := 0; i < 100 && !in.nc.IsClosed(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if in.natsServer != nil {
		in.natsServer.Shutdown()
	}
	if in.pgServer != nil {
		if err := in.pgServer.Stop(ctx); err != nil {
			in.logger.Error("stop managed Postgres", "err", err)
		}
	}
}

func connectNATS(url string, logger *slog.Logger) (*nats.Conn, error) {
	return nats.Connect(url,
		nats.Name("metachat"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { logger.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
	)
}

func readDiscovery(cfg Config, name string) string {
	b, err := os.ReadFile(cfg.path(name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func writeDiscovery(cfg Config, name, value string) error {
	if err := os.WriteFile(cfg.path(name), []byte(value+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", cfg.path(name), err)
	}
	return nil
}

// removeDiscovery deletes the discovery files this process wrote.
func (in *infra) removeDiscovery(cfg Config) {
	if !in.discovery {
		return
	}
	for _, name := range []string{natsURLFile, postgresURLFile} {
		if err := os.Remove(cfg.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			in.logger.Warn("remove discovery file", "file", name, "err", err)
		}
	}
}
