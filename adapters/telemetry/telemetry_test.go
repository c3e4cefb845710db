package telemetry_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"go.uber.org/goleak"

	"github.com/metachat/metachat/adapters/telemetry"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestHandlerServesMetricsAndProfiles(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry("1.2.3")
	h, err := telemetry.NewHandler(telemetry.HandlerConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	s := testkit.ScrapeURL(t, srv.URL+"/metrics")
	for _, name := range []string{"go_goroutines", "go_gc_duration_seconds", "process_resident_memory_bytes", "process_cpu_seconds_total"} {
		if !s.Has(name) {
			t.Errorf("no %s in the scrape", name)
		}
	}
	if v, ok := s.Value("metachat_build_info", map[string]string{"version": "1.2.3"}); !ok || v != 1 {
		t.Errorf("metachat_build_info{version=1.2.3} = %v (present %v), want 1", v, ok)
	}

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, tc := range []struct {
		path, want string
		status     int
	}{
		{"/", "/metrics", 200},
		{"/debug/pprof/", "goroutine", 200},
		{"/debug/pprof/cmdline", "", 200},
		{"/debug/pprof/symbol", "num_symbols", 200},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile", 200},
		{"/debug/pprof/profile?seconds=1", "", 200},
		{"/debug/pprof/trace?seconds=1", "", 200},
		{"/nope", "", 404},
	} {
		resp, err := client.Get(srv.URL + tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %.120q, want %d containing %q", tc.path, resp.StatusCode, body, tc.status, tc.want)
		}
	}

	noProf, err := telemetry.NewHandler(telemetry.HandlerConfig{Registry: reg, DisableProfiling: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	noProf.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("profiles served with DisableProfiling: %d", rec.Code)
	}
	if _, err := telemetry.NewHandler(telemetry.HandlerConfig{}); err == nil {
		t.Error("a handler without a registry was accepted")
	}
}

func TestDependencyMonitor(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry("test")
	var natsDown atomic.Bool
	var logs syncBuffer
	m, err := telemetry.NewDependencyMonitor(reg, telemetry.DependencyMonitorConfig{
		Checks: []telemetry.DependencyCheck{
			{Name: "nats", Check: func(context.Context) error {
				if natsDown.Load() {
					return errors.New("not connected")
				}
				return nil
			}},
			{Name: "postgres", Check: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}, // hangs
		},
		Interval: 20 * time.Millisecond,
		Timeout:  50 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if testkit.ScrapeRegistry(t, reg).Has("metachat_dependency_up") {
		t.Fatal("dependencies reported before any check")
	}
	up := func(dep string) float64 {
		t.Helper()
		v, ok := testkit.ScrapeRegistry(t, reg).Value("metachat_dependency_up", map[string]string{"dependency": dep})
		if !ok {
			t.Fatalf("no metachat_dependency_up{dependency=%q}", dep)
		}
		return v
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	eventually(t, "the first checks", func() bool {
		return testkit.ScrapeRegistry(t, reg).Has("metachat_dependency_up")
	})
	eventually(t, "both dependencies checked", func() bool {
		_, ok := testkit.ScrapeRegistry(t, reg).Value("metachat_dependency_up", map[string]string{"dependency": "postgres"})
		return ok
	})
	if up("nats") != 1 || up("postgres") != 0 {
		t.Fatalf("nats %v (want 1), a hanging postgres %v (want 0)", up("nats"), up("postgres"))
	}
	natsDown.Store(true)
	eventually(t, "nats to show as down", func() bool { return up("nats") == 0 })
	natsDown.Store(false)
	eventually(t, "nats to show as up again", func() bool { return up("nats") == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	out := logs.String()
	if strings.Count(out, `msg="dependency down" dependency=nats`) != 1 || strings.Count(out, `msg="dependency back up" dependency=nats`) != 1 {
		t.Errorf("want one down and one back-up line for nats (transitions only), got:\n%s", out)
	}
	if n := strings.Count(out, `msg="dependency down" dependency=postgres`); n != 1 {
		t.Errorf("postgres down logged %d times, want once:\n%s", n, out)
	}

	if _, err := telemetry.NewDependencyMonitor(reg, telemetry.DependencyMonitorConfig{
		Checks: []telemetry.DependencyCheck{{Name: "x"}, {Name: "x", Check: func(context.Context) error { return nil }}},
	}); err == nil {
		t.Error("a check without a function and a duplicate name were accepted")
	}
}

// recordingTransport is a Sentry transport that keeps the events it is given.
type recordingTransport struct {
	mu     sync.Mutex
	events []*sentry.Event
}

func (r *recordingTransport) Flush(time.Duration) bool              { return true }
func (r *recordingTransport) FlushWithContext(context.Context) bool { return true }
func (r *recordingTransport) Configure(sentry.ClientOptions)        {}
func (r *recordingTransport) Close()                                {}
func (r *recordingTransport) SendEvent(e *sentry.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func TestSentryReportsErrorsWithTheRequestID(t *testing.T) {
	t.Parallel()
	tr := &recordingTransport{}
	s, err := telemetry.NewSentry(telemetry.SentryConfig{
		DSN: "https://public@o0.ingest.example.invalid/1", Environment: "production", Release: "1.2.3", Transport: tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Report(domain.WithCorrelationID(context.Background(), "req-123"), errors.New("panic: kaboom"))
	s.Report(context.Background(), nil)
	s.Close(time.Second)

	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.events) != 1 {
		t.Fatalf("%d events sent, want 1", len(tr.events))
	}
	e := tr.events[0]
	if e.Tags["request_id"] != "req-123" || e.Environment != "production" || e.Release != "1.2.3" ||
		len(e.Exception) == 0 || !strings.Contains(e.Exception[len(e.Exception)-1].Value, "kaboom") {
		t.Errorf("event = tags %v, env %q, release %q, exceptions %+v", e.Tags, e.Environment, e.Release, e.Exception)
	}
	if _, err := telemetry.NewSentry(telemetry.SentryConfig{}); err == nil {
		t.Error("a reporter without a DSN was created")
	}
}

// syncBuffer is a bytes buffer written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
