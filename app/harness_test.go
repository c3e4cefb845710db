package app_test

import (
	"testing"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/internal/testkit"
	"github.com/metachat/metachat/projections"
)

// env is a running Metachat core for one test (see testkit.Core).
type env = testkit.Core

// newEnv starts an env. makeProjections receives the registry and returns the projections to run.
func newEnv(t *testing.T, makeProjections func(*domain.Registry) []projections.Projection) *env {
	t.Helper()
	return testkit.StartCore(t, makeProjections)
}
