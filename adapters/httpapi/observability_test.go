package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/internal/testkit"
)

// serve sends one request to s and returns the recorder.
func serve(s http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestMetricsRecordRequestsByRoutePattern(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics, err := httpapi.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := httpapi.NewServer(httpapi.Config{Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	var inFlight float64
	s.RouteForTest(http.MethodGet, "/api/v1/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
		inFlight, _ = testkit.ScrapeRegistry(t, reg).Value("metachat_http_requests_in_flight", nil)
		w.WriteHeader(http.StatusNoContent)
	})

	before := testkit.ScrapeRegistry(t, reg)
	if before.Has("metachat_http_request_duration_seconds_count") {
		t.Fatalf("requests recorded before any was served:\n%s", before.Text)
	}
	for range 2 {
		serve(s, http.MethodGet, "/api/health")
	}
	serve(s, http.MethodGet, "/api/v1/things/42")
	serve(s, http.MethodGet, "/api/v1/things/43")
	serve(s, http.MethodGet, "/no/such/route/7")
	serve(s, "BREW", "/api/health")

	after := testkit.ScrapeRegistry(t, reg)
	const hist = "metachat_http_request_duration_seconds"
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"route": "/api/health", "method": "GET", "status": "200"}, 2},
		{map[string]string{"route": "/api/v1/things/{id}", "method": "GET", "status": "204"}, 2},
		{map[string]string{"route": "unmatched", "method": "GET", "status": "404"}, 1},
		{map[string]string{"method": "OTHER", "status": "405"}, 1},
	} {
		if got, _ := after.Value(hist, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v\n%s", hist, tc.labels, got, tc.want, after.Text)
		}
	}
	for _, route := range after.LabelValues(hist, "route") {
		if strings.Contains(route, "42") || strings.Contains(route, "43") || strings.Contains(route, "/no/such") {
			t.Errorf("raw path %q used as a route label", route)
		}
	}
	if inFlight != 1 {
		t.Errorf("requests in flight during a request = %v, want 1", inFlight)
	}
	if got, ok := after.Value("metachat_http_requests_in_flight", nil); !ok || got != 0 {
		t.Errorf("requests in flight after the requests = %v (present %v), want 0", got, ok)
	}
}

func TestReportErrorCalledForServerErrorsAndPanicsOnly(t *testing.T) {
	t.Parallel()
	type report struct {
		err       error
		requestID string
	}
	var (
		mu      sync.Mutex
		reports []report
	)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	s, err := httpapi.NewServer(httpapi.Config{
		Logger: logger,
		ReportError: func(ctx context.Context, err error) {
			mu.Lock()
			defer mu.Unlock()
			reports = append(reports, report{err, domain.CorrelationID(ctx)})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	errBoom := errors.New("boom: the database said no")
	s.RouteForTest(http.MethodGet, "/t/internal", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteErrorForTest(logger, w, r, errBoom)
	})
	s.RouteForTest(http.MethodGet, "/t/unavailable", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteErrorForTest(logger, w, r, domain.Errorf(domain.EUNAVAILABLE, "Try again."))
	})
	s.RouteForTest(http.MethodGet, "/t/panic", func(http.ResponseWriter, *http.Request) {
		panic("kaboom")
	})
	s.RouteForTest(http.MethodGet, "/t/notfound", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteErrorForTest(logger, w, r, domain.Errorf(domain.ENOTFOUND, "No such thing."))
	})
	s.RouteForTest(http.MethodGet, "/t/invalid", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteErrorForTest(logger, w, r, domain.Invalid("Bad.", domain.FieldError{Field: "x", Message: "bad"}))
	})

	take := func() []report {
		mu.Lock()
		defer mu.Unlock()
		out := reports
		reports = nil
		return out
	}
	for _, tc := range []struct {
		path   string
		status int
		want   string // the reported error's text, "" when nothing must be reported
	}{
		{"/t/internal", 500, "boom"},
		{"/t/unavailable", 503, "Try again."},
		{"/t/panic", 500, "kaboom"},
		{"/t/notfound", 404, ""},
		{"/t/invalid", 400, ""},
		{"/no/such/route", 404, ""},
	} {
		rec := serve(s, http.MethodGet, tc.path)
		if rec.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.path, rec.Code, tc.status)
		}
		got := take()
		if tc.want == "" {
			if len(got) != 0 {
				t.Errorf("%s (%d): reported %v; only 5xx and panics are reported", tc.path, rec.Code, got[0].err)
			}
			continue
		}
		if len(got) != 1 {
			t.Errorf("%s: reported %d times, want once", tc.path, len(got))
			continue
		}
		if !strings.Contains(got[0].err.Error(), tc.want) {
			t.Errorf("%s: reported %v, want an error containing %q", tc.path, got[0].err, tc.want)
		}
		if id := rec.Header().Get("X-Request-ID"); got[0].requestID != id {
			t.Errorf("%s: reported with request id %q, want the response's %q", tc.path, got[0].requestID, id)
		}
	}
	serve(s, http.MethodGet, "/t/internal")
	if got := take(); len(got) != 1 || !errors.Is(got[0].err, errBoom) {
		t.Errorf("reported %v, want the handler's own error", got)
	}
	// A server without the hook still answers (nothing is sent anywhere).
	plain, err := httpapi.NewServer(httpapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	plain.RouteForTest(http.MethodGet, "/t/panic", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	if rec := serve(plain, http.MethodGet, "/t/panic"); rec.Code != 500 {
		t.Errorf("panic without a hook: status %d", rec.Code)
	}
}

func TestRequestIDIsTheCorrelationID(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s, err := httpapi.NewServer(httpapi.Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.RouteForTest(http.MethodGet, "/t/whoami", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(domain.CorrelationID(r.Context())))
	})
	rec := serve(s, http.MethodGet, "/t/whoami")
	id := rec.Header().Get("X-Request-ID")
	if id == "" || rec.Body.String() != id {
		t.Fatalf("correlation id in the handler %q, response X-Request-ID %q", rec.Body.String(), id)
	}
	line := accessLogLine(t, logs.String(), id)
	if line["route"] != "/t/whoami" {
		t.Errorf("access log line %v, want route /t/whoami", line)
	}
}

// accessLogLine returns the JSON access log line of the request with id requestID.
func accessLogLine(t *testing.T, logs, requestID string) map[string]any {
	t.Helper()
	line := logLineWith(logs, "http request", map[string]string{"request_id": requestID})
	if line == nil {
		t.Fatalf("no access log line with request_id %q in:\n%s", requestID, logs)
	}
	return line
}

// logLineWith returns the first JSON log line with message msg whose attributes include attrs,
// or nil.
func logLineWith(logs, msg string, attrs map[string]string) map[string]any {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || line["msg"] != msg {
			continue
		}
		match := true
		for k, v := range attrs {
			if s, _ := line[k].(string); s != v {
				match = false
			}
		}
		if match {
			return line
		}
	}
	return nil
}
