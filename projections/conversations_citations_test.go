package projections_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/migrations"
	"github.com/metachat/metachat/projections"
)

// replyWithCitations has a contact ask in a new conversation with the assistant on and the
// assistant reply citing two chunks; it returns the conversation and the citations.
func replyWithCitations(t *testing.T, w *convWorld, tenant string) (string, []domain.Citation) {
	t.Helper()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	id := uuid.NewString()
	w.do(t, tenant, id, domain.StartConversation{ConversationID: id, Channel: domain.ChannelWeb,
		Contact: domain.Contact{ExternalID: "v1"}, AssistantEnabled: true, At: at})
	asked := w.do(t, tenant, id, domain.SendMessage{MessageID: uuid.NewString(), Text: "How do I return a bike?",
		Author: domain.Author{Type: domain.AuthorContact, ID: "v1"}, At: at})
	cites := []domain.Citation{{DocumentID: uuid.NewString(), ChunkID: uuid.NewString(), Title: "Returns"},
		{DocumentID: uuid.NewString(), ChunkID: uuid.NewString(), Title: "Shipping"}}
	trigger := asked.Events[len(asked.Events)-1]
	ev, err := w.reg.Decode(trigger)
	if err != nil {
		t.Fatal(err)
	}
	res := w.do(t, tenant, id, domain.ReplyAsAssistant{TriggerMessageID: ev.(*domain.MessageSent).MessageID, TriggerSeq: 1,
		MessageID: uuid.NewString(), Text: "Send it back within 30 days [1][2].", Citations: cites, At: at.Add(time.Second),
		Retrieval: domain.RetrievalPerformed{Question: "How do I return a bike?", Embedder: "e", Model: "m", Outcome: domain.RetrievalAnswered},
		Usage:     domain.UsageRecorded{PromptTokens: 10, CompletionTokens: 5}})
	if len(res.Events) != 3 {
		t.Fatalf("reply decided %d events, want retrieval, usage and message", len(res.Events))
	}
	return id, cites
}

// TestConversationProjectionCitations: an assistant's reply is stored with its citations, which
// the messages read returns; other messages have none; the conversation counts the reply and its
// version is the reply's (the last event of the append).
func TestConversationProjectionCitations(t *testing.T) {
	t.Parallel()
	w := newConvWorld(t, nil)
	ctx := t.Context()
	tenant := uuid.NewString()
	id, cites := replyWithCitations(t, w, tenant)
	msgs, err := w.reader.Messages(ctx, tenant, id, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Citations != nil || msgs[1].Author.Type != domain.AuthorBot || !reflect.DeepEqual(msgs[1].Citations, cites) {
		t.Fatalf("messages %+v, want the question without citations and the reply with %+v", msgs, cites)
	}
	c, err := w.reader.Get(ctx, tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	v, err := w.store.Version(ctx, domain.AggregateRef{TenantID: tenant, Type: domain.ConversationAggregate, ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if c.MessageCount != 2 || c.Version != v {
		t.Errorf("conversation counts %d messages at version %d, want 2 at %d", c.MessageCount, c.Version, v)
	}
}

// TestCitationsMigrationUpgradesAnOldGeneration: a conversations generation created before
// citations existed (no column, its view without it) gets the column and the view from migration
// 0003, and then stores and shows citations.
func TestCitationsMigrationUpgradesAnOldGeneration(t *testing.T) {
	t.Parallel()
	w := newConvWorld(t, nil)
	ctx := t.Context()
	w.start(t, uuid.NewString(), domain.Contact{ExternalID: "x"}, time.Now()) // generation 1 is active
	g1 := projections.SchemaName(projections.ConversationsProjection, 1)
	// Make generation 1 what an older version created.
	if _, err := w.pools.Owner.Exec(ctx, `DROP VIEW public.messages;
		ALTER TABLE `+g1+`.messages DROP COLUMN citations;
		CREATE VIEW public.messages WITH (security_invoker = true) AS SELECT * FROM `+g1+`.messages;
		GRANT SELECT ON public.messages TO metachat_app, metachat_projector;`); err != nil {
		t.Fatal(err)
	}
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	var sql string
	for _, m := range all {
		if m.Version == 3 {
			sql = m.SQL
		}
	}
	if sql == "" {
		t.Fatal("no migration 0003")
	}
	for range 2 { // and it is harmless to run twice
		if _, err := w.pools.Owner.Exec(context.WithoutCancel(ctx), sql); err != nil {
			t.Fatalf("migration 0003: %v", err)
		}
	}
	tenant := uuid.NewString()
	id, cites := replyWithCitations(t, w, tenant)
	msgs, err := w.reader.Messages(ctx, tenant, id, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || !reflect.DeepEqual(msgs[1].Citations, cites) {
		t.Fatalf("messages %+v after the upgrade, want the reply with %+v", msgs, cites)
	}
}
