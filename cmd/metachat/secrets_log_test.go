package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/metachat/metachat/internal/testkit"
)

// TestSecretsNeverInLogsOrErrorBodies runs `serve` in-process at debug level (every component's
// log into one buffer), drives the end-to-end flow with every kind of secret — a password, access
// tokens from signup and login, an API key, a widget identity secret, a visitor session token and
// its socket, plus wrong passwords, forged and revoked credentials and a replayed token — and
// then checks that none of those secrets, nor the server's own (JWT signing key, API key pepper,
// the demo owner's password), appears in any log line or in any error answer's body.
func TestSecretsNeverInLogsOrErrorBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve")
	}
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.DatabaseURL = testkit.Postgres(t)
	cfg.LogLevel = "debug"
	cfg.HTTPAddr = unusedAddr(t)
	cfg.MetricsAddr = unusedAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs lockedBuffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, &logs) }()
	base := "http://" + cfg.HTTPAddr
	waitServing(t, base, done, &logs)

	secrets := map[string]string{} // what → value
	var errorBodies []string
	client := &http.Client{Timeout: 20 * time.Second}
	call := func(method, path, bearer string, body any, headers map[string]string) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 400 {
			errorBodies = append(errorBodies, method+" "+path+": "+string(b))
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	str := func(m map[string]any, k string) string {
		t.Helper()
		s, _ := m[k].(string)
		if s == "" {
			t.Fatalf("no %s in %v", k, m)
		}
		return s
	}

	email, password := "owner-"+randHex(4)+"@secrets.example", "pw-"+randHex(12)
	secrets["password"] = password
	st, m := call("POST", "/api/v1/signup", "", map[string]any{"tenant_name": "Secrets", "email": email, "password": password}, nil)
	if st != 201 {
		t.Fatalf("signup: %d %v\n%s", st, m, logs.String())
	}
	secrets["signup access token"] = str(m, "access_token")
	_, m = call("POST", "/api/v1/auth/login", "", map[string]any{"email": email, "password": password}, nil)
	owner := str(m, "access_token")
	secrets["login access token"] = owner
	wrong := "wrong-" + randHex(12)
	secrets["a wrong password"] = wrong
	if st, _ := call("POST", "/api/v1/auth/login", "", map[string]any{"email": email, "password": wrong}, nil); st != 401 {
		t.Errorf("wrong password: %d", st)
	}
	if st, _ := call("POST", "/api/v1/auth/login", "", map[string]any{"email": "nobody-" + randHex(3) + "@x.example", "password": wrong}, nil); st != 401 {
		t.Errorf("unknown email: %d", st)
	}
	tooShort := "s" + randHex(4) // 9 characters, under the minimum of 10
	secrets["a refused password"] = tooShort
	if st, _ := call("POST", "/api/v1/signup", "", map[string]any{"tenant_name": "X", "email": "x-" + randHex(3) + "@x.example", "password": tooShort}, nil); st != 400 {
		t.Errorf("short password: %d", st)
	}
	tooLong := "L" + strings.Repeat(randHex(16), 20)
	secrets["an over-long password"] = tooLong
	if st, _ := call("POST", "/api/v1/signup", "", map[string]any{"tenant_name": "X", "email": "y-" + randHex(3) + "@x.example", "password": tooLong}, nil); st != 400 {
		t.Errorf("long password: %d", st)
	}

	_, m = call("POST", "/api/v1/api-keys", owner, map[string]any{"name": "secrets"}, nil)
	key, keyID := str(m, "key"), str(m, "id")
	secrets["API key"] = key
	secrets["API key secret part"] = key[strings.LastIndex(key, "_")+1:]
	if st, _ := call("GET", "/api/v1/me", key, nil, nil); st != 200 {
		t.Fatalf("me with the key: %d", st)
	}
	_, m = call("POST", "/api/v1/conversations", key, map[string]any{"channel": "api", "contact": map[string]any{"external_id": "c-1"}}, nil)
	convID := str(m, "id")
	if st, _ := call("POST", "/api/v1/conversations/"+convID+"/messages", key, map[string]any{"text": "hello", "client_message_id": "m-1"}, nil); st != 201 {
		t.Errorf("send: %d", st)
	}
	forged := key[:len(key)-4] + "abcd"
	secrets["a forged API key"] = forged
	if st, _ := call("GET", "/api/v1/me", forged, nil, nil); st != 401 {
		t.Errorf("forged key: %d", st)
	}
	if st, _ := call("GET", "/api/v1/me", "Bearer "+owner, nil, nil); st != 401 { // "Bearer Bearer <jwt>": malformed
		t.Errorf("malformed header: %d", st)
	}
	if st, _ := call("GET", "/api/v1/me", owner+"x", nil, nil); st != 401 {
		t.Errorf("tampered JWT: %d", st)
	}

	const origin = "https://shop.secrets.example"
	_, m = call("POST", "/api/v1/widgets", owner, map[string]any{"name": "Shop", "allowed_origins": []string{origin}, "identity_verification": true}, nil)
	widgetID := str(m, "id")
	secrets["widget identity secret"] = str(m, "identity_secret")
	st, m = call("POST", "/api/v1/widget/sessions?widget_id="+widgetID, "", map[string]any{"widget_id": widgetID, "visitor_id": "user-1",
		"user_hash": strings.Repeat("0", 64)}, map[string]string{"Origin": origin})
	if st != 401 && st != 403 {
		t.Errorf("a wrong identity hash: %d %v", st, m)
	}
	if st, _ := call("PUT", "/api/v1/widgets/"+widgetID, owner, map[string]any{"name": "Shop", "allowed_origins": []string{origin}}, nil); st != 200 {
		t.Fatalf("update widget: %d", st)
	}
	_, m = call("POST", "/api/v1/widget/sessions?widget_id="+widgetID, "", map[string]any{"widget_id": widgetID}, map[string]string{"Origin": origin})
	token := str(m, "token")
	secrets["visitor session token"] = token
	wsURL := "ws://" + cfg.HTTPAddr + "/api/v1/widget/ws?token=" + token
	conn, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
	if err != nil {
		t.Fatalf("socket: %v\n%s", err, logs.String())
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	for _, frame := range []string{`{"type":"resume","after_seq":0}`, `{"type":"send","client_message_id":"w-1","text":"hi from the widget"}`} {
		if err := conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	readCtx, stopRead := context.WithTimeout(ctx, 10*time.Second)
	for acked := false; !acked; {
		_, b, err := conn.Read(readCtx)
		if err != nil {
			t.Fatalf("socket read: %v", err)
		}
		acked = strings.Contains(string(b), `"ack"`)
	}
	stopRead()
	_ = conn.Close(websocket.StatusNormalClosure, "")
	// The token is spent: a replay is refused.
	if _, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}}); err == nil {
		t.Error("a replayed session token opened a socket")
	} else if resp != nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		errorBodies = append(errorBodies, "replayed token: "+string(b))
	}

	if st, _ := call("DELETE", "/api/v1/api-keys/"+keyID, owner, nil, nil); st != 204 {
		t.Errorf("revoke: %d", st)
	}
	if st, _ := call("GET", "/api/v1/me", key, nil, nil); st != 401 {
		t.Errorf("revoked key: %d", st)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}

	// The server's own secrets.
	cfg.resolvePaths()
	for what, path := range map[string]string{"JWT signing key": cfg.SigningKeyFile, "API key pepper": cfg.APIKeyPepperFile} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		secrets[what] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, "demo.json")); err == nil {
		var demo map[string]any
		if err := json.Unmarshal(b, &demo); err == nil {
			for k, v := range demo {
				if s, ok := v.(string); ok && strings.Contains(strings.ToLower(k), "password") && s != "" {
					secrets["demo owner password"] = s
				}
			}
		}
	}
	if _, ok := secrets["demo owner password"]; !ok {
		t.Error("the demo's password was not found in demo.json (the test would not check it)")
	}

	out := logs.String()
	if !strings.Contains(out, `level=DEBUG`) || strings.Count(out, "\n") < 50 {
		t.Fatalf("the logs are not at debug level or nearly empty:\n%s", out)
	}
	if len(errorBodies) < 8 {
		t.Fatalf("only %d error answers collected", len(errorBodies))
	}
	for what, s := range secrets {
		if len(s) < 8 {
			t.Fatalf("%s is too short to look for: %q", what, s)
		}
		for _, needle := range secretForms(s) {
			if strings.Contains(out, needle) {
				t.Errorf("the logs contain the %s (%q)", what, needle)
			}
			for _, b := range errorBodies {
				if strings.Contains(b, needle) {
					t.Errorf("an error answer contains the %s: %s", what, b)
				}
			}
		}
	}
	t.Logf("%d log lines and %d error answers checked for %d secrets", strings.Count(out, "\n"), len(errorBodies), len(secrets))
}

// secretForms are the forms a secret could be logged in: whole, and for a JWT its signature
// (the part that makes it a credential).
func secretForms(s string) []string {
	forms := []string{s}
	if parts := strings.Split(s, "."); len(parts) == 3 && len(parts[2]) >= 16 {
		forms = append(forms, parts[2])
	}
	if strings.Contains(s, "PRIVATE KEY") {
		for _, line := range strings.Split(s, "\n") {
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
				forms = append(forms, line)
			}
		}
	}
	return forms
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitServing waits until serve answers its health check.
func waitServing(t *testing.T, base string, done <-chan error, logs *lockedBuffer) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := client.Get(base + "/api/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
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
}
