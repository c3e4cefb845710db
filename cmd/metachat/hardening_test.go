package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metachat/metachat/adapters/httpapi"
	appsvc "github.com/metachat/metachat/app"
	"github.com/metachat/metachat/internal/testkit"
)

func TestSecurityConfigFromEnvironment(t *testing.T) {
	env := map[string]string{
		"METACHAT_TLS_CERT_FILE":             "/etc/metachat/tls.crt",
		"METACHAT_TLS_KEY_FILE":              "/etc/metachat/tls.key",
		"METACHAT_TRUSTED_PROXIES":           "10.0.0.0/8, 2001:db8::/32,192.0.2.1",
		"METACHAT_RATE_LIMIT_LOGIN":          "5/1m",
		"METACHAT_RATE_LIMIT_SEND":           "off",
		"METACHAT_RATE_LIMIT_WIDGET_SESSION": "30/m",
	}
	cfg := defaultConfig()
	if err := cfg.loadEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.TLSCertFile != "/etc/metachat/tls.crt" || cfg.TLSKeyFile != "/etc/metachat/tls.key" || len(cfg.TrustedProxies) != 3 ||
		cfg.TrustedProxies[2].String() != "192.0.2.1/32" || cfg.RateLimits.Login != (httpapi.Rate{Requests: 5, Per: time.Minute}) ||
		!cfg.RateLimits.Send.Unlimited || cfg.RateLimits.WidgetSession.Requests != 30 || cfg.RateLimits.Disabled {
		t.Errorf("config %+v", cfg)
	}
	cfg = defaultConfig()
	if err := cfg.loadEnv(func(k string) string { return map[string]string{"METACHAT_RATE_LIMITS": "off"}[k] }); err != nil || !cfg.RateLimits.Disabled {
		t.Errorf("METACHAT_RATE_LIMITS=off: %v %+v", err, cfg.RateLimits)
	}

	bad := map[string]string{
		"METACHAT_TRUSTED_PROXIES":   "10.0.0.0/8, everyone",
		"METACHAT_RATE_LIMIT_API":    "lots",
		"METACHAT_RATE_LIMIT_SIGNUP": "0/1h",
		"METACHAT_RATE_LIMITS":       "maybe",
	}
	cfg = defaultConfig()
	err := cfg.loadEnv(func(k string) string { return bad[k] })
	for name := range bad {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s not reported: %v", name, err)
		}
	}
	cfg = defaultConfig()
	cfg.TLSCertFile = "/only/the/cert"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "METACHAT_TLS_KEY_FILE") {
		t.Errorf("a certificate without its key: %v", err)
	}
}

