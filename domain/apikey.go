package domain

import (
	"strings"
	"time"
	"unicode/utf8"
)

// APIKeyAggregate is the aggregate type name of API keys: one aggregate per key, under its tenant.
const APIKeyAggregate = "api_key"

// Stored event type names of the API key aggregate. Never change them.
const (
	EventAPIKeyCreated = "api_key.created"
	EventAPIKeyRevoked = "api_key.revoked"
	EventAPIKeyUsed    = "api_key.used"
)

// MaxAPIKeyNameLen bounds an API key's name, in characters.
const MaxAPIKeyNameLen = 100

// maxAPIKeyPrefixLen bounds the public prefix of a key as stored.
const maxAPIKeyPrefixLen = 32

// APIKeyCreated records a new API key. KeyHash is the keyed hash of the secret (see
// app.Identity); the secret itself is never stored. Prefix is the key's public part, shown in
// listings and used to find the key.
type APIKeyCreated struct {
	KeyID     string    `json:"key_id"`
	Name      string    `json:"name"`
	Prefix    string    `json:"prefix"`
	KeyHash   string    `json:"key_hash"`
	CreatedAt time.Time `json:"created_at"`
}

// EventType implements Event.
func (*APIKeyCreated) EventType() string { return EventAPIKeyCreated }

// APIKeyRevoked records that a key no longer authenticates.
type APIKeyRevoked struct {
	RevokedAt time.Time `json:"revoked_at"`
}

// EventType implements Event.
func (*APIKeyRevoked) EventType() string { return EventAPIKeyRevoked }

// APIKeyUsed records that a key authenticated a request. It is recorded at most once per interval
// (see RecordAPIKeyUse), not for every request.
type APIKeyUsed struct {
	UsedAt time.Time `json:"used_at"`
}

// EventType implements Event.
func (*APIKeyUsed) EventType() string { return EventAPIKeyUsed }

// APIKeyEventDefs returns the registry definitions of the API key aggregate's events.
func APIKeyEventDefs() []EventDef {
	return []EventDef{
		{Type: EventAPIKeyCreated, Version: 1, New: func() Event { return new(APIKeyCreated) }},
		{Type: EventAPIKeyRevoked, Version: 1, New: func() Event { return new(APIKeyRevoked) }},
		{Type: EventAPIKeyUsed, Version: 1, New: func() Event { return new(APIKeyUsed) }},
	}
}

// APIKeyRef returns the aggregate of an API key.
func APIKeyRef(tenantID, keyID string) AggregateRef {
	return AggregateRef{TenantID: tenantID, Type: APIKeyAggregate, ID: keyID}
}

// APIKey is the decided state of one API key.
type APIKey struct {
	ID         string
	Name       string
	Prefix     string
	KeyHash    string
	CreatedAt  time.Time
	LastUsedAt time.Time
	Revoked    bool
	Exists     bool
}

// APIKeyCommand is a command addressed to the API key aggregate.
type APIKeyCommand interface {
	apiKeyCommand()
}

// CreateAPIKey creates a key from its already hashed secret. Creating a key that exists is
// ECONFLICT.
type CreateAPIKey struct {
	KeyID   string
	Name    string
	Prefix  string
	KeyHash string
	At      time.Time
}

// RevokeAPIKey revokes a key; revoking a revoked key changes nothing.
type RevokeAPIKey struct {
	At time.Time
}

// RecordAPIKeyUse records a use of the key at At, unless the key is revoked or a use was recorded
// less than MinInterval before At.
type RecordAPIKeyUse struct {
	At          time.Time
	MinInterval time.Duration
}

func (CreateAPIKey) apiKeyCommand()    {}
func (RevokeAPIKey) apiKeyCommand()    {}
func (RecordAPIKeyUse) apiKeyCommand() {}

// APIKeyDecider is the API key aggregate's behaviour.
func APIKeyDecider() Decider[APIKey, APIKeyCommand] {
	return Decider[APIKey, APIKeyCommand]{
		AggregateType: APIKeyAggregate,
		Initial:       func() APIKey { return APIKey{} },
		Evolve:        evolveAPIKey,
		Decide:        decideAPIKey,
	}
}

func evolveAPIKey(s APIKey, e Event) APIKey {
	switch e := e.(type) {
	case *APIKeyCreated:
		s = APIKey{ID: e.KeyID, Name: e.Name, Prefix: e.Prefix, KeyHash: e.KeyHash, CreatedAt: e.CreatedAt, Exists: true}
	case *APIKeyRevoked:
		s.Revoked = true
	case *APIKeyUsed:
		if e.UsedAt.After(s.LastUsedAt) {
			s.LastUsedAt = e.UsedAt
		}
	}
	return s
}

func decideAPIKey(s APIKey, c APIKeyCommand) ([]Event, error) {
	switch c := c.(type) {
	case CreateAPIKey:
		if s.Exists {
			return nil, Errorf(ECONFLICT, "The API key already exists.")
		}
		name, err := ValidAPIKeyName(c.Name)
		if err != nil {
			return nil, err
		}
		var fields []FieldError
		if !IsUUID(c.KeyID) {
			fields = append(fields, FieldError{Field: "key_id", Message: "must be a UUID"})
		}
		if c.Prefix == "" || len(c.Prefix) > maxAPIKeyPrefixLen || tokenProblem(c.Prefix) != "" {
			fields = append(fields, FieldError{Field: "prefix", Message: "must be 1-32 letters, digits, '-' or '_'"})
		}
		if !isSHA256Hex(c.KeyHash) {
			fields = append(fields, FieldError{Field: "key_hash", Message: "must be 64 hexadecimal digits"})
		}
		if len(fields) > 0 {
			return nil, Invalid("Invalid API key.", fields...)
		}
		return []Event{&APIKeyCreated{KeyID: c.KeyID, Name: name, Prefix: c.Prefix, KeyHash: c.KeyHash, CreatedAt: c.At.UTC()}}, nil
	case RevokeAPIKey:
		if !s.Exists {
			return nil, Errorf(ENOTFOUND, "API key not found.")
		}
		if s.Revoked {
			return nil, nil
		}
		return []Event{&APIKeyRevoked{RevokedAt: c.At.UTC()}}, nil
	case RecordAPIKeyUse:
		if !s.Exists {
			return nil, Errorf(ENOTFOUND, "API key not found.")
		}
		if s.Revoked || (!s.LastUsedAt.IsZero() && c.At.Sub(s.LastUsedAt) < c.MinInterval) {
			return nil, nil
		}
		return []Event{&APIKeyUsed{UsedAt: c.At.UTC()}}, nil
	default:
		return nil, Errorf(EINVALID, "Unknown API key command.")
	}
}

// ValidAPIKeyName returns the trimmed name of a key, or EINVALID when it is empty or longer than
// MaxAPIKeyNameLen characters.
func ValidAPIKeyName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", Invalid("Invalid API key name.", FieldError{Field: "name", Message: "must not be empty"})
	case !utf8.ValidString(name):
		return "", Invalid("Invalid API key name.", FieldError{Field: "name", Message: "must be valid UTF-8"})
	case utf8.RuneCountInString(name) > MaxAPIKeyNameLen:
		return "", Invalid("Invalid API key name.", FieldError{Field: "name", Message: "must be at most 100 characters"})
	}
	return name, nil
}

// isSHA256Hex reports whether s is 64 lower-case hexadecimal digits.
func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
