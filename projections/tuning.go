package projections

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Tuning.
const (
	DefaultBatchSize         = 500
	DefaultLinger            = 1 * time.Millisecond
	DefaultIdleWait          = time.Second
	DefaultAckWait           = 30 * time.Second
	DefaultLockCheckInterval = 5 * time.Second
)

// Tuning is how runners fetch and acknowledge events. Zero fields take the defaults.
type Tuning struct {
	// BatchSize is the most events applied in one transaction. Default DefaultBatchSize.
	BatchSize int
	// IdleWait is how long one fetch waits for a new event when the runner is caught up; the runner
	// checks its lock and its context between waits. Default DefaultIdleWait.
	IdleWait time.Duration
	// AckWait is the consumer's acknowledgement deadline, after which JetStream redelivers.
	// Default DefaultAckWait.
	AckWait time.Duration
	// MaxAckPending bounds events delivered but not acknowledged. Default twice BatchSize.
	MaxAckPending int
	// Linger is how long a small batch (fewer than lingerBelow events) waits, after its first
	// event, for more to come before it is applied. Default DefaultLinger; negative: not at all.
	Linger time.Duration
	// LockCheckInterval is how often a runner checks that its lock session is still alive.
	// Default DefaultLockCheckInterval.
	LockCheckInterval time.Duration
}

func (t *Tuning) setDefaults() {
	if t.BatchSize == 0 {
		t.BatchSize = DefaultBatchSize
	}
	if t.IdleWait == 0 {
		t.IdleWait = DefaultIdleWait
	}
	if t.AckWait == 0 {
		t.AckWait = DefaultAckWait
	}
	if t.MaxAckPending == 0 {
		t.MaxAckPending = 2 * t.BatchSize
	}
	if t.Linger == 0 {
		t.Linger = DefaultLinger
	}
	if t.LockCheckInterval == 0 {
		t.LockCheckInterval = DefaultLockCheckInterval
	}
}

// validate reports every problem, defaults applied.
func (t Tuning) validate() error {
	t.setDefaults()
	var errs []error
	if t.BatchSize < 1 || t.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("batch size %d out of range 1-10000", t.BatchSize))
	}
	if t.IdleWait < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("idle wait %v is below 10ms", t.IdleWait))
	}
	if t.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("ack wait %v is below 1s", t.AckWait))
	}
	if t.MaxAckPending < t.BatchSize {
		errs = append(errs, fmt.Errorf("max ack pending %d is below the batch size %d", t.MaxAckPending, t.BatchSize))
	}
	if t.LockCheckInterval < 0 {
		errs = append(errs, fmt.Errorf("lock check interval %v is negative", t.LockCheckInterval))
	}
	return errors.Join(errs...)
}
