package domain

// Decider is an aggregate's behaviour as pure functions: Initial is the state before any event,
// Evolve folds one event into the state, and Decide turns a command into new events (or an error)
// given the current state. S is the state type, C the command type.
type Decider[S any, C any] struct {
	// AggregateType is the aggregate type name used in references and subjects.
	AggregateType string
	Initial       func() S
	Evolve        func(state S, event Event) S
	Decide        func(state S, command C) ([]Event, error)
}

// Fold applies events to the initial state in order.
func (d Decider[S, C]) Fold(events []Event) S {
	s := d.Initial()
	for _, e := range events {
		s = d.Evolve(s, e)
	}
	return s
}
