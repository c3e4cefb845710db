// Package telemetry is the operator's side of Metachat: the Prometheus registry with the Go runtime
// and process collectors, the handler of the separate metrics listener (GET /metrics and the
// net/http/pprof profiles, never on the API's listener), the periodic dependency checks behind
// metachat_dependency_up, and the optional Sentry reporter of unexpected errors. Nothing here keeps
// package-level state: every collector is created by a constructor and registered on the
// prometheus.Registerer it is given.
package telemetry
