package domain

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Stored event type names of the assistant's replies, recorded in the conversation aggregate
// together with the reply's message.sent. Never change them.
const (
	// EventRetrievalPerformed records what the assistant retrieved and asked to answer one
	// customer message, so the answer can be explained later by replay.
	EventRetrievalPerformed = "retrieval.performed"
	// EventUsageRecorded records billable usage (model tokens).
	EventUsageRecorded = "usage.recorded"
)

// Outcomes of a retrieval (RetrievalPerformed.Outcome).
const (
	// RetrievalAnswered: the answerer answered from the retrieved passages (or said they do not
	// hold the answer).
	RetrievalAnswered = "answered"
	// RetrievalFallback: retrieval or the answerer failed or timed out; the reply is the polite
	// fallback.
	RetrievalFallback = "fallback"
)

// Usage kinds (UsageRecorded.Kind).
const (
	// UsageLLMTokens counts a chat model's prompt and completion tokens.
	UsageLLMTokens = "llm_tokens"
)

// Limits of the assistant's records.
const (
	MaxCitations        = 20
	MaxRetrievedChunks  = 50
	MaxCitationTitleLen = 200
	MaxModelNameLen     = 200
)

// Citation names a knowledge chunk a message's text draws on.
type Citation struct {
	DocumentID string `json:"document_id"`
	ChunkID    string `json:"chunk_id"`
	Title      string `json:"title"`
}

// RetrievedChunk is one chunk a retrieval returned, with its fused score.
type RetrievedChunk struct {
	DocumentID string  `json:"document_id"`
	ChunkID    string  `json:"chunk_id"`
	Score      float64 `json:"score"`
}

// RetrievalPerformed records one answer of the assistant: the customer message it answers
// (MessageID) and the reply it led to (ReplyMessageID), the question, the chunks retrieved with
// their scores, the embedder of the query, the model that answered and the sha256 of the exact
// prompt it was given. With the chunks' texts (document.chunked) that is enough to rebuild and
// explain the answer. Outcome is RetrievalAnswered or RetrievalFallback; Error is a short,
// bounded kind of failure for the fallback ("timeout", "unavailable", …).
type RetrievalPerformed struct {
	MessageID      string           `json:"message_id"`
	ReplyMessageID string           `json:"reply_message_id"`
	Question       string           `json:"question"`
	Chunks         []RetrievedChunk `json:"chunks"`
	Embedder       string           `json:"embedder"`
	Model          string           `json:"model"`
	PromptSHA256   string           `json:"prompt_sha256"`
	Outcome        string           `json:"outcome"`
	Error          string           `json:"error,omitempty"`
	PerformedAt    time.Time        `json:"performed_at"`
}

// UsageRecorded records billable usage caused in an aggregate: for a chat model's answer, its
// prompt and completion tokens. MessageID is the message whose handling caused it.
type UsageRecorded struct {
	Kind             string    `json:"kind"`
	Model            string    `json:"model"`
	MessageID        string    `json:"message_id,omitempty"`
	PromptTokens     int64     `json:"prompt_tokens"`
	CompletionTokens int64     `json:"completion_tokens"`
	TotalTokens      int64     `json:"total_tokens"`
	RecordedAt       time.Time `json:"recorded_at"`
}

// EventType implements Event.
func (*RetrievalPerformed) EventType() string { return EventRetrievalPerformed }

// EventType implements Event.
func (*UsageRecorded) EventType() string { return EventUsageRecorded }

// AssistantEventDefs returns the registry definitions of the assistant's events.
func AssistantEventDefs() []EventDef {
	return []EventDef{
		{Type: EventRetrievalPerformed, Version: 1, New: func() Event { return new(RetrievalPerformed) }},
		{Type: EventUsageRecorded, Version: 1, New: func() Event { return new(UsageRecorded) }},
	}
}

// ReplyAsAssistant adds the assistant's reply to one customer message (TriggerMessageID, at
// TriggerSeq): in one atomic append, retrieval.performed, usage.recorded (when Usage has tokens)
// and the bot's message.sent with its citations.
//
// Exactly one reply per customer message: a conversation remembers which messages the assistant
// answered (Conversation.AssistantReply), and a second reply to the same message decides nothing,
// at any time — so a redelivered trigger is harmless. The command also decides nothing when the
// assistant is switched off (a human took over) or the conversation is closed by the time the
// reply is ready. A trigger the conversation does not have (TriggerSeq 0 or beyond its last
// message) is EINVALID; a missing conversation ENOTFOUND.
type ReplyAsAssistant struct {
	TriggerMessageID string
	TriggerSeq       uint64
	// MessageID is the reply's id (a UUID), chosen by the caller.
	MessageID string
	Text      string
	Citations []Citation
	// Retrieval is recorded as retrieval.performed; its MessageID, ReplyMessageID and
	// PerformedAt are set by the decider.
	Retrieval RetrievalPerformed
	// Usage is recorded as usage.recorded when it counts any tokens; its MessageID and
	// RecordedAt are set by the decider.
	Usage UsageRecorded
	At    time.Time
}

// InspectConversation decides nothing: run through a command handler it returns the
// conversation's current state (a cached handler checks its state against the stored version
// first), for a reactor that must look before it works.
type InspectConversation struct{}

