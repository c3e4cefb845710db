package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/app"
)

// sqlmapBudget bounds the whole sqlmap run (all targets together).
const sqlmapBudget = 3 * time.Minute

// sqlmapFinding matches sqlmap's report of a confirmed injection ("GET parameter 'q' is
// 'AND boolean-based blind - WHERE or HAVING clause' injectable", "… appears to be '…'
// injectable", "sqlmap identified the following injection point(s)").
var sqlmapFinding = regexp.MustCompile(`(?i)(is|appears to be) '[^']+' injectable|identified the following injection point`)

// TestSQLMap runs sqlmap (Debian's package), the attack tool, against a real server on loopback
// with a valid bearer token: the conversation list and its search (q, status, cursor, limit), a
// conversation by id (the path), the message list (after_seq, limit), a message send (the JSON
// body), the knowledge search (q) and the login (the JSON body). Level 2, risk 1, PostgreSQL
// payloads, bounded in time. It fails if sqlmap reports any injectable parameter, if it could not
// test a target, or if any request made the server answer 5xx. Rate limits and the sign-in backoff
// are off on this server: a 429 in the middle of a run would make sqlmap's comparisons
// meaningless. Without sqlmap the test is skipped, except in CI (CI set), where it fails.
func TestSQLMap(t *testing.T) {
	bin, err := exec.LookPath("sqlmap")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("sqlmap is not installed (apt-get install sqlmap); CI must run it")
		}
		t.Skip("sqlmap is not installed")
	}
	if testing.Short() {
		t.Skip("sqlmap takes minutes")
	}
	h := newHarness(t)
	signingKey, err := app.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	identity, err := app.NewIdentity(app.IdentityConfig{
		Store: h.Store, Registry: h.Registry, DB: h.Pools.App, Waiter: h.Waiter, SigningKey: signingKey, APIKeyPepper: h.Pepper,
		Logger: h.Logger, LoginBackoff: app.LoginBackoff{Disabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.Server.ConfigForTest()
	cfg.Auth, cfg.Identity = identity, identity
	cfg.RateLimits = httpapi.RateLimits{Disabled: true}
	srv, err := httpapi.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var requests, serverErrors atomic.Int64
	var lastServerError atomic.Value
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		sw := &statusRecorder{ResponseWriter: w, status: 200}
		srv.ServeHTTP(sw, r)
		if sw.status >= 500 {
			serverErrors.Add(1)
			lastServerError.Store(r.Method + " " + r.URL.String())
		}
	}))
	t.Cleanup(hs.Close)
	c := &client{t: t, base: hs.URL, http: hs.Client()}
	// The control: a handler that builds SQL from its query parameter, as the SQL rule forbids.
	// sqlmap must find it injectable, or this run proves nothing (wrong flags, a broken install).
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		err := h.Pools.App.QueryRow(r.Context(), "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = '"+r.URL.Query().Get("q")+"'").Scan(&n)
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		_, _ = fmt.Fprintf(w, `{"count":%d}`, n)
	}))
	t.Cleanup(control.Close)

	email, password := freshEmail(), "correct-horse-battery-staple"
	token := c.do("POST", "/api/v1/signup", "", map[string]any{"tenant_name": "SQLMap", "email": email, "password": password}).must(t, 201, "signup")["access_token"].(string)
	conv := c.do("POST", "/api/v1/conversations", token, map[string]any{"channel": "api", "contact": map[string]any{"external_id": "sqlmap", "name": "Robert'); DROP TABLE students;--"}}).must(t, 201, "conversation")["id"].(string)
	c.do("POST", "/api/v1/conversations/"+conv+"/messages", token, map[string]any{"text": "hello", "client_message_id": "m-1"}).must(t, 201, "message")
	page := c.do("GET", "/api/v1/conversations?limit=1", token, nil).must(t, 200, "list")
	cursor, _ := page["next_cursor"].(string)
	if cursor == "" {
		c.do("POST", "/api/v1/conversations", token, map[string]any{"channel": "api", "contact": map[string]any{"external_id": "second"}}).must(t, 201, "conversation")
		cursor, _ = c.do("GET", "/api/v1/conversations?limit=1", token, nil).must(t, 200, "list")["next_cursor"].(string)
	}
	login, _ := json.Marshal(map[string]string{"email": email, "password": password})
	send, _ := json.Marshal(map[string]string{"text": "hello", "client_message_id": "m-2"})

	type target struct {
		name, url, data string
		params          string // -p: the parameters to test ("" : all, with * marking a path)
		auth            bool
		ignore          string // --ignore-code: statuses that are answers, not failures
		control         bool   // the deliberately injectable control: sqlmap must find it
	}
	targets := []target{
		{"control (deliberately injectable)", control.URL + "/control?q=pg_class", "", "q", false, "", true},
		{"conversation list and search", hs.URL + "/api/v1/conversations?q=ada&status=open&cursor=" + cursor + "&limit=10", "", "q,status,cursor,limit", true, "", false},
		{"conversation by id", hs.URL + "/api/v1/conversations/" + conv + "*", "", "", true, "", false},
		{"message list", hs.URL + "/api/v1/conversations/" + conv + "/messages?after_seq=0&limit=10", "", "after_seq,limit", true, "", false},
		{"message send", hs.URL + "/api/v1/conversations/" + conv + "/messages", string(send), "", true, "", false},
		{"login", hs.URL + "/api/v1/auth/login", string(login), "", false, "401", false},
	}
	if ops, _ := loadOps(c); hasOperation(ops, "searchKnowledge") {
		targets = append(targets, target{"knowledge search", hs.URL + "/api/v1/knowledge/search?q=hello&limit=5", "", "q,limit", true, "", false})
	}
	home := t.TempDir()
	start := time.Now()
	deadline := start.Add(sqlmapBudget)
	for _, tg := range targets {
		args := []string{"-u", tg.url, "--batch", "--level", "2", "--risk", "1", "--dbms", "PostgreSQL", "--flush-session",
			"--output-dir", filepath.Join(home, "out"), "--disable-coloring", "--timeout", "10", "--retries", "0",
			"--time-sec", "2", "--answers", "quit=N,follow=N"}
		var headers []string
		if tg.data != "" {
			args = append(args, "--data", tg.data)
			headers = append(headers, "Content-Type: application/json")
		}
		if tg.auth {
			headers = append(headers, "Authorization: Bearer "+token)
		}
		if len(headers) > 0 {
			args = append(args, "--headers", strings.Join(headers, "\n"))
		}
		if tg.params != "" {
			args = append(args, "-p", tg.params)
		}
		if tg.ignore != "" {
			args = append(args, "--ignore-code", tg.ignore)
		}
		ctx, cancel := context.WithDeadline(t.Context(), deadline)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		text := string(out)
		if os.Getenv("METACHAT_SQLMAP_VERBOSE") != "" {
			t.Logf("%s: sqlmap %s\n%s", tg.name, strings.Join(args, " "), text)
		}
		switch {
		case timedOut:
			t.Errorf("%s: sqlmap did not finish within the %v of the whole run\n%s", tg.name, sqlmapBudget, tail(text, 40))
		case tg.control && !sqlmapFinding.MatchString(text):
			t.Fatalf("sqlmap did not find the deliberately injectable control; its other verdicts would mean nothing:\n%s", tail(text, 60))
		case tg.control:
			t.Logf("%s: found, as it must be (%s)", tg.name, sqlmapFinding.FindString(text))
		case sqlmapFinding.MatchString(text):
			t.Errorf("%s: sqlmap reports an injection:\n%s", tg.name, text)
		case !strings.Contains(text, "all tested parameters do not appear to be injectable"):
			t.Errorf("%s: sqlmap did not test the target (%v):\n%s", tg.name, err, tail(text, 40))
		default:
			t.Logf("%s: no injectable parameter (%s)", tg.name, tested(text))
		}
	}
	t.Logf("sqlmap: %d targets, %d requests, %v", len(targets), requests.Load(), time.Since(start).Round(time.Second))
	if n := serverErrors.Load(); n > 0 {
		t.Errorf("%d sqlmap requests got a 5xx answer (last: %v)", n, lastServerError.Load())
	}
}

func hasOperation(ops []op, id string) bool {
	for _, o := range ops {
		if o.ID == id {
			return true
		}
	}
	return false
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// tested lists the parameters sqlmap reports it tested ("GET parameter 'q' does not seem to be
// injectable").
func tested(out string) string {
	var names []string
	for _, m := range regexp.MustCompile(`(\w+ parameter '[^']+') does not seem to be injectable`).FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	return strings.Join(names, ", ")
}
