package domain

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ConversationAggregate is the aggregate type name of conversations. A conversation's messages
// live inside it (subject ev.<tenant>.conversation.<id>), so their order and numbering are decided
// in one consistency boundary.
const ConversationAggregate = "conversation"

// Stored event type names of the conversation aggregate. Never change them.
const (
	EventConversationStarted          = "conversation.started"
	EventConversationClosed           = "conversation.closed"
	EventConversationReopened         = "conversation.reopened"
	EventConversationAssigned         = "conversation.assigned"
	EventConversationUnassigned       = "conversation.unassigned"
	EventConversationAssistantChanged = "conversation.assistant_changed"
	EventMessageSent                  = "message.sent"
)

// Conversation channels.
const (
	ChannelAPI      = "api"
	ChannelWeb      = "web"
	ChannelWhatsApp = "whatsapp"
)

// Conversation statuses.
const (
	ConversationStatusOpen   = "open"
	ConversationStatusClosed = "closed"
)

// Message author types.
const (
	AuthorContact = "contact"
	AuthorUser    = "user"
	AuthorAPIKey  = "api_key"
	AuthorBot     = "bot"
	AuthorSystem  = "system"
)

// Limits of conversation and message fields, in characters (Unicode code points), as in the API
// contract.
const (
	MaxMessageTextLen     = 4000
	MaxClientMessageIDLen = 128
	MaxExternalIDLen      = 128
	MaxContactNameLen     = 200
	MaxContactEmailLen    = 254
	MaxAuthorIDLen        = 128
)

// Contact is who a conversation is with, as the tenant's own system knows them.
type Contact struct {
	ExternalID string `json:"external_id"`
	Name       string `json:"name,omitempty"`
	Email      string `json:"email,omitempty"`
}

// Author is who wrote a message.
type Author struct {
	Type string `json:"type"` // AuthorContact, AuthorUser, AuthorAPIKey, AuthorBot or AuthorSystem
	ID   string `json:"id,omitempty"`
}

// ConversationStarted records a new, open conversation.
type ConversationStarted struct {
	ConversationID   string    `json:"conversation_id"`
	Channel          string    `json:"channel"`
	Contact          Contact   `json:"contact"`
	AssistantEnabled bool      `json:"assistant_enabled"`
	StartedAt        time.Time `json:"started_at"`
}

// ConversationClosed records that a conversation was closed.
type ConversationClosed struct {
	ClosedAt time.Time `json:"closed_at"`
}

// ConversationReopened records that a closed conversation was opened again.
type ConversationReopened struct {
	ReopenedAt time.Time `json:"reopened_at"`
}

// ConversationAssigned records the user a conversation is assigned to.
type ConversationAssigned struct {
	AssigneeID string    `json:"assignee_id"`
	AssignedAt time.Time `json:"assigned_at"`
}

// ConversationUnassigned records that a conversation no longer has an assignee.
type ConversationUnassigned struct {
	UnassignedAt time.Time `json:"unassigned_at"`
}

// ConversationAssistantChanged records the assistant switched on or off (off: a human takes over).
type ConversationAssistantChanged struct {
	Enabled   bool      `json:"enabled"`
	ChangedAt time.Time `json:"changed_at"`
}

// MessageSent records one message of a conversation. Seq numbers a conversation's messages 1, 2,
// 3, … without gaps; ClientMessageID is the sender's de-duplication key, when it gave one.
type MessageSent struct {
	MessageID       string `json:"message_id"`
	Seq             uint64 `json:"seq"`
	Text            string `json:"text"`
	Author          Author `json:"author"`
	ClientMessageID string `json:"client_message_id,omitempty"`
	// Citations are the knowledge chunks a bot's reply draws on (none for other messages). An
	// optional field added to schema version 1: older payloads have none, older readers ignore it.
	Citations []Citation `json:"citations,omitempty"`
	SentAt    time.Time  `json:"sent_at"`
}

// EventType implements Event.
func (*ConversationStarted) EventType() string { return EventConversationStarted }

// EventType implements Event.
func (*ConversationClosed) EventType() string { return EventConversationClosed }

// EventType implements Event.
func (*ConversationReopened) EventType() string { return EventConversationReopened }

// EventType implements Event.
func (*ConversationAssigned) EventType() string { return EventConversationAssigned }

// EventType implements Event.
func (*ConversationUnassigned) EventType() string { return EventConversationUnassigned }

// EventType implements Event.
func (*ConversationAssistantChanged) EventType() string { return EventConversationAssistantChanged }

