package domain

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// TenantAggregate is the aggregate type name of tenants.
const TenantAggregate = "tenant"

// Stored event type names of the tenant aggregate. Never change them.
const (
	EventTenantCreated = "tenant.created"
	EventTenantRenamed = "tenant.renamed"
)

// MaxTenantNameLen bounds a tenant's name, in characters.
const MaxTenantNameLen = 100

// DefaultPlan is the plan a tenant starts on.
const DefaultPlan = "free"

// TenantCreated records a new tenant. Schema version 2 added Plan; version 1 payloads are upcast
// with the default plan.
type TenantCreated struct {
	TenantID  string    `json:"tenant_id"`
	Name      string    `json:"name"`
	Plan      string    `json:"plan"`
	CreatedAt time.Time `json:"created_at"`
}

// EventType implements Event.
func (*TenantCreated) EventType() string { return EventTenantCreated }

// TenantRenamed records a tenant's new name.
type TenantRenamed struct {
	Name      string    `json:"name"`
	RenamedAt time.Time `json:"renamed_at"`
}

// EventType implements Event.
func (*TenantRenamed) EventType() string { return EventTenantRenamed }

// TenantEventDefs returns the registry definitions of the tenant aggregate's events.
func TenantEventDefs() []EventDef {
	return []EventDef{
		{
			Type:    EventTenantCreated,
			Version: 2,
			New:     func() Event { return new(TenantCreated) },
			Upcasters: map[int]Upcaster{
				1: upcastTenantCreatedV1,
			},
		},
		{Type: EventTenantRenamed, Version: 1, New: func() Event { return new(TenantRenamed) }},
	}
}

// upcastTenantCreatedV1 adds the plan that version 1 did not have: every tenant then was on the
// default plan.
func upcastTenantCreatedV1(payload json.RawMessage) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, Errorf(EINVALID, "tenant.created v1: malformed payload")
	}
	if _, ok := m["plan"]; !ok {
		m["plan"] = json.RawMessage(`"` + DefaultPlan + `"`)
	}
	return json.Marshal(m)
}

// Tenant is the decided state of one tenant.
type Tenant struct {
	ID        string
	Name      string
	Plan      string
	CreatedAt time.Time
	Exists    bool
}

// TenantCommand is a command addressed to the tenant aggregate.
type TenantCommand interface {
	tenantCommand()
}

// CreateTenant creates a tenant with a name.
type CreateTenant struct {
	TenantID string
	Name     string
	At       time.Time
}

// RenameTenant changes a tenant's name.
type RenameTenant struct {
	Name string
	At   time.Time
}

func (CreateTenant) tenantCommand() {}
func (RenameTenant) tenantCommand() {}

// TenantDecider is the tenant aggregate's behaviour.
func TenantDecider() Decider[Tenant, TenantCommand] {
	return Decider[Tenant, TenantCommand]{
		AggregateType: TenantAggregate,
		Initial:       func() Tenant { return Tenant{} },
		Evolve:        evolveTenant,
		Decide:        decideTenant,
	}
}

func evolveTenant(s Tenant, e Event) Tenant {
	switch e := e.(type) {
	case *TenantCreated:
		s = Tenant{ID: e.TenantID, Name: e.Name, Plan: e.Plan, CreatedAt: e.CreatedAt, Exists: true}
	case *TenantRenamed:
		s.Name = e.Name
	}
	return s
}

func decideTenant(s Tenant, c TenantCommand) ([]Event, error) {
	switch c := c.(type) {
	case CreateTenant:
		if s.Exists {
			return nil, Errorf(ECONFLICT, "The tenant already exists.")
		}
		name, err := validTenantName(c.Name)
		if err != nil {
			return nil, err
		}
		if !IsUUID(c.TenantID) {
			return nil, Invalid("Invalid tenant id.", FieldError{Field: "tenant_id", Message: "must be a UUID"})
		}
		return []Event{&TenantCreated{TenantID: c.TenantID, Name: name, Plan: DefaultPlan, CreatedAt: c.At.UTC()}}, nil
	case RenameTenant:
		if !s.Exists {
			return nil, Errorf(ENOTFOUND, "Tenant not found.")
		}
		name, err := validTenantName(c.Name)
		if err != nil {
			return nil, err
		}
		if name == s.Name {
			return nil, nil
		}
		return []Event{&TenantRenamed{Name: name, RenamedAt: c.At.UTC()}}, nil
	default:
		return nil, Errorf(EINVALID, "Unknown tenant command.")
	}
}

func validTenantName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", Invalid("Invalid tenant name.", FieldError{Field: "name", Message: "must not be empty"})
	case !utf8.ValidString(name):
		return "", Invalid("Invalid tenant name.", FieldError{Field: "name", Message: "must be valid UTF-8"})
	case utf8.RuneCountInString(name) > MaxTenantNameLen:
		return "", Invalid("Invalid tenant name.", FieldError{Field: "name", Message: "must be at most 100 characters"})
	}
	return name, nil
}
