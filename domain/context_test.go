package domain_test

import (
	"context"
	"testing"

	"github.com/metachat/metachat/domain"
)

func TestCorrelationID(t *testing.T) {
	ctx := context.Background()
	if got := domain.CorrelationID(ctx); got != "" {
		t.Fatalf("correlation id of a bare context = %q, want empty", got)
	}
	ctx = domain.WithCorrelationID(ctx, "req-1")
	if got := domain.CorrelationID(ctx); got != "req-1" {
		t.Fatalf("correlation id = %q, want req-1", got)
	}
	if got := domain.CorrelationID(domain.WithCorrelationID(ctx, "")); got != "req-1" {
		t.Fatalf("an empty id replaced the correlation id: %q", got)
	}
	if got := domain.CorrelationID(domain.WithCorrelationID(ctx, "req-2")); got != "req-2" {
		t.Fatalf("correlation id = %q, want req-2", got)
	}
}