// EventType implements Event.
func (*MessageSent) EventType() string { return EventMessageSent }

// ConversationEventDefs returns the registry definitions of the conversation aggregate's events.
func ConversationEventDefs() []EventDef {
	return []EventDef{
		{Type: EventConversationStarted, Version: 1, New: func() Event { return new(ConversationStarted) }},
		{Type: EventConversationClosed, Version: 1, New: func() Event { return new(ConversationClosed) }},
		{Type: EventConversationReopened, Version: 1, New: func() Event { return new(ConversationReopened) }},
		{Type: EventConversationAssigned, Version: 1, New: func() Event { return new(ConversationAssigned) }},
		{Type: EventConversationUnassigned, Version: 1, New: func() Event { return new(ConversationUnassigned) }},
		{Type: EventConversationAssistantChanged, Version: 1, New: func() Event { return new(ConversationAssistantChanged) }},
		{Type: EventMessageSent, Version: 1, New: func() Event { return new(MessageSent) }},
	}
}

// MessageRef locates a message inside its conversation.
type MessageRef struct {
	ID  string
	Seq uint64
}

// Conversation is the decided state of one conversation. It is a value: Evolve never changes a
// state it is given (the client message index is persistent), so states may be cached and shared.
type Conversation struct {
	ID               string
	Channel          string
	Status           string
	Contact          Contact
	AssistantEnabled bool
	AssigneeID       string
	CreatedAt        time.Time
	// LastMessageAt is the time of the last message (zero: none yet).
	LastMessageAt time.Time
	// LastSeq is the seq of the last message, which is also the number of messages.
	LastSeq uint64
	Exists  bool
	// clientMessages maps each client_message_id given so far to its message.
	clientMessages clientIndex
	// assistantReplies maps each message the assistant answered to its reply.
	assistantReplies clientIndex
	// assistantAfterSeq is the last seq when the assistant was last switched on: messages up to
	// it were sent while it was off and get no reply.
	assistantAfterSeq uint64
}

// ClientMessage returns the message sent earlier with a client_message_id, if any.
func (c Conversation) ClientMessage(clientMessageID string) (MessageRef, bool) {
	return c.clientMessages.get(clientMessageID)
}

// ConversationCommand is a command addressed to the conversation aggregate.
type ConversationCommand interface {
	conversationCommand()
}

// StartConversation starts a conversation. With Idempotent, starting one that exists already
// decides nothing (the caller answers with the existing one: a retried create); without it, it is
// ECONFLICT.
type StartConversation struct {
	ConversationID   string
	Channel          string
	Contact          Contact
	AssistantEnabled bool
	Idempotent       bool
	At               time.Time
}

// UpdateConversation sets a conversation's status, assistant switch and assignee; nil fields (and
// SetAssignee false) are left alone. AssigneeID "" with SetAssignee unassigns. Values equal to the
// current ones decide nothing, so the command is safe to retry.
type UpdateConversation struct {
	Status           *string
	AssistantEnabled *bool
	SetAssignee      bool
	AssigneeID       string
	At               time.Time
}

// SendMessage adds a message with the next seq. The caller chooses the message id (a UUID).
//
// De-duplication: a ClientMessageID that the conversation has seen before decides nothing, at any
// time (the state remembers every one); the caller answers with the original message
// (Conversation.ClientMessage).
//
// A contact's message (Author.Type AuthorContact) must come from the conversation's own contact
// (Author.ID equal to Contact.ExternalID): for any other contact the conversation is ENOTFOUND.
//
// Closed conversations: a contact's message reopens the conversation (a conversation.reopened
// event precedes the message); anyone else's is refused with ECONFLICT until the conversation is
// reopened.
type SendMessage struct {
	MessageID       string
	Text            string
	Author          Author
	ClientMessageID string
	At              time.Time
}

func (StartConversation) conversationCommand()  {}
func (UpdateConversation) conversationCommand() {}
func (SendMessage) conversationCommand()        {}

// ConversationDecider is the conversation aggregate's behaviour.
func ConversationDecider() Decider[Conversation, ConversationCommand] {
	return Decider[Conversation, ConversationCommand]{
		AggregateType: ConversationAggregate,
		Initial:       func() Conversation { return Conversation{} },
		Evolve:        evolveConversation,
		Decide:        decideConversation,
	}
}

