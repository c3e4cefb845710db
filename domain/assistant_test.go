package domain_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

const (
	replyID = "019abc40-0000-7000-8000-00000000d0ff"
	docID   = "019abc40-0000-7000-8000-0000000e0001"
	chunkID = "019abc40-0000-7000-8000-0000000f0001"
)

// TestAssistantReplyDecider: one reply per customer message, in one decision of retrieval,
// usage and message; nothing when already answered, taken over or closed.
func TestAssistantReplyDecider(t *testing.T) {
	d := domain.ConversationDecider()
	at := time.Date(2026, 2, 1, 10, 0, 0, 123456789, time.UTC)
	atUs := at.Truncate(time.Microsecond)
	contact := domain.Author{Type: domain.AuthorContact, ID: "crm-1"}
	started := &domain.ConversationStarted{ConversationID: convID, Channel: domain.ChannelWeb,
		Contact: domain.Contact{ExternalID: "crm-1"}, AssistantEnabled: true, StartedAt: atUs}
	asked := &domain.MessageSent{MessageID: msgID1, Seq: 1, Text: "How do I fix a flat tyre?", Author: contact, SentAt: atUs}
	cites := []domain.Citation{{DocumentID: strings.ToUpper(docID), ChunkID: chunkID, Title: " Bike care "}}
	chunks := []domain.RetrievedChunk{{DocumentID: docID, ChunkID: chunkID, Score: 0.03}}
	reply := func(mod func(*domain.ReplyAsAssistant)) domain.ReplyAsAssistant {
		c := domain.ReplyAsAssistant{TriggerMessageID: msgID1, TriggerSeq: 1, MessageID: replyID, Text: "Patch it [1].",
			Citations: cites, At: at,
			Retrieval: domain.RetrievalPerformed{Question: asked.Text, Chunks: chunks, Embedder: "local-lexical-v1",
				Model: "openai:m", PromptSHA256: "abc", Outcome: domain.RetrievalAnswered},
			Usage: domain.UsageRecorded{PromptTokens: 100, CompletionTokens: 20}}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	retrieval := &domain.RetrievalPerformed{MessageID: msgID1, ReplyMessageID: replyID, Question: asked.Text, Chunks: chunks,
		Embedder: "local-lexical-v1", Model: "openai:m", PromptSHA256: "abc", Outcome: domain.RetrievalAnswered, PerformedAt: atUs}
	usage := &domain.UsageRecorded{Kind: domain.UsageLLMTokens, Model: "openai:m", MessageID: msgID1, PromptTokens: 100,
		CompletionTokens: 20, TotalTokens: 120, RecordedAt: atUs}
	botMsg := &domain.MessageSent{MessageID: replyID, Seq: 2, Text: "Patch it [1].", Author: domain.Author{Type: domain.AuthorBot},
		Citations: []domain.Citation{{DocumentID: docID, ChunkID: chunkID, Title: "Bike care"}}, SentAt: atUs}
	tests := []struct {
		name     string
		history  []domain.Event
		cmd      domain.ConversationCommand
		want     []domain.Event
		wantCode string
	}{
		{"reply: retrieval, usage, then the message", []domain.Event{started, asked}, reply(nil), []domain.Event{retrieval, usage, botMsg}, ""},
		{"no tokens, no usage", []domain.Event{started, asked}, reply(func(c *domain.ReplyAsAssistant) { c.Usage = domain.UsageRecorded{} }),
			[]domain.Event{retrieval, botMsg}, ""},
		{"second reply to the same message decides nothing", []domain.Event{started, asked, retrieval, usage, botMsg},
			reply(func(c *domain.ReplyAsAssistant) { c.MessageID = msgID2 }), nil, ""},
		{"taken over meanwhile", []domain.Event{started, asked, &domain.ConversationAssistantChanged{Enabled: false}}, reply(nil), nil, ""},
		{"closed meanwhile", []domain.Event{started, asked, &domain.ConversationClosed{}}, reply(nil), nil, ""},
		{"unknown trigger seq", []domain.Event{started, asked}, reply(func(c *domain.ReplyAsAssistant) { c.TriggerSeq = 2 }), nil, domain.EINVALID},
		{"empty text", []domain.Event{started, asked}, reply(func(c *domain.ReplyAsAssistant) { c.Text = " " }), nil, domain.EINVALID},
		{"text over the limit", []domain.Event{started, asked}, reply(func(c *domain.ReplyAsAssistant) { c.Text = strings.Repeat("a", 4001) }), nil, domain.EINVALID},
		{"citation without ids", []domain.Event{started, asked}, reply(func(c *domain.ReplyAsAssistant) { c.Citations = []domain.Citation{{Title: "x"}} }), nil, domain.EINVALID},
		{"unknown outcome", []domain.Event{started, asked}, reply(func(c *domain.ReplyAsAssistant) { c.Retrieval.Outcome = "maybe" }), nil, domain.EINVALID},
		{"no model", []domain.Event{started, asked}, reply(func(c *domain.ReplyAsAssistant) { c.Retrieval.Model = "" }), nil, domain.EINVALID},
		{"missing conversation", nil, reply(nil), nil, domain.ENOTFOUND},
		{"inspect decides nothing", []domain.Event{started, asked}, domain.InspectConversation{}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Decide(d.Fold(tt.history), tt.cmd)
			if code := domain.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("error code %q (%v), want %q", code, err, tt.wantCode)
			}
			if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
				t.Fatalf("events %s, want %s", dump(got), dump(tt.want))
			}
		})
	}
}

