package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/testkit"
)

// Files of deploy/, from this package's directory.
const (
	dashboardFile  = "../../deploy/grafana/metachat.json"
	alertsFile     = "../../deploy/prometheus/alerts.yml"
	alertTestsFile = "../../deploy/prometheus/alerts_test.yml"
	runbookFile    = "../../RUNBOOK.md"
)

// unusedAddr returns a loopback address nothing listens on (for a moment).
func unusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// promtool returns the path of promtool. Without it the test is skipped on a developer's machine
// and fails in CI (CI set), where .ci/run installs it.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not on PATH; CI must have it (.ci/run installs Debian's prometheus package)")
		}
		t.Skip("promtool is not on PATH (apt-get install prometheus); CI runs this check")
	}
	return path
}

// TestServeExposesMetrics runs serve in-process, causes some traffic and an event, and checks a
// real scrape of METACHAT_METRICS_ADDR: every series is there and moves, labels are bounded, the
// scrape passes promlint and `promtool check metrics`, every metric the Grafana dashboard and the
// alert rules name exists, and the profiles are served there and only there.
func TestServeExposesMetrics(t *testing.T) {
	// Every series a running serve exposes.
	everySeries := []string{
		"metachat_build_info",
		"metachat_http_request_duration_seconds",
		"metachat_http_requests_in_flight",
		"metachat_eventstore_append_duration_seconds",
		"metachat_eventstore_appended_events_total",
		"metachat_eventstore_append_conflicts_total",
		"metachat_eventstore_append_duplicates_total",
		"metachat_eventstore_append_errors_total",
		"metachat_projection_checkpoint_sequence",
		"metachat_projection_lag_events",
		"metachat_projection_lag_seconds",
		"metachat_projection_stopped",
		"metachat_projection_running",
		"metachat_projection_batch_duration_seconds",
		"metachat_projection_events_applied_total",
		"metachat_projection_errors_total",
		"metachat_dependency_up",
		"metachat_dependency_check_duration_seconds",
		"go_goroutines",
		"process_resident_memory_bytes",
		"process_cpu_seconds_total",
	}
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.DatabaseURL = testkit.Postgres(t)
	cfg.HTTPAddr = unusedAddr(t)
	cfg.MetricsAddr = unusedAddr(t)
	cfg.resolvePaths()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs lockedBuffer
	var serveErr error
	done := make(chan struct{}) // closed when serve returned, with serveErr
	go func() { serveErr = serve(ctx, cfg, &logs); close(done) }()
	defer func() {
		cancel()
		<-done
		if serveErr != nil {
			t.Errorf("serve: %v\n%s", serveErr, logs.String())
		}
	}()
	api := "http://" + cfg.HTTPAddr
	metricsURL := "http://" + cfg.MetricsAddr + "/metrics"
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, logs.String())
			}
			select {
			case <-done:
				t.Fatalf("serve returned early: %v\n%s", serveErr, logs.String())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	waitFor("the API to be healthy", func() bool { code, _ := get(api + "/api/health"); return code == http.StatusOK })
	get(api + "/api/v1/openapi.json")
	get(api + "/api/v1/no-such-thing/12345")

	// An event, appended the way an operator's tool would (through the embedded server's URL).
	natsURL, err := os.ReadFile(cfg.path(natsURLFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(strings.TrimSpace(string(natsURL)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	res, err := eventstore.NewHandler(store, domain.NewDefaultRegistry(), domain.TenantDecider()).Handle(ctx,
		domain.AggregateRef{TenantID: id, Type: domain.TenantAggregate, ID: id},
		domain.CreateTenant{TenantID: id, Name: "Scraped", At: time.Now()}, eventstore.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	var scrape *testkit.Scrape
	waitFor("the scrape to show the event applied and the dependencies checked", func() bool {
		scrape = testkit.ScrapeURL(t, metricsURL)
		cp, _ := scrape.Value("metachat_projection_checkpoint_sequence", map[string]string{"projection": "tenants", "state": "active"})
		_, nats := scrape.Value("metachat_dependency_up", map[string]string{"dependency": "nats"})
		_, pg := scrape.Value("metachat_dependency_up", map[string]string{"dependency": "postgres"})
		// The runner counts a batch a moment after its checkpoint commits.
		applied, _ := scrape.Value("metachat_projection_events_applied_total", map[string]string{"projection": "tenants"})
		return cp == float64(res.Version) && nats && pg && applied >= 1
	})

	for _, name := range everySeries {
		if !scrape.Has(name) {
			t.Errorf("no %s in the scrape", name)
		}
	}
	for _, dep := range []string{"nats", "postgres"} {
		if v, _ := scrape.Value("metachat_dependency_up", map[string]string{"dependency": dep}); v != 1 {
			t.Errorf("metachat_dependency_up{dependency=%q} = %v, want 1", dep, v)
		}
	}
	routes := scrape.LabelValues("metachat_http_request_duration_seconds", "route")
	for _, r := range routes {
		if !slices.Contains([]string{"/api/health", "/api/v1/openapi.json", "unmatched"}, r) {
			t.Errorf("route label %q is not a route pattern", r)
		}
	}
	if !slices.Contains(routes, "/api/health") || !slices.Contains(routes, "unmatched") {
		t.Errorf("route labels %v, want /api/health and unmatched among them", routes)
	}
	problems, err := promlint.New(strings.NewReader(scrape.Text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	t.Run("dashboard names only scraped metrics", func(t *testing.T) {
		for _, name := range dashboardMetricNames(t) {
			if !scrape.Has(name) {
				t.Errorf("the dashboard uses %s, which the scrape does not have", name)
			}
		}
	})
	t.Run("alert rules name only scraped metrics", func(t *testing.T) {
		for _, name := range alertMetricNames(t) {
			if name != "up" && !scrape.Has(name) { // up is Prometheus's own, per target
				t.Errorf("the alert rules use %s, which the scrape does not have", name)
			}
		}
	})
	t.Run("profiles on the metrics listener only", func(t *testing.T) {
		if code, body := get("http://" + cfg.MetricsAddr + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
			t.Errorf("pprof index: %d %.200s", code, body)
		}
		if code, _ := get("http://" + cfg.MetricsAddr + "/debug/pprof/cmdline"); code != http.StatusOK {
			t.Errorf("pprof cmdline: %d", code)
		}
		if code, _ := get("http://" + cfg.MetricsAddr + "/debug/pprof/heap?debug=1"); code != http.StatusOK {
			t.Errorf("pprof heap: %d", code)
		}
		for _, path := range []string{"/debug/pprof/", "/metrics"} {
			if code, _ := get(api + path); code != http.StatusNotFound {
				t.Errorf("the API listener answers %s with %d, want 404", path, code)
			}
		}
	})
	t.Run("promtool check metrics", func(t *testing.T) {
		cmd := exec.Command(promtool(t), "check", "metrics")
		cmd.Stdin = strings.NewReader(scrape.Text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	})
}

// TestAlertRules checks the alert rules with promtool (syntax, then the unit tests of
// alerts_test.yml), and that every runbook_url points at a section of RUNBOOK.md.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	anchors := runbookAnchors(t)
	for _, a := range alertRules(t) {
		if a.Annotations["summary"] == "" {
			t.Errorf("alert %s has no summary", a.Alert)
		}
		url := a.Annotations["runbook_url"]
		_, anchor, ok := strings.Cut(url, "RUNBOOK.md#")
		if !ok || !anchors[anchor] {
			t.Errorf("alert %s: runbook_url %q is not a section of RUNBOOK.md", a.Alert, url)
		}
	}
	tool := promtool(t)
	for _, args := range [][]string{{"check", "rules", alertsFile}, {"test", "rules", alertTestsFile}} {
		if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// alertRule is the part of a Prometheus alerting rule the tests read.
type alertRule struct {
	Alert       string
	Expr        string
	Annotations map[string]string
}

// alertRules reads the alerting rules of alerts.yml. The file is YAML; it is parsed here with
// a few line rules that its layout follows (promtool checks the YAML itself).
func alertRules(t *testing.T) []alertRule {
	t.Helper()
	f, err := os.Open(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		rules  []alertRule
		inExpr bool
		inAnn  bool
	)
	keyValue := regexp.MustCompile(`^\s+([a-z_]+):\s*(.*)$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(trimmed, "- alert: "); ok {
			rules = append(rules, alertRule{Alert: name, Annotations: map[string]string{}})
			inExpr, inAnn = false, false
			continue
		}
		if len(rules) == 0 || trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		r := &rules[len(rules)-1]
		m := keyValue.FindStringSubmatch(line)
		switch {
		case inExpr && (m == nil || !slices.Contains([]string{"for", "labels", "annotations", "expr"}, m[1])):
			r.Expr += " " + trimmed
			continue
		case m == nil:
			continue
		}
		inExpr = false
		switch key, value := m[1], strings.Trim(m[2], `"`); {
		case key == "expr":
			r.Expr, inExpr = strings.TrimPrefix(value, "|"), true
			inAnn = false
		case key == "annotations":
			inAnn = true
		case key == "labels" || key == "for":
			inAnn = false
		case inAnn:
			r.Annotations[key] = value
		}
	}
	if len(rules) == 0 {
		t.Fatalf("no alert in %s", alertsFile)
	}
	return rules
}

// runbookAnchors returns the anchors of RUNBOOK.md's headings, as GitHub makes them.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		anchors[strings.ReplaceAll(drop.ReplaceAllString(title, ""), " ", "-")] = true
	}
	return anchors
}

func alertMetricNames(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, r := range alertRules(t) {
		names = append(names, promQLMetricNames(r.Expr)...)
	}
	return dedupe(names)
}

// dashboardMetricNames returns the metric names the dashboard's queries use: every panel's
// expressions and the template variables' label_values(metric, …).
func dashboardMetricNames(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var names []string
	exprs := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			names = append(names, promQLMetricNames(tg.Expr)...)
			exprs++
		}
	}
	labelValues := regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)
	for _, v := range dash.Templating.List {
		if m := labelValues.FindStringSubmatch(v.Definition); m != nil {
			names = append(names, m[1])
		}
	}
	if exprs < 10 || len(names) < 10 {
		t.Fatalf("%s: %d expressions naming %d metrics; the parse is broken", dashboardFile, exprs, len(names))
	}
	return dedupe(names)
}

// promQLMetricNames returns, roughly, the metric names a PromQL expression selects: identifiers
// outside strings, label matchers, ranges and grouping clauses that are neither functions nor
// keywords.
func promQLMetricNames(expr string) []string {
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`"(?:[^"\\]|\\.)*"`), // strings
		regexp.MustCompile(`\{[^}]*\}`),         // label matchers
		regexp.MustCompile(`\[[^\]]*\]`),        // ranges
		regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`), // grouping
		regexp.MustCompile(`\$\w+`),                       // Grafana variables
		regexp.MustCompile(`\boffset\s+-?[0-9][0-9a-z]*`), // offsets
	} {
		expr = re.ReplaceAllString(expr, " ")
	}
	keywords := []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
		"group_left", "group_right", "inf", "nan"}
	var names []string
	ident := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	for _, m := range ident.FindAllString(expr, -1) {
		if strings.HasSuffix(m, "(") || slices.Contains(keywords, strings.ToLower(m)) {
			continue // a function or a keyword
		}
		names = append(names, m)
	}
	return names
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
