package telemetry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/metachat/metachat/domain"
)

// SentryConfig configures a Sentry reporter.
type SentryConfig struct {
	// DSN is the Sentry project's DSN (SENTRY_DSN). Required.
	DSN string
	// Environment and Release tag every event (METACHAT_ENV and the build's version).
	Environment string
	Release     string
	// Transport replaces the HTTP transport (tests). Nil sends to the DSN.
	Transport sentry.Transport
}

// Validate reports every problem with the configuration.
func (c SentryConfig) Validate() error {
	if c.DSN == "" {
		return errors.New("sentry: no DSN")
	}
	return nil
}

// Sentry reports unexpected errors to Sentry, with the request id (the context's correlation id)
// as the request_id tag. It uses its own client and hub, never the SDK's global one.
type Sentry struct {
	hub *sentry.Hub
}

// NewSentry returns a reporter sending to cfg.DSN. Close flushes and stops it.
func NewSentry(cfg SentryConfig) (*Sentry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:         cfg.DSN,
		Environment: cfg.Environment,
		Release:     cfg.Release,
		Transport:   cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("sentry: %w", err)
	}
	return &Sentry{hub: sentry.NewHub(client, sentry.NewScope())}, nil
}

// Report sends err to Sentry. It is the shape of httpapi.Config.ReportError.
func (s *Sentry) Report(ctx context.Context, err error) {
	if err == nil {
		return
	}
	hub := s.hub.Clone()
	if id := domain.CorrelationID(ctx); id != "" {
		hub.Scope().SetTag("request_id", id)
	}
	hub.CaptureException(err)
}

// Close sends what is still queued, waiting up to timeout, and releases the client.
func (s *Sentry) Close(timeout time.Duration) {
	s.hub.Flush(timeout)
	s.hub.Client().Close()
}