// TestProductionRefusesDefaultOrWeakSecrets: in production the secret files must be named
// explicitly, and the pepper must not be short, a placeholder, a repetition or predictable;
// development accepts what it generates.
func TestProductionRefusesDefaultOrWeakSecrets(t *testing.T) {
	good, err := appsvc.GenerateAPIKeyPepper()
	if err != nil {
		t.Fatal(err)
	}
	prod := defaultConfig()
	prod.Env, prod.DataDir = "production", t.TempDir()
	prod.SigningKeyFile, prod.APIKeyPepperFile = "/run/secrets/jwt.pem", "/run/secrets/pepper"
	if err := checkProductionSecrets(prod, secrets{pepper: good}); err != nil {
		t.Fatalf("a generated pepper: %v", err)
	}
	for i := range 200 {
		p, _ := appsvc.GenerateAPIKeyPepper()
		if reason := weakSecret(p); reason != "" {
			t.Fatalf("generated pepper %d refused: %s", i, reason)
		}
	}
	for name, pepper := range map[string]string{
		"short":       "0123456789abcdef",
		"placeholder": "changeme-changeme-please-0123456789abcdef",
		"example":     "this-is-an-example-pepper-of-forty-bytes!!",
		"repetition":  strings.Repeat("ab12", 16),
		"one letter":  strings.Repeat("x", 64),
		"predictable": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
		"the word":    "secretsecretsecretsecretsecretsecret",
	} {
		err := checkProductionSecrets(prod, secrets{pepper: []byte(pepper)})
		if err == nil || !strings.Contains(err.Error(), "METACHAT_API_KEY_PEPPER_FILE") {
			t.Errorf("%s pepper %q accepted: %v", name, pepper, err)
		}
	}
	defaults := prod
	defaults.SigningKeyFile, defaults.APIKeyPepperFile = "", ""
	defaults.resolvePaths()
	err = checkProductionSecrets(defaults, secrets{pepper: good})
	if err == nil || !strings.Contains(err.Error(), "METACHAT_JWT_SIGNING_KEY_FILE") || !strings.Contains(err.Error(), "METACHAT_API_KEY_PEPPER_FILE") {
		t.Errorf("the development default files in production: %v", err)
	}
	dev := defaults
	dev.Env = "development"
	if err := checkProductionSecrets(dev, secrets{pepper: []byte("short")}); err != nil {
		t.Errorf("development: %v", err)
	}

	// serve itself refuses to start, before it starts anything.
	dir := t.TempDir()
	keyFile, pepperFile := filepath.Join(dir, "jwt.pem"), filepath.Join(dir, "pepper")
	key, _ := appsvc.GenerateSigningKey()
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pepperFile, []byte("changeme-changeme-changeme-changeme-changeme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.Env, cfg.DataDir, cfg.SigningKeyFile, cfg.APIKeyPepperFile = "production", t.TempDir(), keyFile, pepperFile
	cfg.HTTPAddr, cfg.MetricsAddr = unusedAddr(t), unusedAddr(t)
	err = serve(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "METACHAT_API_KEY_PEPPER_FILE: the pepper is") {
		t.Fatalf("serve with a placeholder pepper: %v", err)
	}
	if entries, _ := os.ReadDir(cfg.DataDir); len(entries) > 0 {
		t.Errorf("serve started something before refusing: %v", entries)
	}
	// A missing secret is never generated in production.
	cfg.APIKeyPepperFile = filepath.Join(dir, "missing")
	err = serve(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "METACHAT_API_KEY_PEPPER_FILE") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("serve with a missing pepper: %v", err)
	}
	if _, err := os.Stat(cfg.APIKeyPepperFile); !os.IsNotExist(err) {
		t.Errorf("a production start generated the missing secret: %v", err)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key, and returns the paths
// and the pool that trusts it.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeHTTPSAndTheBrowserRoutes runs serve with METACHAT_TLS_CERT_FILE/KEY_FILE: it answers
// HTTPS (TLS 1.2 at least) and not plain HTTP, and every answer — the API, the widget script, the
// demo page and its stylesheet, the widget socket's refusal, 404 and 405 — carries HSTS and the
// other security headers; the widget script is loadable cross-origin, the demo page keeps its
// own stricter policy.
func TestServeHTTPSAndTheBrowserRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve")
	}
	certFile, keyFile, pool := writeCert(t, t.TempDir(), "metachat test")
	cfg := defaultConfig()
	cfg.DataDir, cfg.DatabaseURL = t.TempDir(), testkit.Postgres(t)
	cfg.HTTPAddr, cfg.MetricsAddr = unusedAddr(t), unusedAddr(t)
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs lockedBuffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, &logs) }()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://" + cfg.HTTPAddr
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := client.Get(base + "/api/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy over HTTPS: %v\n%s", err, logs.String())
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !strings.Contains(logs.String(), "url=https://") {
		t.Errorf("the start line does not show the https URL")
	}
	// Plain HTTP on the TLS port is refused; TLS 1.1 is refused.
	if resp, err := http.Get("http://" + cfg.HTTPAddr + "/api/health"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("plain HTTP answered %d %s", resp.StatusCode, b)
		}
	}
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(base + "/api/health"); err == nil {
		resp.Body.Close()
		t.Error("TLS 1.1 accepted")
	}

	for _, x := range []struct {
		method, path string
		status       int
		corp, csp    string
	}{
		{"GET", "/api/health", 200, "same-origin", httpapi.DefaultCSP},
		{"GET", "/api/v1/openapi.json", 200, "same-origin", httpapi.DefaultCSP},
		{"GET", "/api/v1/me", 401, "same-origin", httpapi.DefaultCSP},
		{"GET", "/widget.js", 200, "cross-origin", httpapi.DefaultCSP},
		{"HEAD", "/widget.js", 200, "cross-origin", httpapi.DefaultCSP},
		{"POST", "/widget.js", 405, "same-origin", httpapi.DefaultCSP},
		{"GET", "/demo", 200, "same-origin", "script-src 'self'"},
		{"GET", "/demo.css", 200, "same-origin", httpapi.DefaultCSP},
		{"GET", "/api/v1/widget/ws?token=forged", 401, "same-origin", httpapi.DefaultCSP},
		{"POST", "/api/v1/widget/ws", 405, "same-origin", httpapi.DefaultCSP},
		{"GET", "/api/v1/widget/config", 400, "same-origin", httpapi.DefaultCSP},
		{"GET", "/nothing/here", 404, "same-origin", httpapi.DefaultCSP},
		{"DELETE", "/api/v1/signup", 405, "same-origin", httpapi.DefaultCSP},
	} {
		req, _ := http.NewRequestWithContext(ctx, x.method, base+x.path, nil)
		req.Header.Set("Origin", "https://evil.example.com")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", x.method, x.path, err)
		}
		resp.Body.Close()
		h := resp.Header
		what := x.method + " " + x.path
		if resp.StatusCode != x.status {
			t.Errorf("%s: %d, want %d", what, resp.StatusCode, x.status)
		}
		if !strings.HasPrefix(h.Get("Strict-Transport-Security"), "max-age=") || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Referrer-Policy") == "" || h.Get("Permissions-Policy") == "" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", what, h)
		}
		csp := h.Values("Content-Security-Policy")
		if len(csp) != 1 || !strings.Contains(csp[0], x.csp) || !strings.Contains(csp[0], "frame-ancestors 'none'") ||
			strings.Contains(csp[0], "unsafe-") {
			t.Errorf("%s: Content-Security-Policy %q", what, csp)
		}
		if h.Get("Cross-Origin-Resource-Policy") != x.corp {
			t.Errorf("%s: Cross-Origin-Resource-Policy %q, want %q", what, h.Get("Cross-Origin-Resource-Policy"), x.corp)
		}
		for k := range h {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s: %s to another origin", what, k)
			}
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestServeBehindATrustedProxy: with METACHAT_TRUSTED_PROXIES naming the proxy, its
// X-Forwarded-Proto: https turns HSTS on; the same header from anyone else does nothing.
func TestServeBehindATrustedProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve")
	}
	for _, trusted := range []bool{true, false} {
		cfg := defaultConfig()
		cfg.DataDir, cfg.DatabaseURL, cfg.Demo = t.TempDir(), testkit.Postgres(t), false
		cfg.HTTPAddr, cfg.MetricsAddr = unusedAddr(t), unusedAddr(t)
		if trusted {
			cfg.TrustedProxies, _ = httpapi.ParseTrustedProxies("127.0.0.1/32")
		}
		ctx, cancel := context.WithCancel(context.Background())
		var logs lockedBuffer
		done := make(chan error, 1)
		go func() { done <- serve(ctx, cfg, &logs) }()
		base := "http://" + cfg.HTTPAddr
		waitServing(t, base, done, &logs)
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/openapi.json", nil)
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if hsts := resp.Header.Get("Strict-Transport-Security"); (hsts != "") != trusted {
			t.Errorf("trusted proxy %v: Strict-Transport-Security %q", trusted, hsts)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestCertificateReload: a renewed certificate is served without a restart; a broken one keeps
// the previous.
func TestCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := writeCert(t, dir, "first")
	now := time.Now()
	c := &certReloader{certFile: certFile, keyFile: keyFile, logger: newLogger(defaultConfig(), io.Discard), now: func() time.Time { return now }}
	if err := c.load(); err != nil {
		t.Fatal(err)
	}
	subject := func() string {
		cert, _ := c.get(nil)
		x, _ := x509.ParseCertificate(cert.Certificate[0])
		return x.Subject.CommonName
	}
	writeCert(t, dir, "second")
	if s := subject(); s != "first" {
		t.Errorf("reloaded before the check interval: %s", s)
	}
	now = now.Add(certCheckInterval)
	if s := subject(); s != "second" {
		t.Errorf("after renewal: %s", s)
	}
	if err := os.WriteFile(certFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(certCheckInterval)
	if s := subject(); s != "second" {
		t.Errorf("after a broken renewal: %s", s)
	}
	if _, err := serverTLS(Config{TLSCertFile: certFile, TLSKeyFile: keyFile}, c.logger); err == nil {
		t.Error("a broken certificate at start was accepted")
	}
}
