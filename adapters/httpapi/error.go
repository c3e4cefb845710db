package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/metachat/metachat/domain"
)

// codeStatus maps each domain error code to its HTTP status. It is the only place that does so.
var codeStatus = map[string]int{
	domain.EINVALID:      http.StatusBadRequest,
	domain.EUNAUTHORIZED: http.StatusUnauthorized,
	domain.EFORBIDDEN:    http.StatusForbidden,
	domain.ENOTFOUND:     http.StatusNotFound,
	domain.ECONFLICT:     http.StatusConflict,
	domain.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	domain.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	domain.ELIMIT:        http.StatusPaymentRequired,
	domain.ERATELIMIT:    http.StatusTooManyRequests,
	domain.EUNAVAILABLE:  http.StatusServiceUnavailable,
	domain.EINTERNAL:     http.StatusInternalServerError,
}

// StatusOf returns the HTTP status for an error's code.
func StatusOf(err error) int {
	if s, ok := codeStatus[domain.ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail"`
	RequestID string              `json:"request_id,omitempty"`
	Errors    []domain.FieldError `json:"errors,omitempty"`
}

// writeError writes err as problem+json. An error whose chain has a RetryAfter() time.Duration
// method (a sign-in backoff) sets the Retry-After header. Internal errors are logged here, once, with the request
// id, reported to Config.ReportError, if any, and answered without any detail.
func writeError(logger *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	code := domain.ErrorCode(err)
	status := StatusOf(err)
	p := Problem{
		Type:      "https://metachat.dev/problems/" + code,
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    domain.ErrorMessage(err),
		RequestID: RequestID(r.Context()),
		Errors:    domain.ErrorFields(err),
	}
	var wait interface{ RetryAfter() time.Duration }
	if errors.As(err, &wait) && wait.RetryAfter() > 0 {
		w.Header().Set("Retry-After", strconv.FormatFloat(math.Ceil(wait.RetryAfter().Seconds()), 'f', 0, 64))
	}
	if status >= 500 {
		logger.ErrorContext(r.Context(), "request failed", "err", err, "code", code, "method", r.Method, "path", r.URL.Path)
		reportError(r.Context(), err) // observability.go
	}
	writeProblem(w, p)
}

func writeProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
