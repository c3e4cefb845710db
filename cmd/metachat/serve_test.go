package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/metachat/metachat/internal/testkit"
)

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeShutsDownWithoutLeaks runs serve in-process (embedded NATS, a test database), waits for
// it to be healthy, cancels it as SIGTERM would, and checks it returns cleanly with no goroutine
// left behind.
func TestServeShutsDownWithoutLeaks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.DatabaseURL = testkit.Postgres(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr = l.Addr().String()
	l.Close()
	cfg.MetricsAddr = unusedAddr(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs lockedBuffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, &logs) }()

	url := "http://" + cfg.HTTPAddr + "/api/health"
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy in time: %v\n%s", err, logs.String())
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned early: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "metachat stopped") {
		t.Errorf("no stop log line:\n%s", logs.String())
	}
}

// TestDevelopmentSecretsKeepTheDataDirTraversable: generating the development secrets creates a
// private secrets directory, but the data directory itself stays traversable, so the managed
// Postgres (run as the postgres user under root) can reach its own directory inside it.
func TestDevelopmentSecretsKeepTheDataDirTraversable(t *testing.T) {
	cfg := defaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	if _, err := loadSecrets(cfg); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o001 == 0 {
		t.Errorf("data directory mode %v: others cannot traverse it", fi.Mode().Perm())
	}
	cfg.resolvePaths()
	for _, f := range []string{cfg.SigningKeyFile, cfg.APIKeyPepperFile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(filepath.Dir(cfg.SigningKeyFile)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("secrets directory: %v %v, want 0700", fi, err)
	}
	again, err := loadSecrets(cfg)
	if err != nil || len(again.signingKey) == 0 {
		t.Errorf("second load: %v", err)
	}
}

func TestConfigFromEnvironmentAndValidation(t *testing.T) {
	env := map[string]string{
		"METACHAT_HTTP_ADDR":        "0.0.0.0:9999",
		"METACHAT_NATS_REPLICAS":    "3",
		"METACHAT_NATS_SYNC_ALWAYS": "true",
		"METACHAT_RYW_TIMEOUT":      "750ms",
		"NATS_URL":                  "nats://a:4222,nats://b:4222",
	}
	cfg := defaultConfig()
	if err := cfg.loadEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "0.0.0.0:9999" || cfg.NATSReplicas != 3 || !cfg.NATSSyncAlways || cfg.ReadYourWritesTimeout != 750*time.Millisecond {
		t.Errorf("config %+v", cfg)
	}

	bad := map[string]string{"METACHAT_NATS_REPLICAS": "three", "METACHAT_SHUTDOWN_TIMEOUT": "soon"}
	cfg = defaultConfig()
	err := cfg.loadEnv(func(k string) string { return bad[k] })
	if err == nil || !strings.Contains(err.Error(), "METACHAT_NATS_REPLICAS") || !strings.Contains(err.Error(), "METACHAT_SHUTDOWN_TIMEOUT") {
		t.Errorf("parse errors not all reported: %v", err)
	}

	cfg = defaultConfig()
	cfg.Env, cfg.HTTPAddr, cfg.DatabaseURL, cfg.NATSReplicas = "staging", "nope", "mysql://x", 9
	err = cfg.Validate()
	for _, name := range []string{"METACHAT_ENV", "METACHAT_HTTP_ADDR", "DATABASE_URL", "METACHAT_NATS_REPLICAS"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Validate does not name %s: %v", name, err)
		}
	}
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"version"}, &out, &errOut, func(k string) string {
		if k == "METACHAT_NATS_REPLICAS" {
			return "x"
		}
		return ""
	})
	if code != 2 || !strings.Contains(errOut.String(), "METACHAT_NATS_REPLICAS") {
		t.Errorf("code %d, stderr %q", code, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"--http-addr", "bad", "serve"}, &out, &errOut, func(string) string { return "" }); code != 1 || !strings.Contains(errOut.String(), "METACHAT_HTTP_ADDR") {
		t.Errorf("flag validation: code %d, stderr %q", code, errOut.String())
	}
}
