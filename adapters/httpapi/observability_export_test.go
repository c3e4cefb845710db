package httpapi

import "net/http"

// RouteForTest adds a route outside the OpenAPI document, for tests of the middleware (metrics,
// request ids, error reporting) that need a handler of their own.
func (s *Server) RouteForTest(method, pattern string, h http.HandlerFunc) {
	s.router.Method(method, pattern, h)
}