func evolveConversation(s Conversation, e Event) Conversation {
	switch e := e.(type) {
	case *ConversationStarted:
		s = Conversation{
			ID: e.ConversationID, Channel: e.Channel, Status: ConversationStatusOpen, Contact: e.Contact,
			AssistantEnabled: e.AssistantEnabled, CreatedAt: e.StartedAt, Exists: true,
		}
	case *ConversationClosed:
		s.Status = ConversationStatusClosed
	case *ConversationReopened:
		s.Status = ConversationStatusOpen
	case *ConversationAssigned:
		s.AssigneeID = e.AssigneeID
	case *ConversationUnassigned:
		s.AssigneeID = ""
	case *ConversationAssistantChanged:
		if e.Enabled && !s.AssistantEnabled {
			s.assistantAfterSeq = s.LastSeq
		}
		s.AssistantEnabled = e.Enabled
	case *RetrievalPerformed:
		// Recorded with its reply, in the same append, just before the reply's message.sent.
		s.assistantReplies = s.assistantReplies.with(e.MessageID, MessageRef{ID: e.ReplyMessageID, Seq: s.LastSeq + 1})
	case *MessageSent:
		s.LastSeq = e.Seq
		s.LastMessageAt = e.SentAt
		if e.ClientMessageID != "" {
			s.clientMessages = s.clientMessages.with(e.ClientMessageID, MessageRef{ID: e.MessageID, Seq: e.Seq})
		}
	}
	return s
}

func decideConversation(s Conversation, c ConversationCommand) ([]Event, error) {
	switch c := c.(type) {
	case StartConversation:
		return decideConvStart(s, c)
	case UpdateConversation:
		return decideConvUpdate(s, c)
	case SendMessage:
		return decideConvSend(s, c)
	case ReplyAsAssistant:
		return decideAssistantReply(s, c)
	case InspectConversation:
		return nil, nil
	default:
		return nil, Errorf(EINVALID, "Unknown conversation command.")
	}
}

// convTime is the time stored in events: UTC, at the microsecond precision of the read models.
func convTime(at time.Time) time.Time { return at.UTC().Truncate(time.Microsecond) }

func convNotFound() error { return Errorf(ENOTFOUND, "Conversation not found.") }

func decideConvStart(s Conversation, c StartConversation) ([]Event, error) {
	if s.Exists {
		if c.Idempotent {
			return nil, nil
		}
		return nil, Errorf(ECONFLICT, "The conversation already exists.")
	}
	var fields []FieldError
	bad := func(field, msg string) { fields = append(fields, FieldError{Field: field, Message: msg}) }
	if !IsUUID(c.ConversationID) {
		bad("id", "must be a UUID")
	}
	switch c.Channel {
	case ChannelAPI, ChannelWeb, ChannelWhatsApp:
	default:
		bad("channel", "must be api, web or whatsapp")
	}
	contact, cf := convContact(c.Contact)
	fields = append(fields, cf...)
	if c.At.IsZero() {
		bad("at", "must be set")
	}
	if len(fields) > 0 {
		return nil, Invalid("Invalid conversation.", fields...)
	}
	return []Event{&ConversationStarted{
		ConversationID: strings.ToLower(c.ConversationID), Channel: c.Channel, Contact: contact,
		AssistantEnabled: c.AssistantEnabled, StartedAt: convTime(c.At),
	}}, nil
}

func convContact(c Contact) (Contact, []FieldError) {
	var fields []FieldError
	bad := func(field, msg string) { fields = append(fields, FieldError{Field: "contact." + field, Message: msg}) }
	if msg := convLineProblem(c.ExternalID, MaxExternalIDLen, false); msg != "" {
		bad("external_id", msg)
	}
	c.Name = strings.TrimSpace(c.Name)
	if msg := convLineProblem(c.Name, MaxContactNameLen, true); msg != "" {
		bad("name", msg)
	}
	c.Email = strings.TrimSpace(c.Email)
	if c.Email != "" && !convEmailOK(c.Email) {
		bad("email", "must be an email address")
	}
	return c, fields
}

// convLineProblem describes what is wrong with a text field, "" when nothing: it must be valid UTF-8,
// without control characters (newlines and tabs are allowed in multiline text), at most max
// characters, and not blank unless empty is allowed.
func convLineProblem(s string, maxLen int, allowEmpty bool) string {
	return convTextProblem(s, maxLen, allowEmpty, false)
}

func convTextProblem(s string, maxLen int, allowEmpty, multiline bool) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case s == "" && allowEmpty:
		return ""
	case strings.TrimSpace(s) == "":
		return "must not be empty"
	case utf8.RuneCountInString(s) > maxLen:
		return "must be at most " + strconv.Itoa(maxLen) + " characters"
	}
	if strings.IndexFunc(s, func(r rune) bool {
		allowed := multiline && (r == '\n' || r == '\t' || r == '\r')
		return unicode.IsControl(r) && !allowed
	}) >= 0 {
		return "must not contain control characters"
	}
	return ""
}

