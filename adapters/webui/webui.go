// Package webui serves what browsers load from Metachat outside the API: the chat widget script
// (built from web/widget into assets/widget.js and embedded, so `go build` needs no npm) and a demo
// page that installs the widget with its one script tag under a strict Content-Security-Policy.
//
// Every asset is prepared once in New: its bytes, a gzip copy and an ETag (the SHA-256 of the
// content), so serving is a header check and a write.
package webui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

//go:embed assets/widget.js assets/demo.css assets/demo.html
var assets embed.FS

// DemoCSP is the Content-Security-Policy of the demo page: no inline script or style at all.
const DemoCSP = "default-src 'none'; script-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; " +
	"style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// CacheControl is sent with the widget script and the demo stylesheet.
const CacheControl = "public, max-age=300"

// maxWidgetID bounds Config.DemoWidgetID.
const maxWidgetID = 128

// Config configures the UI.
type Config struct {
	// Logger receives a debug line describing the assets. Nil discards it.
	Logger *slog.Logger
	// DemoWidgetID is the widget the demo page installs. Empty: /demo answers 404.
	DemoWidgetID string
}

// Validate reports a configuration New cannot use.
func (c Config) Validate() error {
	if len(c.DemoWidgetID) > maxWidgetID {
		return fmt.Errorf("webui: DemoWidgetID longer than %d bytes", maxWidgetID)
	}
	for _, r := range c.DemoWidgetID {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return errors.New("webui: DemoWidgetID must be printable characters without spaces")
		}
	}
	return nil
}

// UI serves the widget script and the demo page.
type UI struct {
	script *asset
	styles *asset
	demo   []byte // nil: no demo page
}

// New prepares every asset.
func New(cfg Config) (*UI, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	script, err := load("assets/widget.js", "application/javascript; charset=utf-8")
	if err != nil {
		return nil, err
	}
	styles, err := load("assets/demo.css", "text/css; charset=utf-8")
	if err != nil {
		return nil, err
	}
	u := &UI{script: script, styles: styles}
	if cfg.DemoWidgetID != "" {
		if u.demo, err = renderDemo(cfg.DemoWidgetID); err != nil {
			return nil, err
		}
	}
	cfg.Logger.Debug("web UI assets", "widget_js_bytes", len(script.body), "widget_js_gzip_bytes", len(script.gz),
		"demo", u.demo != nil)
	return u, nil
}

// WidgetScript serves GET and HEAD /widget.js: the widget, gzip-encoded when the client accepts it,
// with an ETag and five minutes of public caching. Other methods answer 405.
func (u *UI) WidgetScript() http.Handler { return u.script }

// DemoStyles serves GET and HEAD /demo.css, the demo page's stylesheet.
func (u *UI) DemoStyles() http.Handler { return u.styles }

// DemoPage serves GET and HEAD /demo: a page that installs the configured widget, under DemoCSP.
// Without a configured widget it answers 404.
func (u *UI) DemoPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u.demo == nil {
			http.NotFound(w, r)
			return
		}
		if !allowMethod(w, r) {
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", DemoCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Length", strconv.Itoa(len(u.demo)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(u.demo)
		}
	})
}

func renderDemo(widgetID string) ([]byte, error) {
	src, err := assets.ReadFile("assets/demo.html")
	if err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	t, err := template.New("demo").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("webui: demo template: %w", err)
	}
	var b bytes.Buffer
	err = t.Execute(&b, struct{ WidgetID, Snippet string }{
		WidgetID: widgetID,
		Snippet:  `<script src="https://YOUR-METACHAT-HOST/widget.js" data-widget-id="` + widgetID + `" async></script>`,
	})
	if err != nil {
		return nil, fmt.Errorf("webui: demo template: %w", err)
	}
	return b.Bytes(), nil
}

// asset is one static file, ready to serve.
type asset struct {
	ctype  string
	body   []byte
	gz     []byte
	etag   string // of body
	gzEtag string // of the gzip representation
}

func load(name, ctype string) (*asset, error) {
	body, err := assets.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	if len(body) == 0 {
		return nil, fmt.Errorf("webui: %s is empty (run make web)", name)
	}
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("webui: gzip: %w", err)
	}
	if _, err := zw.Write(body); err != nil {
		return nil, fmt.Errorf("webui: gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("webui: gzip: %w", err)
	}
	sum := sha256.Sum256(body)
	tag := hex.EncodeToString(sum[:])
	return &asset{ctype: ctype, body: body, gz: b.Bytes(), etag: `"` + tag + `"`, gzEtag: `"` + tag + `-gzip"`}, nil
}

func (a *asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r) {
		return
	}
	body, etag := a.body, a.etag
	gz := acceptsGzip(r.Header.Values("Accept-Encoding"))
	if gz {
		body, etag = a.gz, a.gzEtag
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", CacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Vary", "Accept-Encoding")
	h.Set("ETag", etag)
	if noneMatch(r.Header.Values("If-None-Match"), a.etag, a.gzEtag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if gz {
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// allowMethod answers 405 for anything but GET and HEAD.
func allowMethod(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// acceptsGzip reports whether Accept-Encoding values allow gzip: "gzip" (or "x-gzip", or "*" when
// gzip is not named) with a quality above zero.
func acceptsGzip(values []string) bool {
	star, named := false, false
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			ok := qualityAboveZero(params)
			switch name {
			case "gzip", "x-gzip":
				if !ok {
					return false
				}
				named = true
			case "*":
				star = ok
			}
		}
	}
	return named || star
}

// qualityAboveZero reads the q parameter of an Accept-Encoding element (absent means 1).
func qualityAboveZero(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return err == nil && q > 0
	}
	return true
}

// noneMatch reports whether If-None-Match values name one of the current tags (weak comparison)
// or are "*".
func noneMatch(values []string, tags ...string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			t := strings.TrimPrefix(strings.TrimSpace(part), "W/")
			if t == "*" {
				return true
			}
			for _, want := range tags {
				if t == want {
					return true
				}
			}
		}
	}
	return false
}
