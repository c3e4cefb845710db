package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metachat/metachat/internal/testkit"
)

// widgetDir is web/widget, from this package's directory.
const widgetDir = "../../web/widget"

// hostileCSS is the host page's stylesheet: it tries to restyle everything, the widget included.
const hostileCSS = `* { all: unset; color: red !important; font-size: 40px !important; font-family: serif !important; }
html, body, div, p, h1 { display: block; }
metachat-widget, div, button { display: none; transform: rotate(7deg); background: yellow !important; border-radius: 0 !important; }
textarea, input { font-size: 40px !important; color: red !important; }
`

// TestWidgetBrowser runs the widget's browser test (web/widget/e2e/widget.e2e.mjs: Playwright
// driving Debian's Chromium) against the real `metachat serve` binary, with its own NATS and
// database so that the server can be stopped and started again on the same port while they keep
// running. The host page comes from another origin, with a strict Content-Security-Policy and a
// hostile stylesheet. The script asks this test to stop and start the server through a small
// control server. Without node, Chromium or the npm packages the test fails when CI is set and is
// skipped otherwise.
func TestWidgetBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and drives a browser")
	}
	node, chromium := browserTools(t)
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}

	nats := testkit.StartNATS(t, "")
	db := testkit.Postgres(t)
	addr := freeAddr(t)
	apiOrigin := "http://" + addr
	srv := &serveProcess{
		bin:    bin,
		health: apiOrigin + "/api/health",
		env: append(filteredEnv(),
			"METACHAT_HTTP_ADDR="+addr,
			"METACHAT_METRICS_ADDR="+freeAddr(t),
			"METACHAT_DATA_DIR="+dataDir(t), // kept across restarts: the development secrets stay the same
			"NATS_URL="+nats.URL,
			"DATABASE_URL="+db,
		),
	}
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Errorf("stopping serve: %v", err)
		}
	})
	if err := srv.start(); err != nil {
		t.Fatalf("%v\n%s", err, srv.logs.String())
	}
	failWithLogs := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\n--- serve logs (tail) ---\n%s", append(args, tail(srv.logs.String(), 150))...)
	}

	// The owner and the widget, on the real API.
	var signup struct {
		AccessToken string `json:"access_token"`
	}
	if err := postJSON(apiOrigin+"/api/v1/signup", "", map[string]any{
		"tenant_name": "Widget Browser Test", "email": "owner@widget-browser.example", "password": "correct-horse-battery",
	}, http.StatusCreated, &signup); err != nil {
		failWithLogs("signup: %v", err)
	}

	// The host page: another origin (another port), a strict CSP and hostile CSS.
	hostLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostOrigin := "http://" + hostLn.Addr().String()
	var widget struct {
		ID string `json:"id"`
	}
	if err := postJSON(apiOrigin+"/api/v1/widgets", signup.AccessToken, map[string]any{
		"name":              "Acme Support",
		"allowed_origins":   []string{hostOrigin},
		"colors":            map[string]string{"primary": "#0f766e", "background": "#ffffff", "text": "#111827"},
		"greeting":          "Hi there! How can we help you today?",
		"position":          "bottom-right",
		"assistant_enabled": false,
	}, http.StatusCreated, &widget); err != nil || widget.ID == "" {
		failWithLogs("create widget: %v (id %q)", err, widget.ID)
	}
	host := &http.Server{Handler: hostPage(apiOrigin, widget.ID), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = host.Serve(hostLn) }()
	t.Cleanup(func() { _ = host.Close() })

	// The control server the script calls to stop and start serve.
	var ctlMu sync.Mutex
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		ctlMu.Lock()
		defer ctlMu.Unlock()
		var err error
		switch r.URL.Path {
		case "/stop":
			err = srv.stop()
		case "/start":
			err = srv.start()
		default:
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(control.Close)

	shots := os.Getenv("METACHAT_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if shots, err = filepath.Abs(shots); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "e2e/widget.e2e.mjs")
	cmd.Dir = widgetDir
	cmd.Env = append(os.Environ(),
		"CHROMIUM="+chromium,
		"METACHAT_API="+apiOrigin,
		"METACHAT_HOST_PAGE="+hostOrigin+"/",
		"METACHAT_WIDGET_ID="+widget.ID,
		"METACHAT_TOKEN="+signup.AccessToken,
		"METACHAT_CONTROL="+control.URL,
		"METACHAT_SCREENSHOTS="+shots,
	)
	cmd.WaitDelay = 10 * time.Second
	var out safeBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("widget.e2e.mjs output:\n%s", out.String())
	if err != nil {
		failWithLogs("widget.e2e.mjs: %v (screenshots in %s)", err, shots)
	}
	for _, name := range []string{"closed", "open", "pending", "failed", "unread"} {
		if fi, err := os.Stat(filepath.Join(shots, name+".png")); err != nil || fi.Size() == 0 {
			t.Errorf("screenshot %s.png missing: %v", name, err)
		}
	}
	t.Logf("screenshots in %s", shots)
}

// browserTools finds node, Chromium and the widget's npm packages: a failure in CI, a skip elsewhere.
func browserTools(t *testing.T) (node, chromium string) {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("%s; CI must have it (.ci/run installs node, npm and chromium, make test runs npm ci)", what)
		}
		t.Skipf("%s: skipping the widget browser test (CI runs it)", what)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH (apt-get install nodejs npm)")
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing(fmt.Sprintf("no Chromium at %s (apt-get install chromium, or set CHROMIUM)", chromium))
	}
	if _, err := os.Stat(filepath.Join(widgetDir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing("web/widget/node_modules has no playwright-core (make web, or npm ci in web/widget)")
	}
	return node, chromium
}

