package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/adapters/socket"
)

func newServeCmd(cfg *Config) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the API and the projectors (embedded NATS and managed Postgres unless configured)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), *cfg, cmd.ErrOrStderr())
		},
	}
}

// roles are what one process runs: the API (HTTP, widget sockets, the live hub, read-your-writes
// waits) and the worker (projectors and reactors such as the document pipeline). `serve` runs both;
// `api` and `worker` run one each, as separate processes against one NATS and one Postgres.
type roles struct{ api, worker bool }

func (r roles) name() string {
	switch {
	case r.api && r.worker:
		return "serve"
	case r.api:
		return "api"
	}
	return "worker"
}

// newRoleCmds returns the `api` and `worker` commands.
func newRoleCmds(cfg *Config) []*cobra.Command {
	mk := func(use, short string, r roles) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return serveRoles(cmd.Context(), *cfg, cmd.ErrOrStderr(), r)
			},
		}
	}
	return []*cobra.Command{
		mk("api", "Run only the API: HTTP and widget sockets (needs NATS_URL and DATABASE_URL shared with a worker)", roles{api: true}),
		mk("worker", "Run only the projectors and reactors (needs NATS_URL and DATABASE_URL shared with the API); its listener answers /api/health only", roles{worker: true}),
	}
}

// serve runs the API and the worker in one process.
func serve(ctx context.Context, cfg Config, logOut io.Writer) error {
	return serveRoles(ctx, cfg, logOut, roles{api: true, worker: true})
}

// serveRoles runs r until ctx is cancelled (SIGINT or SIGTERM), then shuts down gracefully: stop
// accepting and drain HTTP, stop the projectors, close the pools, the NATS connection and the
// servers it started.
func serveRoles(ctx context.Context, cfg Config, logOut io.Writer, r roles) error {
	if (!r.api || !r.worker) && (cfg.NATSURL == "" || cfg.DatabaseURL == "") {
		return fmt.Errorf("metachat %s runs beside other processes and needs NATS_URL and DATABASE_URL; "+
			"use metachat serve for the single-process setup with embedded servers", r.name())
	}
	logger := newLogger(cfg, logOut).With("role", r.name())
	if !r.worker {
		cfg.Demo = false // the demo is set up by a single-process serve only
	}
	cfg.resolvePaths()
	sec, err := loadSecrets(cfg)
	if err != nil {
		return err
	}
	if err := checkProductionSecrets(cfg, sec); err != nil { // hardening.go
		return err
	}
	tlsConfig, err := serverTLS(cfg, logger)
	if err != nil {
		return err
	}
	in, err := startInfra(ctx, cfg, logger, newLoggerAt(cfg, logOut, slog.LevelWarn), true)
	if err != nil {
		return err
	}
	shutdownCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	}
	defer func() {
		sctx, cancel := shutdownCtx()
		defer cancel()
		in.removeDiscovery(cfg)
		in.close(sctx)
		logger.Info("metachat stopped")
	}()

	obs, err := newObservability(cfg) // observability.go
	if err != nil {
		return err
	}
	defer obs.close()
	a, err := openApp(ctx, cfg, logger, in, obs)
	if err != nil {
		return err
	}
	defer a.close()
	if err := a.manager.Ensure(ctx); err != nil {
		return fmt.Errorf("prepare projections: %w", err)
	}

	svc, err := newServices(ctx, sec, a, in.nc, logger)
	if err != nil {
		return err
	}
	gateway, err := socket.New(socket.Config{Widgets: svc.widgets, Live: svc.live, Logger: logger.With("component", "socket")})
	if err != nil {
		return err
	}
	// The projectors, the waiter and the live hub start before the HTTP listener serves: the demo
	// set-up below already writes and reads.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	// On an early return too, the components stop before the pools and connections they use close.
	defer func() {
		stopWork()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(cfg.ShutdownTimeout):
		}
	}()
	errc := make(chan error, 8)
	start := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	if r.worker {
		start("projections", func() error { return a.manager.Run(workCtx) })
		start("document pipeline", func() error { return svc.knowledge.RunPipeline(workCtx) })
		start("assistant", func() error { return svc.assistant.Run(workCtx) })
	}
	if r.api {
		start("waiter", func() error { return a.waiter.Run(workCtx) })
		start("live", func() error { return svc.live.Run(workCtx) })
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on METACHAT_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	defer ln.Close()
	var mounts []httpapi.Mount
	if r.api {
		if mounts, err = webMounts(ctx, cfg, svc, gateway, ln.Addr(), logger); err != nil { // web.go
			return err
		}
	}
	hcfg := httpapi.Config{
		Auth:          svc.identity,
		Identity:      svc.identity,
		Conversations: svc.conversations,
		Widgets:       svc.widgets,
		Knowledge:     svc.knowledge,
		Mounts:        mounts,
		Logger:        logger.With("component", "http"),
		Health:        a.healthChecks(in.nc),
		Metrics:       obs.http,
		ReportError:   obs.reportError(),

		TrustedProxies: cfg.TrustedProxies,
		RateLimits:     cfg.RateLimits,
	}
	if !r.api { // a worker's listener answers /api/health (and the contract) only
		hcfg.Auth, hcfg.Identity, hcfg.Conversations, hcfg.Widgets, hcfg.Knowledge = nil, nil, nil, nil, nil
	}
	api, err := httpapi.NewServer(hcfg)
	if err != nil {
		return err
	}
	ops, err := obs.listen(cfg, logger, a, in.nc)
	if err != nil {
		return err
	}
	defer ops.ln.Close()
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// The server's own complaints (TLS handshakes that fail: scanners, plain HTTP on the
		// TLS port) are noise at any level above debug.
		ErrorLog:  slog.NewLogLogger(logger.With("component", "http-server").Handler(), slog.LevelDebug),
		TLSConfig: tlsConfig,
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
		start("http", func() error { return srv.ServeTLS(ln, "", "") })
	} else {
		start("http", func() error { return srv.Serve(ln) })
		if cfg.Env == "production" && len(cfg.TrustedProxies) == 0 {
			logger.Warn("serving plain HTTP with no trusted proxy: set METACHAT_TLS_CERT_FILE and METACHAT_TLS_KEY_FILE, or METACHAT_TRUSTED_PROXIES for a TLS-terminating proxy")
		}
	}
	if cfg.Env == "production" {
		warnSecretFileModes(cfg, logger) // hardening.go
	}
	start("metrics", func() error { return ops.srv.Serve(ops.ln) })
	start("dependency checks", func() error { return ops.monitor.Run(workCtx) })
	logger.Info("metachat serving", "url", scheme+"://"+ln.Addr().String(), "health", scheme+"://"+ln.Addr().String()+"/api/health",
		"metrics", "http://"+ops.ln.Addr().String()+"/metrics")

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "cause", context.Cause(ctx))
	case runErr = <-errc:
		logger.Error("a component failed; shutting down", "err", runErr)
	}
	sctx, cancel := shutdownCtx()
	defer cancel()
	// Sockets are hijacked connections, which http.Server.Shutdown does not close: close them
	// (1001, reconnect) while the listener drains.
	go func() {
		if err := gateway.Shutdown(sctx); err != nil {
			logger.Warn("socket shutdown", "err", err)
		}
	}()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("HTTP shutdown", "err", err)
		_ = srv.Close()
	}
	if err := ops.srv.Shutdown(sctx); err != nil {
		_ = ops.srv.Close()
	}
	stopWork()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		logger.Error("components did not stop within the shutdown timeout")
	}
	return runErr
}
