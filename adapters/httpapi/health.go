package httpapi

import (
	"context"
	"net/http"
	"sync"

	"github.com/go-chi/chi/v5"
)

// HealthCheck is one dependency reported by GET /api/health. Check returns details to show (for
// example a projection's lag) and an error when the dependency is unhealthy.
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) (details any, err error)
}

// ComponentHealth is one dependency's state in the health answer.
type ComponentHealth struct {
	Status  string `json:"status"` // "ok" or "down"
	Error   string `json:"error,omitempty"`
	Details any    `json:"details,omitempty"`
}

// HealthResponse is the body of GET /api/health.
type HealthResponse struct {
	Status     string                     `json:"status"` // "ok" or "degraded"
	Components map[string]ComponentHealth `json:"components"`
}

func (s *Server) registerHealthRoutes(r chi.Router) {
	r.Get("/api/health", s.handleHealth)
}

// handleHealth runs every check concurrently, each bounded, and answers 200 when all pass, 503
// otherwise, with each component's state.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	resp := HealthResponse{Status: "ok", Components: make(map[string]ComponentHealth, len(s.cfg.Health))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range s.cfg.Health {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := contextWithTimeout(r.Context(), s.cfg.HealthTimeout)
			defer cancel()
			details, err := h.Check(ctx)
			c := ComponentHealth{Status: "ok", Details: details}
			if err != nil {
				c.Status, c.Error = "down", err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			resp.Components[h.Name] = c
			if err != nil {
				resp.Status = "degraded"
			}
		}()
	}
	wg.Wait()
	status := http.StatusOK
	if resp.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, resp)
}
