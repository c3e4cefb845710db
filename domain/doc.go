// Package domain is the pure centre of Metachat: the event envelope and type registry, aggregates with
// their commands, events and deciders (decide and evolve), the interfaces of the stores the rest of the
// system implements, and the one error type with its codes. It imports only the standard library.
package domain
