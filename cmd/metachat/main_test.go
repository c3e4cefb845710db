package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metachat/metachat/app"
)

// buildBinary builds cmd/metachat once per test binary run.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "metachat-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "metachat")
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
})

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// safeBuffer is a bytes.Buffer safe for a child process's output and the test reading it.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// dataDir returns a fresh data directory the managed Postgres (run as the postgres user when the
// test runs as root) can reach.
func dataDir(t *testing.T) string {
	t.Helper()
	parent := t.TempDir()
	for _, d := range []string{filepath.Dir(parent), parent} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(parent, "data")
}

// TestServeStartsOnEmbeddedDefaults runs `metachat serve` as a process with no DATABASE_URL or
// NATS_URL and a fresh data directory: it must start its own NATS and Postgres, answer 200 on
// /api/health, and exit cleanly on SIGTERM, leaving no child process behind.
func TestServeStartsOnEmbeddedDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	dir := dataDir(t)
	var logs safeBuffer
	cmd := exec.Command(bin, "serve")
	// Production mode: JSON logs, and secrets must be provided (they are never generated).
	keyFile, pepperFile := writeSecrets(t)
	cmd.Env = append(filteredEnv(), "METACHAT_HTTP_ADDR="+addr, "METACHAT_DATA_DIR="+dir, "METACHAT_ENV=production",
		"METACHAT_JWT_SIGNING_KEY_FILE="+keyFile, "METACHAT_API_KEY_PEPPER_FILE="+pepperFile,
		"METACHAT_METRICS_ADDR="+freeAddr(t))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	health := waitHealthy(t, "http://"+addr+"/api/health", exited, &logs)
	for _, c := range []string{"nats", "postgres", "projections"} {
		if health.Components[c].Status != "ok" {
			t.Errorf("component %s: %+v", c, health.Components[c])
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nats")); err != nil {
		t.Errorf("embedded NATS store not under the data dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "postgres")); err != nil {
		t.Errorf("managed Postgres not under the data dir: %v", err)
	}

	// The API is wired: sign up, then read /me with the token it returns.
	resp, err := http.Post("http://"+addr+"/api/v1/signup", "application/json",
		strings.NewReader(`{"tenant_name":"Binary Test","email":"owner@binary.example","password":"correct-horse-battery"}`))
	if err != nil {
		t.Fatal(err)
	}
	var signup struct {
		AccessToken string `json:"access_token"`
		TenantID    string `json:"tenant_id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&signup)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || err != nil || signup.AccessToken == "" {
		t.Fatalf("signup: %d %v\n%s", resp.StatusCode, err, logs.String())
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+signup.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), signup.TenantID) {
		t.Fatalf("me: %d %s", resp.StatusCode, body)
	}

	// The operator commands find the running serve's servers through the data directory.
	cli := func(args ...string) string {
		t.Helper()
		c := exec.Command(bin, args...)
		c.Env = append(filteredEnv(), "METACHAT_DATA_DIR="+dir)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("metachat %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := cli("projections", "status"); !regexp.MustCompile(`tenants\s+1\s+active`).MatchString(out) {
		t.Errorf("status:\n%s", out)
	}
	if out := cli("projections", "rebuild", "tenants"); !strings.Contains(out, "generation 2 is active") {
		t.Errorf("rebuild:\n%s", out)
	}
	if out := cli("projections", "status"); !regexp.MustCompile(`tenants\s+2\s+active`).MatchString(out) || !regexp.MustCompile(`tenants\s+1\s+retired`).MatchString(out) {
		t.Errorf("status after rebuild:\n%s", out)
	}
	if out := cli("projections", "drop-retired", "tenants"); !strings.Contains(out, "dropped generations [1]") {
		t.Errorf("drop-retired:\n%s", out)
	}
	if h := waitHealthy(t, "http://"+addr+"/api/health", exited, &logs); !strings.Contains(string(h.Components["projections"].Details), `"generation":2`) {
		t.Errorf("serve did not follow the switch: %s", h.Components["projections"].Details)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not exit within 30s of SIGTERM\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "metachat stopped") {
		t.Errorf("no clean-stop log line:\n%s", logs.String())
	}
	if out, _ := exec.Command("pgrep", "-f", filepath.Join(dir, "postgres")).Output(); len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("postgres processes left behind: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "nats.url")); !os.IsNotExist(err) {
		t.Errorf("discovery file left behind: %v", err)
	}
}

// writeSecrets writes a fresh JWT signing key and API key pepper to files and returns their paths.
func writeSecrets(t *testing.T) (keyFile, pepperFile string) {
	t.Helper()
	dir := t.TempDir()
	key, err := app.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	pepper, err := app.GenerateAPIKeyPepper()
	if err != nil {
		t.Fatal(err)
	}
	keyFile, pepperFile = filepath.Join(dir, "jwt.pem"), filepath.Join(dir, "pepper")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pepperFile, pepper, 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile, pepperFile
}

type healthResponse struct {
	Status     string `json:"status"`
	Components map[string]struct {
		Status  string          `json:"status"`
		Error   string          `json:"error"`
		Details json.RawMessage `json:"details"`
	} `json:"components"`
}

func waitHealthy(t *testing.T, url string, exited <-chan error, logs *safeBuffer) healthResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var last string
	for {
		select {
		case err := <-exited:
			t.Fatalf("serve exited early: %v\n%s", err, logs.String())
		case <-ctx.Done():
			t.Fatalf("not healthy within 3 minutes; last answer %q\n%s", last, logs.String())
		case <-time.After(200 * time.Millisecond):
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err.Error()
			continue
		}
		var h healthResponse
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		last = fmt.Sprintf("%d %+v %v", resp.StatusCode, h, err)
		if resp.StatusCode == http.StatusOK && err == nil {
			return h
		}
	}
}

// filteredEnv is the test's environment without settings that would point serve elsewhere.
func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DATABASE_URL=") || strings.HasPrefix(kv, "NATS_URL=") || strings.HasPrefix(kv, "METACHAT_") ||
			strings.HasPrefix(kv, "SENTRY_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