// TestAssistantReplyState: the state remembers what the assistant answered, and whether it should
// answer a message now.
func TestAssistantReplyState(t *testing.T) {
	d := domain.ConversationDecider()
	contact := domain.Author{Type: domain.AuthorContact, ID: "crm-1"}
	s := d.Fold([]domain.Event{
		&domain.ConversationStarted{ConversationID: convID, Channel: "web", Contact: domain.Contact{ExternalID: "crm-1"}, AssistantEnabled: true},
		&domain.MessageSent{MessageID: msgID1, Seq: 1, Text: "q", Author: contact},
	})
	if !s.AssistantShouldReply(msgID1, 1) {
		t.Fatal("should reply to an unanswered message")
	}
	if s.AssistantShouldReply(msgID2, 2) {
		t.Fatal("should not reply to a message beyond the last seq")
	}
	s = d.Evolve(s, &domain.RetrievalPerformed{MessageID: msgID1, ReplyMessageID: replyID})
	s = d.Evolve(s, &domain.UsageRecorded{PromptTokens: 1})
	s = d.Evolve(s, &domain.MessageSent{MessageID: replyID, Seq: 2, Text: "a", Author: domain.Author{Type: domain.AuthorBot}})
	if ref, ok := s.AssistantReply(strings.ToUpper(msgID1)); !ok || ref != (domain.MessageRef{ID: replyID, Seq: 2}) {
		t.Fatalf("AssistantReply = %+v %v", ref, ok)
	}
	if s.AssistantShouldReply(msgID1, 1) {
		t.Fatal("should not reply twice")
	}
	off := d.Evolve(s, &domain.MessageSent{MessageID: msgID2, Seq: 3, Text: "q2", Author: contact})
	if !off.AssistantShouldReply(msgID2, 3) {
		t.Fatal("should reply to the next message")
	}
	off = d.Evolve(off, &domain.ConversationAssistantChanged{Enabled: false})
	if off.AssistantShouldReply(msgID2, 3) {
		t.Fatal("should not reply once taken over")
	}
	// Switched on again: the message written during the takeover still gets no reply, the next
	// one does.
	on := d.Evolve(off, &domain.ConversationAssistantChanged{Enabled: true})
	if on.AssistantShouldReply(msgID2, 3) {
		t.Fatal("should not reply to a message sent during the takeover")
	}
	evs, err := d.Decide(on, domain.ReplyAsAssistant{TriggerMessageID: msgID2, TriggerSeq: 3, MessageID: replyID, Text: "a",
		Retrieval: domain.RetrievalPerformed{Model: "m", Outcome: domain.RetrievalAnswered}, At: time.Now()})
	if err != nil || len(evs) != 0 {
		t.Fatalf("reply to a message sent during the takeover: %s, %v; want nothing", dump(evs), err)
	}
	on = d.Evolve(on, &domain.MessageSent{MessageID: msgID1[:35] + "9", Seq: 4, Text: "q3", Author: contact})
	if !on.AssistantShouldReply(msgID1[:35]+"9", 4) {
		t.Fatal("should reply to a message sent after the assistant came back")
	}
}

// TestMessageCitationsRoundTrip: citations survive the registry, and a message without them keeps
// the payload of schema version 1 unchanged.
func TestMessageCitationsRoundTrip(t *testing.T) {
	reg := domain.NewDefaultRegistry()
	m := &domain.MessageSent{MessageID: replyID, Seq: 2, Text: "a", Author: domain.Author{Type: domain.AuthorBot},
		Citations: []domain.Citation{{DocumentID: docID, ChunkID: chunkID, Title: "Bike care"}}, SentAt: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}
	typ, v, payload, err := reg.Encode(m)
	if err != nil || typ != domain.EventMessageSent || v != 1 {
		t.Fatalf("encode: %s v%d %v", typ, v, err)
	}
	ev, err := reg.Decode(domain.Envelope{Type: typ, SchemaVersion: v, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ev, m) {
		t.Fatalf("decoded %+v, want %+v", ev, m)
	}
	m.Citations = nil
	if _, _, payload, _ = reg.Encode(m); strings.Contains(string(payload), "citations") {
		t.Fatalf("a message without citations encodes them: %s", payload)
	}
}
