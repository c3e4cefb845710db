package webui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func newUI(t *testing.T, demoID string) *UI {
	t.Helper()
	u, err := New(Config{DemoWidgetID: demoID})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func do(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestWidgetScriptPlain(t *testing.T) {
	u := newUI(t, "")
	want, err := os.ReadFile("assets/widget.js")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(want)
	w := do(t, u.WidgetScript(), http.MethodGet, "/widget.js", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	h := w.Result().Header
	for k, v := range map[string]string{
		"Content-Type":           "application/javascript; charset=utf-8",
		"Cache-Control":          "public, max-age=300",
		"X-Content-Type-Options": "nosniff",
		"ETag":                   `"` + hex.EncodeToString(sum[:]) + `"`,
		"Vary":                   "Accept-Encoding",
		"Content-Encoding":       "",
	} {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !bytes.Equal(w.Body.Bytes(), want) {
		t.Error("body is not assets/widget.js")
	}
	if h.Get("Content-Length") != strconv.Itoa(len(want)) {
		t.Errorf("Content-Length %q", h.Get("Content-Length"))
	}
}

func TestWidgetScriptGzip(t *testing.T) {
	u := newUI(t, "")
	w := do(t, u.WidgetScript(), http.MethodGet, "/widget.js", map[string]string{"Accept-Encoding": "br;q=1, gzip;q=0.8"})
	if w.Code != http.StatusOK || w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("status %d, encoding %q", w.Code, w.Header().Get("Content-Encoding"))
	}
	if len(w.Body.Bytes()) >= len(u.script.body) {
		t.Errorf("gzip body %d bytes is not smaller than %d", w.Body.Len(), len(u.script.body))
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, u.script.body) {
		t.Error("gunzipped body differs")
	}
	if w.Header().Get("ETag") == u.script.etag || !strings.HasPrefix(w.Header().Get("ETag"), strings.TrimSuffix(u.script.etag, `"`)) {
		t.Errorf("gzip ETag %q should differ from the identity one %q and derive from it", w.Header().Get("ETag"), u.script.etag)
	}
	// q=0 refuses gzip.
	w = do(t, u.WidgetScript(), http.MethodGet, "/widget.js", map[string]string{"Accept-Encoding": "gzip;q=0, *"})
	if w.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 was answered with gzip")
	}
}

func TestWidgetScriptHeadConditionalAndMethods(t *testing.T) {
	u := newUI(t, "")
	w := do(t, u.WidgetScript(), http.MethodHead, "/widget.js", nil)
	if w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Content-Length") != strconv.Itoa(len(u.script.body)) {
		t.Errorf("HEAD: %d, %d body bytes, length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
	for _, inm := range []string{u.script.etag, "W/" + u.script.etag, `"x", ` + u.script.gzEtag, "*"} {
		w = do(t, u.WidgetScript(), http.MethodGet, "/widget.js", map[string]string{"If-None-Match": inm})
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 || w.Header().Get("ETag") == "" {
			t.Errorf("If-None-Match %s: %d, %d bytes", inm, w.Code, w.Body.Len())
		}
	}
	w = do(t, u.WidgetScript(), http.MethodGet, "/widget.js", map[string]string{"If-None-Match": `"stale"`})
	if w.Code != http.StatusOK {
		t.Errorf("stale If-None-Match: %d", w.Code)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch} {
		w = do(t, u.WidgetScript(), m, "/widget.js", nil)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
}

// TestWidgetScriptIsSafe guards the built bundle against HTML injection sinks and dynamic code.
func TestWidgetScriptIsSafe(t *testing.T) {
	js := string(newUI(t, "").script.body)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(js, bad) {
			t.Errorf("widget.js contains %q", bad)
		}
	}
	for _, must := range []string{"adoptedStyleSheets", "attachShadow", "randomUUID", "/api/v1/widget/ws", "/api/v1/widget/sessions", "/api/v1/widget/config"} {
		if !strings.Contains(js, must) {
			t.Errorf("widget.js does not contain %q", must)
		}
	}
	if len(newUI(t, "").script.gz) > 15360 {
		t.Errorf("widget.js is %d bytes gzipped, over 15 KiB", len(newUI(t, "").script.gz))
	}
}

func TestDemoStyles(t *testing.T) {
	u := newUI(t, "")
	w := do(t, u.DemoStyles(), http.MethodGet, "/demo.css", nil)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/css; charset=utf-8" || w.Header().Get("ETag") == "" ||
		w.Header().Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(w.Body.String(), "body") {
		t.Errorf("demo.css: %d %v", w.Code, w.Header())
	}
	if w = do(t, u.DemoStyles(), http.MethodPost, "/demo.css", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST demo.css: %d", w.Code)
	}
}

func TestDemoPageDisabled(t *testing.T) {
	u := newUI(t, "")
	if w := do(t, u.DemoPage(), http.MethodGet, "/demo", nil); w.Code != http.StatusNotFound {
		t.Errorf("demo without a widget: %d", w.Code)
	}
}

var (
	scriptTag = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
	inline    = regexp.MustCompile(`(?i)<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:`)
)

func TestDemoPage(t *testing.T) {
	id := `w1"><script>alert(1)</script>`
	u := newUI(t, id)
	w := do(t, u.DemoPage(), http.MethodGet, "/demo", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	h := w.Header()
	if got := h.Get("Content-Security-Policy"); got != "default-src 'none'; script-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'" {
		t.Errorf("CSP %q", got)
	}
	if h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", h)
	}
	page := w.Body.String()
	if strings.Contains(page, "<script>alert") {
		t.Fatal("the widget id was not escaped")
	}
	tags := scriptTag.FindAllStringSubmatch(page, -1)
	if len(tags) != 1 {
		t.Fatalf("want exactly one script tag, got %d", len(tags))
	}
	attrs, body := tags[0][1], tags[0][2]
	if strings.TrimSpace(body) != "" || !strings.Contains(attrs, `src="/widget.js"`) || !strings.Contains(attrs, " async") ||
		!strings.Contains(attrs, `data-widget-id="w1&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`) {
		t.Errorf("script tag %q", tags[0][0])
	}
	if m := inline.FindString(page); m != "" {
		t.Errorf("inline style or script in the page: %q", m)
	}
	if !strings.Contains(page, `<link rel="stylesheet" href="/demo.css">`) {
		t.Error("no stylesheet link")
	}
	if w = do(t, u.DemoPage(), http.MethodHead, "/demo", nil); w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("HEAD: %d %d", w.Code, w.Body.Len())
	}
	if w = do(t, u.DemoPage(), http.MethodPost, "/demo", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, id := range []string{strings.Repeat("a", 129), "has space", "tab\there", "nl\n"} {
		if _, err := New(Config{DemoWidgetID: id}); err == nil {
			t.Errorf("DemoWidgetID %q accepted", id)
		}
	}
	if _, err := New(Config{DemoWidgetID: "0193a4b2-7c1d-7e00-8000-000000000001"}); err != nil {
		t.Error(err)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for in, want := range map[string]bool{
		"":                    false,
		"gzip":                true,
		"GZIP":                true,
		"x-gzip":              true,
		"deflate, gzip":       true,
		"gzip;q=0":            false,
		"gzip; q=0.000":       false,
		"gzip;q=0.5":          true,
		"*":                   true,
		"*;q=0":               false,
		"gzip;q=0, *":         false,
		"br":                  false,
		"identity":            false,
		"gzipx":               false,
		"gzip;level=1":        true,
		"gzip;q=abc":          false,
		" br , gzip ; q=1.0 ": true,
	} {
		if got := acceptsGzip([]string{in}); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", in, got, want)
		}
	}
}

// FuzzAcceptsGzip checks the Accept-Encoding parser on arbitrary input: no panic, never gzip when
// neither gzip nor * is named, and gzip always when gzip is named plainly on its own.
func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "*;q=0.1", "br, deflate", "gzip;q=1e400", ";;,,=", "x-gzip;Q=0.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := acceptsGzip([]string{s})
		l := strings.ToLower(s)
		if got && !strings.Contains(l, "gzip") && !strings.Contains(l, "*") {
			t.Fatalf("acceptsGzip(%q) = true without gzip or *", s)
		}
		if !strings.Contains(l, "gzip") && !strings.Contains(l, "*") && !acceptsGzip([]string{s + ",gzip"}) {
			// A plain gzip element added to input that names neither gzip nor * must allow it.
			t.Fatalf("acceptsGzip(%q) = false", s+",gzip")
		}
		_ = noneMatch([]string{s}, `"a"`)
	})
}
