package httpapi

import (
	"net/http"
	"strconv"
	"time"
)

// The security headers every response carries (securityHeaders).
const (
	// DefaultCSP is the Content-Security-Policy of every response whose handler sets none: the
	// API's JSON and problems, and anything else served here, may load nothing, run nothing and be
	// framed by nobody. A page that needs more (the demo page) sets its own policy, which then
	// replaces this one; such a policy must itself have no 'unsafe-inline' or 'unsafe-eval' and
	// keep frame-ancestors 'none' (a test walks every route and checks).
	DefaultCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	// PermissionsPolicy switches off the powerful browser features nothing here uses.
	PermissionsPolicy = "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()"
	// ReferrerPolicy sends no referrer from anything served here.
	ReferrerPolicy = "no-referrer"
	// DefaultHSTSMaxAge is how long browsers keep to HTTPS once told (one year).
	DefaultHSTSMaxAge = 365 * 24 * time.Hour
)

// securityHeaders sets the security headers on every response — success, error, static asset,
// 404, 405, panic — before anything else runs, so no route can miss them:
//
//   - Strict-Transport-Security, only when the client reached us over HTTPS (our own TLS, or a
//     trusted TLS-terminating proxy's X-Forwarded-Proto: https): browsers ignore it over plain
//     HTTP, and a development server on http://localhost must not pin its host to HTTPS;
//   - Content-Security-Policy DefaultCSP, which a handler replaces by setting its own;
//   - X-Content-Type-Options: nosniff, Referrer-Policy, Permissions-Policy, X-Frame-Options: DENY
//     (for browsers without frame-ancestors);
//   - Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Resource-Policy: same-origin, so
//     no other site can load a response of ours as a resource, except the mounts marked
//     CrossOrigin (the widget script, which customers' sites load), which answer cross-origin.
//
// CORS is not here: every route is same-origin (no Access-Control-* header at all) except the
// public widget routes, whose widgetCORS allows exactly each widget's configured origins.
func securityHeaders(hstsMaxAge time.Duration) func(http.Handler) http.Handler {
	hsts := "max-age=" + strconv.FormatInt(int64(hstsMaxAge/time.Second), 10) + "; includeSubDomains"
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			if hstsMaxAge > 0 && clientOf(r).secure {
				h.Set("Strict-Transport-Security", hsts)
			}
			h.Set("Content-Security-Policy", DefaultCSP)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", ReferrerPolicy)
			h.Set("Permissions-Policy", PermissionsPolicy)
			h.Set("X-Frame-Options", "DENY")
			h.Set("Cross-Origin-Opener-Policy", "same-origin")
			h.Set("Cross-Origin-Resource-Policy", "same-origin")
			next.ServeHTTP(w, r)
		})
	}
}

// crossOriginResource marks a handler's answers as loadable by other sites
// (Cross-Origin-Resource-Policy: cross-origin). It grants no CORS read access.
func crossOriginResource(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cross-Origin-Resource-Policy", "cross-origin")
		next.ServeHTTP(w, r)
	})
}
