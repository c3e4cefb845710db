package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// EmailClaimAggregate is the aggregate type name of email claims: one aggregate per normalized email
// address, whose single event gives the address to one user. Appending that event at version 0 is
// what makes an email unique across every tenant, even under concurrent sign-ups.
const EmailClaimAggregate = "email_claim"

// SystemTenantID is the tenant under which cross-tenant aggregates (email claims) are stored. It is
// the nil UUID, which no tenant ever gets (tenant ids are generated UUIDv7s).
const SystemTenantID = "00000000-0000-0000-0000-000000000000"

// EventEmailClaimed is the stored type name of the email claim. Never change it.
const EventEmailClaimed = "email.claimed"

// MaxEmailLen bounds an email address, in bytes.
const MaxEmailLen = 254

// Purposes of an email claim: which write it was made for, so a claim left behind by a write that
// failed halfway can be completed by a retry of the same kind of write (see app.Identity).
const (
	ClaimForSignup = "signup"
	ClaimForInvite = "invite"
)

// EmailClaimed records that an email address belongs to one user of one tenant.
type EmailClaimed struct {
	Email     string    `json:"email"`
	TenantID  string    `json:"tenant_id"`
	UserID    string    `json:"user_id"`
	Purpose   string    `json:"purpose"`
	ClaimedAt time.Time `json:"claimed_at"`
}

// EventType implements Event.
func (*EmailClaimed) EventType() string { return EventEmailClaimed }

// EmailClaim is the decided state of one email address.
type EmailClaim struct {
	Email     string
	TenantID  string
	UserID    string
	Purpose   string
	ClaimedAt time.Time
	Claimed   bool
}

// EmailClaimCommand is a command addressed to the email claim aggregate.
type EmailClaimCommand interface {
	emailClaimCommand()
}

// ClaimEmail gives an email address to a user. Claiming an address already held by the same
// tenant and user changes nothing; held by anyone else, it is ECONFLICT.
type ClaimEmail struct {
	Email    string
	TenantID string
	UserID   string
	Purpose  string
	At       time.Time
}

func (ClaimEmail) emailClaimCommand() {}

// CanonicalEmail returns the normalized form of an email address (trimmed, lower-cased) that
// uniqueness is decided on, or EINVALID when it does not look like an address: one '@' between a
// non-empty local part of at most 64 bytes and a domain with a dot inside, no spaces or control
// characters, at most MaxEmailLen bytes.
func CanonicalEmail(email string) (string, error) {
	bad := func(msg string) (string, error) {
		return "", Invalid("Invalid email address.", FieldError{Field: "email", Message: msg})
	}
	if !utf8.ValidString(email) {
		return bad("must be valid UTF-8")
	}
	e := strings.ToLower(strings.TrimSpace(email))
	switch {
	case e == "":
		return bad("must not be empty")
	case len(e) > MaxEmailLen:
		return bad("must be at most 254 bytes")
	case strings.IndexFunc(e, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return bad("must not contain spaces or control characters")
	case strings.Count(e, "@") != 1:
		return bad("must contain exactly one '@'")
	}
	local, host, _ := strings.Cut(e, "@")
	dot := strings.Index(host, ".")
	switch {
	case local == "" || len(local) > 64:
		return bad("the part before '@' must be 1 to 64 bytes")
	case dot <= 0 || strings.HasSuffix(host, ".") || strings.Contains(host, ".."):
		return bad("the domain must contain a dot between its labels")
	}
	return e, nil
}

// EmailClaimRef returns the aggregate of a canonical email address (see CanonicalEmail): under
// SystemTenantID, with the hexadecimal SHA-256 of the address as its id, so the address itself
// never appears in a subject.
func EmailClaimRef(canonicalEmail string) AggregateRef {
	sum := sha256.Sum256([]byte(canonicalEmail))
	return AggregateRef{TenantID: SystemTenantID, Type: EmailClaimAggregate, ID: hex.EncodeToString(sum[:])}
}

// EmailEventDefs returns the registry definitions of the email claim aggregate's events.
func EmailEventDefs() []EventDef {
	return []EventDef{{Type: EventEmailClaimed, Version: 1, New: func() Event { return new(EmailClaimed) }}}
}

// EmailClaimDecider is the email claim aggregate's behaviour.
func EmailClaimDecider() Decider[EmailClaim, EmailClaimCommand] {
	return Decider[EmailClaim, EmailClaimCommand]{
		AggregateType: EmailClaimAggregate,
		Initial:       func() EmailClaim { return EmailClaim{} },
		Evolve:        evolveEmailClaim,
		Decide:        decideEmailClaim,
	}
}

func evolveEmailClaim(s EmailClaim, e Event) EmailClaim {
	if e, ok := e.(*EmailClaimed); ok {
		s = EmailClaim{Email: e.Email, TenantID: e.TenantID, UserID: e.UserID, Purpose: e.Purpose,
			ClaimedAt: e.ClaimedAt, Claimed: true}
	}
	return s
}

func decideEmailClaim(s EmailClaim, c EmailClaimCommand) ([]Event, error) {
	cmd, ok := c.(ClaimEmail)
	if !ok {
		return nil, Errorf(EINVALID, "Unknown email claim command.")
	}
	email, err := CanonicalEmail(cmd.Email)
	if err != nil {
		return nil, err
	}
	var fields []FieldError
	if !IsUUID(cmd.TenantID) {
		fields = append(fields, FieldError{Field: "tenant_id", Message: "must be a UUID"})
	}
	if !IsUUID(cmd.UserID) {
		fields = append(fields, FieldError{Field: "user_id", Message: "must be a UUID"})
	}
	if cmd.Purpose != ClaimForSignup && cmd.Purpose != ClaimForInvite {
		fields = append(fields, FieldError{Field: "purpose", Message: "must be signup or invite"})
	}
	if len(fields) > 0 {
		return nil, Invalid("Invalid email claim.", fields...)
	}
	if s.Claimed {
		if s.TenantID == cmd.TenantID && s.UserID == cmd.UserID {
			return nil, nil
		}
		return nil, Errorf(ECONFLICT, "This email address is already registered.")
	}
	return []Event{&EmailClaimed{Email: email, TenantID: cmd.TenantID, UserID: cmd.UserID, Purpose: cmd.Purpose,
		ClaimedAt: cmd.At.UTC()}}, nil
}