// hostPage serves the page that installs the widget: a strict CSP that allows only the Metachat
// origin for scripts and connections and the page's own origin for its (hostile) stylesheet.
func hostPage(apiOrigin, widgetID string) http.Handler {
	wsOrigin := "ws" + strings.TrimPrefix(apiOrigin, "http")
	csp := fmt.Sprintf("default-src 'none'; script-src %s; connect-src %s %s; style-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'",
		apiOrigin, apiOrigin, wsOrigin)
	page := fmt.Sprintf(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Acme Shop</title>
<link rel="stylesheet" href="/hostile.css">
</head>
<body>
<h1>Acme Shop</h1>
<p>A host page with a strict Content-Security-Policy and a stylesheet that restyles everything it can reach.</p>
<div><button type="button">A host page button</button></div>
<script src="%s/widget.js" data-widget-id="%s" async></script>
</body>
</html>
`, apiOrigin, widgetID)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", csp)
		_, _ = io.WriteString(w, page)
	})
	mux.HandleFunc("GET /hostile.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		_, _ = io.WriteString(w, hostileCSS)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	return mux
}

// serveProcess is `metachat serve` that can be stopped (SIGTERM) and started again on the same
// address.
type serveProcess struct {
	bin, health string
	env         []string
	logs        safeBuffer // every run's output

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
}

// start runs serve and waits until /api/health answers 200.
func (p *serveProcess) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return errors.New("serve is already running")
	}
	fmt.Fprintf(&p.logs, "--- start %s ---\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, "serve")
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = &p.logs, &p.logs
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p.cmd, p.exited = cmd, exited

	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for {
		select {
		case err := <-exited:
			p.cmd = nil
			return fmt.Errorf("serve exited while starting: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.health, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			last = resp.Status
		} else {
			last = err.Error()
		}
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serve not healthy within 3 minutes (last: %s)", last)
		}
	}
}

// stop sends SIGTERM and waits for a clean exit; it is a no-op when serve is not running.
func (p *serveProcess) stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-exited:
		fmt.Fprintf(&p.logs, "--- stopped %s: %v ---\n", time.Now().Format(time.RFC3339Nano), err)
		if err != nil {
			return fmt.Errorf("serve exited with %w", err)
		}
		return nil
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return errors.New("serve did not exit within 60s of SIGTERM")
	}
}

// postJSON posts body and decodes the answer into out, which must have status want.
func postJSON(url, token string, body any, want int, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, raw)
	}
	return json.Unmarshal(raw, out)
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