func (ReplyAsAssistant) conversationCommand()    {}
func (InspectConversation) conversationCommand() {}

// AssistantReply returns the assistant's reply to the message triggerMessageID, if it replied.
func (c Conversation) AssistantReply(triggerMessageID string) (MessageRef, bool) {
	return c.assistantReplies.get(strings.ToLower(triggerMessageID))
}

// AssistantShouldReply reports whether the assistant should answer a message of this conversation
// now: the conversation exists, is open, has the assistant on — and had it on when the message was
// sent (a message written during a takeover gets no reply when the assistant is switched on
// again) —, has the message (seq at most its last) and no reply to it yet.
func (c Conversation) AssistantShouldReply(triggerMessageID string, triggerSeq uint64) bool {
	if !c.Exists || !c.assistantOn(triggerSeq) || c.Status != ConversationStatusOpen || triggerSeq == 0 || triggerSeq > c.LastSeq {
		return false
	}
	_, replied := c.AssistantReply(triggerMessageID)
	return !replied
}

// assistantOn reports whether the assistant is on and was on when the message at seq was sent.
func (c Conversation) assistantOn(seq uint64) bool {
	return c.AssistantEnabled && seq > c.assistantAfterSeq
}

func decideAssistantReply(s Conversation, c ReplyAsAssistant) ([]Event, error) {
	if !s.Exists {
		return nil, convNotFound()
	}
	if _, replied := s.AssistantReply(c.TriggerMessageID); replied {
		return nil, nil
	}
	var fields []FieldError
	bad := func(field, msg string) { fields = append(fields, FieldError{Field: field, Message: msg}) }
	if !IsUUID(c.TriggerMessageID) {
		bad("trigger_message_id", "must be a UUID")
	}
	if c.TriggerSeq == 0 || c.TriggerSeq > s.LastSeq {
		bad("trigger_seq", "must be the seq of a message of the conversation")
	}
	if !IsUUID(c.MessageID) {
		bad("id", "must be a UUID")
	}
	if msg := convTextProblem(c.Text, MaxMessageTextLen, false, true); msg != "" {
		bad("text", msg)
	}
	if len(c.Citations) > MaxCitations {
		bad("citations", "must be at most 20")
	}
	citations := make([]Citation, len(c.Citations))
	for i, ct := range c.Citations {
		if !IsUUID(ct.DocumentID) || !IsUUID(ct.ChunkID) {
			bad("citations", "must name documents and chunks by UUID")
		}
		title := strings.ToValidUTF8(strings.TrimSpace(ct.Title), "")
		if utf8.RuneCountInString(title) > MaxCitationTitleLen {
			title = string([]rune(title)[:MaxCitationTitleLen])
		}
		citations[i] = Citation{DocumentID: strings.ToLower(ct.DocumentID), ChunkID: strings.ToLower(ct.ChunkID), Title: title}
	}
	r := c.Retrieval
	if len(r.Chunks) > MaxRetrievedChunks {
		bad("retrieval.chunks", "must be at most 50")
	}
	switch r.Outcome {
	case RetrievalAnswered, RetrievalFallback:
	default:
		bad("retrieval.outcome", "must be answered or fallback")
	}
	if msg := convLineProblem(r.Model, MaxModelNameLen, false); msg != "" {
		bad("retrieval.model", msg)
	}
	if c.Usage.PromptTokens < 0 || c.Usage.CompletionTokens < 0 || c.Usage.TotalTokens < 0 {
		bad("usage", "must not be negative")
	}
	if c.At.IsZero() {
		bad("at", "must be set")
	}
	if len(fields) > 0 {
		return nil, Invalid("Invalid assistant reply.", fields...)
	}
	// Taken over, or closed, meanwhile: the reply is not wanted any more.
	if !s.assistantOn(c.TriggerSeq) || s.Status != ConversationStatusOpen {
		return nil, nil
	}
	at := convTime(c.At)
	trigger, reply := strings.ToLower(c.TriggerMessageID), strings.ToLower(c.MessageID)
	r.MessageID, r.ReplyMessageID, r.PerformedAt = trigger, reply, at
	r.Chunks = append([]RetrievedChunk(nil), r.Chunks...)
	if r.Chunks == nil {
		r.Chunks = []RetrievedChunk{}
	}
	out := []Event{&r}
	if u := c.Usage; u.PromptTokens > 0 || u.CompletionTokens > 0 || u.TotalTokens > 0 {
		if u.Kind == "" {
			u.Kind = UsageLLMTokens
		}
		if u.Model == "" {
			u.Model = r.Model
		}
		if u.TotalTokens == 0 {
			u.TotalTokens = u.PromptTokens + u.CompletionTokens
		}
		u.MessageID, u.RecordedAt = trigger, at
		out = append(out, &u)
	}
	if len(citations) == 0 {
		citations = nil
	}
	// The message comes last, so the conversation's version is the message's event.
	return append(out, &MessageSent{
		MessageID: reply, Seq: s.LastSeq + 1, Text: c.Text, Author: Author{Type: AuthorBot},
		Citations: citations, SentAt: at,
	}), nil
}
