package app_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// textModel answers whatever it was given.
type textModel string

func (textModel) Model() string { return "test:fuzz" }
func (m textModel) Complete(context.Context, app.ChatRequest) (app.ChatCompletion, error) {
	return app.ChatCompletion{Content: string(m)}, nil
}

// FuzzChatAnswerCitations: whatever a model writes, the cited passage numbers are passages that
// exist, each once.
func FuzzChatAnswerCitations(f *testing.F) {
	f.Add("Patch the tube [2]. Keep it inflated [2][1], see [1, 3] and [99].")
	f.Add("[0][-1][01][1,,2]")
	passages := []app.Passage{{N: 1, Title: "a"}, {N: 2, Title: "b"}, {N: 3, Title: "c"}}
	f.Fuzz(func(t *testing.T, text string) {
		ans, err := app.NewChatAnswerer(textModel(text), 0).Answer(context.Background(), app.AnswerInput{Question: "q", Passages: passages})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for _, n := range ans.Cited {
			if n < 1 || n > len(passages) || seen[n] {
				t.Fatalf("cited %v for %q", ans.Cited, text)
			}
			seen[n] = true
		}
	})
}

// FuzzCleanReply: whatever a model writes, the cleaned reply is a message the conversation
// accepts (or empty, which the assistant replaces with the fallback).
func FuzzCleanReply(f *testing.F) {
	f.Add("Hello\r\nthere\x00 [1]")
	f.Add(strings.Repeat("é", 4100))
	f.Add("\xff\xfe")
	d := domain.ConversationDecider()
	state := d.Fold([]domain.Event{
		&domain.ConversationStarted{ConversationID: "019abc40-0000-7000-8000-00000000c001", Channel: "web",
			Contact: domain.Contact{ExternalID: "v"}, AssistantEnabled: true, StartedAt: time.Now()},
		&domain.MessageSent{MessageID: "019abc40-0000-7000-8000-00000000d001", Seq: 1, Text: "q", Author: domain.Author{Type: domain.AuthorContact, ID: "v"}},
	})
	f.Fuzz(func(t *testing.T, text string) {
		s := app.CleanReplyForTest(text)
		if s == "" {
			return
		}
		if !utf8.ValidString(s) || utf8.RuneCountInString(s) > domain.MaxMessageTextLen ||
			strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) >= 0 {
			t.Fatalf("cleaned %q to %q", text, s)
		}
		if strings.TrimSpace(s) == "" {
			return
		}
		_, err := d.Decide(state, domain.ReplyAsAssistant{TriggerMessageID: "019abc40-0000-7000-8000-00000000d001", TriggerSeq: 1,
			MessageID: "019abc40-0000-7000-8000-00000000d0ff", Text: s, At: time.Now(),
			Retrieval: domain.RetrievalPerformed{Model: "m", Outcome: domain.RetrievalAnswered}})
		if err != nil {
			t.Fatalf("the conversation refuses the cleaned %q: %v", s, err)
		}
	})
}
