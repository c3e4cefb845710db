package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/metachat/metachat/domain"
)

type ctxKey int

const requestIDKey ctxKey = iota

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{8,128}$`)

// requestID gives every request an id: the caller's X-Request-ID when trusted and well-formed,
// else a new random one. The id is returned in the X-Request-ID response header and is the
// context's correlation id (domain.WithCorrelationID), which the events the request causes carry.
func requestID(trustCallerID bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := r.Header.Get("X-Request-ID")
			if !trustCallerID || !validRequestID.MatchString(id) {
				b := make([]byte, 12)
				_, _ = rand.Read(b)
				id = hex.EncodeToString(b)
			}
			w.Header().Set("X-Request-ID", id)
			ctx := domain.WithCorrelationID(context.WithValue(r.Context(), requestIDKey, id), id)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// recoverer turns a panic in a handler into a logged 500 problem without detail.
func recoverer(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
						panic(v)
					}
					writeError(logger, w, r, fmt.Errorf("panic: %v", v))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// accessLog logs one line per request with its id, route pattern, status and duration, and
// records it in metrics (nil: none).
func accessLog(logger *slog.Logger, now func() time.Time, metrics *Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := now()
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			defer metrics.inFlight()()
			next.ServeHTTP(sw, r)
			metrics.observe(r, sw.status, now().Sub(start))
			logger.LogAttrs(r.Context(), slog.LevelInfo, "http request",
				slog.String("request_id", RequestID(r.Context())),
				slog.String("method", r.Method),
				slog.String("route", routePattern(r)),
				slog.Int("status", sw.status),
				slog.Duration("duration", now().Sub(start)),
			)
		})
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// notFound and methodNotAllowed answer unknown routes with problem+json.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(s.logger, w, r, domain.Errorf(domain.ENOTFOUND, "No such route: %s %s.", r.Method, r.URL.Path))
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, Problem{
		Type: "https://metachat.dev/problems/method_not_allowed", Title: http.StatusText(http.StatusMethodNotAllowed),
		Status: http.StatusMethodNotAllowed, Detail: fmt.Sprintf("Method %s is not allowed here.", r.Method),
		RequestID: RequestID(r.Context()),
	})
}
