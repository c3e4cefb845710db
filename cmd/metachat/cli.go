package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree. Settings come from the environment first, then flags.
func newRootCmd(getenv func(string) string, stdout, stderr io.Writer) (*cobra.Command, error) {
	cfg := defaultConfig()
	if err := cfg.loadEnv(getenv); err != nil {
		return nil, err
	}
	root := &cobra.Command{
		Use:           "metachat",
		Short:         "Metachat: event-sourced, multi-tenant conversation platform",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			cfg.resolvePaths()
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	f := root.PersistentFlags()
	help := func(flag string) string {
		for _, v := range envVars {
			if v.flag == flag {
				return v.help + " ($" + v.name + ")"
			}
		}
		return flag
	}
	f.StringVar(&cfg.Env, "env", cfg.Env, help("env"))
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, help("log-level"))
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, help("data-dir"))
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, help("http-addr"))
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, help("metrics-addr"))
	f.StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, help("database-url"))
	f.StringVar(&cfg.NATSURL, "nats-url", cfg.NATSURL, help("nats-url"))
	f.IntVar(&cfg.NATSReplicas, "nats-replicas", cfg.NATSReplicas, help("nats-replicas"))
	f.BoolVar(&cfg.NATSSyncAlways, "nats-sync-always", cfg.NATSSyncAlways, help("nats-sync-always"))
	f.DurationVar(&cfg.NATSSyncInterval, "nats-sync-interval", cfg.NATSSyncInterval, help("nats-sync-interval"))
	f.StringVar(&cfg.SigningKeyFile, "jwt-signing-key-file", cfg.SigningKeyFile, help("jwt-signing-key-file"))
	f.StringVar(&cfg.APIKeyPepperFile, "api-key-pepper-file", cfg.APIKeyPepperFile, help("api-key-pepper-file"))
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, help("shutdown-timeout"))
	f.DurationVar(&cfg.ReadYourWritesTimeout, "ryw-timeout", cfg.ReadYourWritesTimeout, help("ryw-timeout"))

	root.AddCommand(
		newServeCmd(&cfg),
		newProjectionsCmd(&cfg),
	)
	root.AddCommand(newRoleCmds(&cfg)...)
	root.AddCommand(
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "metachat", version) },
		},
	)
	return root, nil
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// newLogger builds the process logger: readable text in development, JSON in production.
func newLogger(cfg Config, w io.Writer) *slog.Logger {
	return newLoggerAt(cfg, w, slog.LevelDebug) // the configured level alone decides
}

// newLoggerAt is newLogger with the level raised to at least minLevel: the embedded servers log
// their start-up banners at info, which is noise in Metachat's own log.
func newLoggerAt(cfg Config, w io.Writer, minLevel slog.Level) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: max(level, minLevel)}
	if cfg.Env == "production" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
