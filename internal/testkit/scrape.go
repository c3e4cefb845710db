package testkit

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape is one scrape of a Prometheus endpoint in the text format: the body as served and its
// metric families by name.
type Scrape struct {
	Text     string
	Families map[string]*dto.MetricFamily
}

// ScrapeURL GETs url (a /metrics endpoint) and parses the answer.
func ScrapeURL(tb testing.TB, url string) *Scrape {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		tb.Fatalf("testkit: scrape %s: %v", url, err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("testkit: scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("testkit: scrape %s: %d %v\n%s", url, resp.StatusCode, err, body)
	}
	return ParseScrape(tb, string(body))
}

// ScrapeRegistry serves reg the way Metachat's metrics listener does, on a throw-away HTTP server,
// and scrapes it once.
func ScrapeRegistry(tb testing.TB, reg *prometheus.Registry) *Scrape {
	tb.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	return ScrapeURL(tb, srv.URL+"/metrics")
}

// ParseScrape parses a scrape in the Prometheus text format.
func ParseScrape(tb testing.TB, text string) *Scrape {
	tb.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		tb.Fatalf("testkit: parse scrape: %v\n%s", err, text)
	}
	return &Scrape{Text: text, Families: fams}
}

// Names returns the names of the metric families, sorted.
func (s *Scrape) Names() []string {
	names := make([]string, 0, len(s.Families))
	for n := range s.Families {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Has reports whether the scrape has a series named name: a family's name, or one of a histogram's
// or summary's _bucket, _sum and _count series.
func (s *Scrape) Has(name string) bool {
	if _, ok := s.Families[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if f, ok := s.Families[base]; ok {
			t := f.GetType()
			if t == dto.MetricType_HISTOGRAM || (t == dto.MetricType_SUMMARY && suffix != "_bucket") {
				return true
			}
		}
	}
	return false
}

// Value returns the value of the series of family name whose labels include labels: a counter's or
// gauge's value, a histogram's or summary's sample count. ok is false when there is no such series.
func (s *Scrape) Value(name string, labels map[string]string) (v float64, ok bool) {
	f := s.Families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Summary != nil:
			return float64(m.Summary.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// LabelValues returns the values label takes in family name, sorted.
func (s *Scrape) LabelValues(name, label string) []string {
	var out []string
	if f := s.Families[name]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && !slices.Contains(out, l.GetValue()) {
					out = append(out, l.GetValue())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