// convEmailOK is a light check of an email address: local@domain, 3 to 254 characters, no spaces or
// control characters.
func convEmailOK(s string) bool {
	if len(s) < 3 || utf8.RuneCountInString(s) > MaxContactEmailLen || !utf8.ValidString(s) {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
}

func decideConvUpdate(s Conversation, c UpdateConversation) ([]Event, error) {
	if !s.Exists {
		return nil, convNotFound()
	}
	var fields []FieldError
	if c.Status != nil && *c.Status != ConversationStatusOpen && *c.Status != ConversationStatusClosed {
		fields = append(fields, FieldError{Field: "status", Message: "must be open or closed"})
	}
	if c.SetAssignee && c.AssigneeID != "" && !IsUUID(c.AssigneeID) {
		fields = append(fields, FieldError{Field: "assignee_id", Message: "must be a UUID or null"})
	}
	if c.At.IsZero() {
		fields = append(fields, FieldError{Field: "at", Message: "must be set"})
	}
	if len(fields) > 0 {
		return nil, Invalid("Invalid conversation update.", fields...)
	}
	at := convTime(c.At)
	var out []Event
	if c.Status != nil && *c.Status != s.Status {
		if *c.Status == ConversationStatusClosed {
			out = append(out, &ConversationClosed{ClosedAt: at})
		} else {
			out = append(out, &ConversationReopened{ReopenedAt: at})
		}
	}
	if c.AssistantEnabled != nil && *c.AssistantEnabled != s.AssistantEnabled {
		out = append(out, &ConversationAssistantChanged{Enabled: *c.AssistantEnabled, ChangedAt: at})
	}
	if c.SetAssignee {
		assignee := strings.ToLower(c.AssigneeID)
		switch assignee {
		case s.AssigneeID:
		case "":
			out = append(out, &ConversationUnassigned{UnassignedAt: at})
		default:
			out = append(out, &ConversationAssigned{AssigneeID: assignee, AssignedAt: at})
		}
	}
	return out, nil
}

func decideConvSend(s Conversation, c SendMessage) ([]Event, error) {
	// A contact writes only in their own conversation: to anyone else it does not exist.
	if !s.Exists || (c.Author.Type == AuthorContact && c.Author.ID != s.Contact.ExternalID) {
		return nil, convNotFound()
	}
	if c.ClientMessageID != "" {
		if _, seen := s.ClientMessage(c.ClientMessageID); seen {
			return nil, nil
		}
	}
	var fields []FieldError
	bad := func(field, msg string) { fields = append(fields, FieldError{Field: field, Message: msg}) }
	if !IsUUID(c.MessageID) {
		bad("id", "must be a UUID")
	}
	if msg := convTextProblem(c.Text, MaxMessageTextLen, false, true); msg != "" {
		bad("text", msg)
	}
	if c.ClientMessageID != "" {
		if msg := convLineProblem(c.ClientMessageID, MaxClientMessageIDLen, false); msg != "" {
			bad("client_message_id", msg)
		}
	}
	switch c.Author.Type {
	case AuthorContact, AuthorUser, AuthorAPIKey:
		if msg := convLineProblem(c.Author.ID, MaxAuthorIDLen, false); msg != "" {
			bad("author.id", msg)
		}
	case AuthorBot, AuthorSystem:
		if msg := convLineProblem(c.Author.ID, MaxAuthorIDLen, true); msg != "" {
			bad("author.id", msg)
		}
	default:
		bad("author.type", "must be contact, user, api_key, bot or system")
	}
	if c.At.IsZero() {
		bad("at", "must be set")
	}
	if len(fields) > 0 {
		return nil, Invalid("Invalid message.", fields...)
	}
	at := convTime(c.At)
	var out []Event
	if s.Status == ConversationStatusClosed {
		if c.Author.Type != AuthorContact {
			return nil, Errorf(ECONFLICT, "The conversation is closed; reopen it before sending a message.")
		}
		out = append(out, &ConversationReopened{ReopenedAt: at})
	}
	return append(out, &MessageSent{
		MessageID: strings.ToLower(c.MessageID), Seq: s.LastSeq + 1, Text: c.Text, Author: c.Author,
		ClientMessageID: c.ClientMessageID, SentAt: at,
	}), nil
}
