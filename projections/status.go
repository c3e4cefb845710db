package projections

import (
	"fmt"
	"time"
)

// Status describes one projection generation, for health checks, metrics and the CLI.
type Status struct {
	// Projection is the projection's name.
	Projection string
	// Generation is the generation described (0 when the projection has none yet).
	Generation int
	// State is the generation's state: StateBuilding, StateActive or StateRetired ("" when the
	// projection has no generation yet).
	State string
	// Checkpoint is the stream sequence of the last event the generation applied.
	Checkpoint uint64
	// StreamLastSeq is the sequence of the last event in the stream, as far as known.
	StreamLastSeq uint64
	// Lag is how many events the generation has still to apply.
	Lag uint64
	// Running is true while a runner of this process holds the generation's lock and consumes.
	Running bool
	// Waiting is true while a runner of this process waits for the lock that another instance
	// holds (a hot standby).
	Waiting bool
	// Stopped is true when a poison event stopped the generation; StopSeq is that event's
	// sequence, StoppedAt when it happened and Error why.
	Stopped   bool
	StopSeq   uint64
	StoppedAt time.Time
	Error     string
}

// StoppedError is returned by Runner.Run when an event cannot be decoded or applied (a poison
// event). The events before it are applied and checkpointed; Seq is the event's sequence. Err is
// the cause.
type StoppedError struct {
	// Projection and Generation name the stopped projection generation.
	Projection string
	Generation int
	// Seq is the stream sequence of the poison event.
	Seq uint64
	// Err is why the event could not be decoded or applied.
	Err error
}

// Error implements error.
func (e *StoppedError) Error() string {
	return fmt.Sprintf("projection %s generation %d stopped at event %d: %v", e.Projection, e.Generation, e.Seq, e.Err)
}

// Unwrap returns the cause.
func (e *StoppedError) Unwrap() error { return e.Err }
