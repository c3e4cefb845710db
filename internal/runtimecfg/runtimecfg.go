// Package runtimecfg holds the Go runtime settings the Metachat binaries (metachat, and the bench
// that measures it) start with, so that both run the same way.
package runtimecfg

import "runtime/debug"

// DefaultGCPercent is the garbage collector's target when the GOGC environment variable does not
// set one: the heap may grow to five times what is live before a collection, instead of Go's
// twice. A send allocates mostly short-lived request, event and JSON buffers, and the live heap of
// a serving instance is tens of megabytes; collecting a quarter as often takes a sizeable share of
// the CPU per message back (make bench) for a peak heap still in the low hundreds of megabytes.
// GOGC and GOMEMLIMIT, the runtime's own settings, override it.
const DefaultGCPercent = 400

// Apply sets the garbage collector's target to DefaultGCPercent unless getenv("GOGC") names one
// (the runtime has applied that already). It returns the target in force.
func Apply(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		current := debug.SetGCPercent(-1)
		debug.SetGCPercent(current)
		return current
	}
	debug.SetGCPercent(DefaultGCPercent)
	return DefaultGCPercent
}
