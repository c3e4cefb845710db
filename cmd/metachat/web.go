package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/adapters/socket"
	"github.com/metachat/metachat/adapters/webui"
	appsvc "github.com/metachat/metachat/app"
)

// webMounts builds the routes outside the API contract: the widget socket, the widget script, and
// in development the demo page with its demo tenant (set up on first start, kept in
// <data-dir>/demo.json). addr is the API listener's address, whose origins the demo widget allows.
func webMounts(ctx context.Context, cfg Config, svc *services, gateway *socket.Gateway, addr net.Addr, logger *slog.Logger) ([]httpapi.Mount, error) {
	demoID := ""
	if cfg.Demo && cfg.Env != "production" {
		d, err := ensureDemo(ctx, cfg, svc, addr)
		if err != nil {
			return nil, err
		}
		demoID = d.WidgetID
		logger.Info("demo ready", "url", "http://"+addr.String()+"/demo", "credentials", cfg.path("demo.json"))
	}
	ui, err := webui.New(webui.Config{Logger: logger.With("component", "webui"), DemoWidgetID: demoID})
	if err != nil {
		return nil, err
	}
	get := []string{http.MethodGet, http.MethodHead}
	return []httpapi.Mount{
		{Pattern: "/api/v1/widget/ws", Methods: []string{http.MethodGet}, Func: gateway.Serve},
		{Pattern: "/widget.js", Methods: get, Handler: ui.WidgetScript(), CrossOrigin: true},
		{Pattern: "/demo", Methods: get, Handler: ui.DemoPage()},
		{Pattern: "/demo.css", Methods: get, Handler: ui.DemoStyles()},
	}, nil
}

// ensureDemo loads the demo of an earlier start and makes sure it exists and allows the
// listener's origins, or sets up a new one, and saves it (mode 0600: it holds the demo owner's
// password).
func ensureDemo(ctx context.Context, cfg Config, svc *services, addr net.Addr) (appsvc.Demo, error) {
	path := cfg.path("demo.json")
	var prev appsvc.Demo
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &prev); err != nil {
			prev = appsvc.Demo{}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return appsvc.Demo{}, fmt.Errorf("read %s: %w", path, err)
	}
	d, err := appsvc.EnsureDemo(ctx, svc.identity, svc.widgets, prev, demoOrigins(addr))
	if err != nil {
		return appsvc.Demo{}, err
	}
	if d != prev {
		out, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return appsvc.Demo{}, err
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o600); err != nil {
			return appsvc.Demo{}, fmt.Errorf("save the demo: %w", err)
		}
	}
	return d, nil
}

// demoOrigins are the origins a browser on this machine reaches the listener at.
func demoOrigins(addr net.Addr) []string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return []string{"http://" + addr.String()}
	}
	port := fmt.Sprint(tcp.Port)
	if tcp.IP.IsLoopback() || tcp.IP.IsUnspecified() {
		return []string{"http://127.0.0.1:" + port, "http://localhost:" + port, "http://[::1]:" + port}
	}
	return []string{"http://" + addr.String()}
}
