package projections

import (
	"testing"
	"time"
)

// TestLingerPace: a batch lingers only when the events before it came faster than one per linger
// period; a first batch, a lone writer's and a runner with lingering off do not wait.
func TestLingerPace(t *testing.T) {
	t.Parallel()
	const max = time.Millisecond
	t0 := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	p := &lingerPace{max: max}
	steps := []struct {
		name   string
		at     time.Duration // arrival of the batch's first event, after t0
		events int           // the batch's size, once taken
		want   time.Duration
	}{
		{"the first batch has nothing to go by", 0, 1, 0},
		{"one event 2 ms after the last: a lone writer", 2 * time.Millisecond, 1, 0},
		{"one event 0.3 ms after the last: steady traffic", 2300 * time.Microsecond, 3, max},
		{"3 events in 1.5 ms: 0.5 ms apart", 3800 * time.Microsecond, 1, max},
		{"one event after exactly the linger period", 4800 * time.Microsecond, 2, 0},
		{"2 events in 1.9 ms", 6700 * time.Microsecond, 0, max},
		{"after a wait that took none", 6800 * time.Microsecond, 1, 0},
	}
	for _, s := range steps {
		if got := p.arrived(t0.Add(s.at)); got != s.want {
			t.Errorf("%s: linger %v, want %v", s.name, got, s.want)
		}
		p.events = s.events
	}
	off := &lingerPace{max: -1}
	off.arrived(t0)
	off.events = 10
	if got := off.arrived(t0.Add(time.Microsecond)); got != 0 {
		t.Errorf("lingering off: linger %v, want 0", got)
	}
	var tune Tuning
	tune.setDefaults()
	if tune.Linger != DefaultLinger {
		t.Errorf("default linger %v, want %v", tune.Linger, DefaultLinger)
	}
	tune = Tuning{Linger: -1}
	if err := tune.validate(); err != nil {
		t.Errorf("a negative linger (off) is refused: %v", err)
	}
}
