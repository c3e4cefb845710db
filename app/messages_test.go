package app_test

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// TestSendMessageOnceByClientMessageID: create → send → the list shows it at seq 1 → the same
// client_message_id again returns the original (not created), through this instance, through
// another one whose cache never saw it (only the decided state from the stream de-duplicates, as
// after JetStream's duplicate window), and through the Idempotency-Key.
func TestSendMessageOnceByClientMessageID(t *testing.T) {
	t.Parallel()
	h := newConvHarness(t)
	ctx := t.Context()
	p := convKey(uuid.NewString())
	c := h.create(t, p, domain.Contact{ExternalID: "x"})
	sent, err := h.svc.SendMessage(ctx, p, c.ID, app.SendMessageInput{Text: "Hello\nthere", ClientMessageID: "cm-1"})
	if err != nil {
		t.Fatal(err)
	}
	m := sent.Message
	if !sent.Created || m.Seq != 1 || m.Text != "Hello\nthere" || m.ClientMessageID != "cm-1" || m.ConversationID != c.ID ||
		m.Author != (domain.Author{Type: "api_key", ID: p.APIKeyID}) || !domain.IsUUID(m.ID) || m.CreatedAt.IsZero() || sent.Sequence == 0 {
		t.Fatalf("sent %+v", sent)
	}
	msgs, err := h.svc.ListMessages(ctx, p, c.ID, app.ListMessagesInput{})
	if err != nil || len(msgs) != 1 || !reflect.DeepEqual(msgs[0], m) {
		t.Fatalf("messages %+v, %v; want [%+v]", msgs, err, m)
	}

	fresh := h.service(t) // a new instance: empty cache
	for name, send := range map[string]func() (app.SentMessage, error){
		"same instance": func() (app.SentMessage, error) {
			return h.svc.SendMessage(ctx, p, c.ID, app.SendMessageInput{Text: "Hello\nthere", ClientMessageID: "cm-1"})
		},
		"fresh instance": func() (app.SentMessage, error) {
			return fresh.SendMessage(ctx, p, c.ID, app.SendMessageInput{Text: "different text", ClientMessageID: "cm-1"})
		},
		"idempotency key": func() (app.SentMessage, error) {
			return fresh.SendMessage(ctx, p, c.ID, app.SendMessageInput{Text: "Hello\nthere", IdempotencyKey: "cm-1"})
		},
	} {
		again, err := send()
		if err != nil || again.Created || !reflect.DeepEqual(again.Message, m) {
			t.Fatalf("%s: repeat answered %+v, %v; want the original %+v", name, again, err, m)
		}
	}
	msgs, err = h.svc.ListMessages(ctx, p, c.ID, app.ListMessagesInput{})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("after the repeats: %d messages, %v; want 1", len(msgs), err)
	}
	// The body's client_message_id wins over the Idempotency-Key; the next seq is 2.
	next, err := fresh.SendMessage(ctx, p, c.ID, app.SendMessageInput{Text: "two", ClientMessageID: "cm-2", IdempotencyKey: "cm-1"})
	if err != nil || !next.Created || next.Message.Seq != 2 || next.Message.ClientMessageID != "cm-2" {
		t.Fatalf("second message: %+v, %v", next, err)
	}
	if got, err := h.svc.Get(ctx, p, c.ID); err != nil || got.MessageCount != 2 || !got.LastMessageAt.Equal(next.Message.CreatedAt) {
		t.Fatalf("conversation after 2 messages: %+v, %v", got, err)
	}
}

// TestSendMessageConcurrentSenders: 20 senders at once on one conversation, through two
// instances, get seqs 1..20 without gaps or duplicates, and the list shows exactly those.
func TestSendMessageConcurrentSenders(t *testing.T) {
	t.Parallel()
	h := newConvHarness(t)
	ctx := t.Context()
	p := convAgent()
	c := h.create(t, p, domain.Contact{ExternalID: "x"})
	instances := []*app.Conversations{h.svc, h.service(t)}
	const senders = 20
	seqs := make([]int, senders)
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			svc := instances[i%len(instances)]
			sent, err := svc.SendMessage(ctx, p, c.ID, app.SendMessageInput{Text: fmt.Sprint("m", i), ClientMessageID: fmt.Sprint("c", i)})
			if err != nil || !sent.Created {
				t.Errorf("sender %d: %+v, %v", i, sent, err)
				return
			}
			seqs[i] = int(sent.Message.Seq)
		})
	}
	wg.Wait()
	sort.Ints(seqs)
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("seqs %v, want 1..%d", seqs, senders)
		}
	}
	msgs, err := h.svc.ListMessages(ctx, p, c.ID, app.ListMessagesInput{Limit: 200})
	if err != nil || len(msgs) != senders {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	texts := map[string]bool{}
	for i, m := range msgs {
		if m.Seq != uint64(i+1) || texts[m.Text] {
			t.Fatalf("message %d: %+v", i, m)
		}
		texts[m.Text] = true
	}
	// Paging by after_seq returns the same, gap-free.
	var paged []uint64
	for after := uint64(0); ; {
		page, err := h.svc.ListMessages(ctx, p, c.ID, app.ListMessagesInput{AfterSeq: after, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			paged = append(paged, m.Seq)
		}
		if len(page) < 7 {
			break
		}
		after = page[len(page)-1].Seq
	}
	if len(paged) != senders || paged[0] != 1 || paged[senders-1] != senders {
		t.Fatalf("paged seqs %v", paged)
	}
}

// TestSendMessageRules: closed conversations refuse agents' messages, text limits, missing
// conversations.
func TestSendMessageRules(t *testing.T) {
	t.Parallel()
	h := newConvHarness(t)
	ctx := t.Context()
	p := convAgent()
	c := h.create(t, p, domain.Contact{ExternalID: "x"})
	if sent, err := h.svc.SendMessage(ctx, p, c.ID, app.SendMessageInput{Text: strings.Repeat("é", 4000)}); err != nil ||
		sent.Message.Author != (domain.Author{Type: "user", ID: p.UserID}) {
		t.Fatalf("4000 characters: %+v, %v", sent.Message.Author, err)
	}
	for name, text := range map[string]string{"empty": "", "blank": " \n\t", "too long": strings.Repeat("é", 4001), "NUL": "a\x00"} {
		if _, err := h.svc.SendMessage(ctx, p, c.ID, app.SendMessageInput{Text: text}); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%s text: %v, want EINVALID", name, err)
		}
	}
	if _, err := h.svc.SendMessage(ctx, p, c.ID, app.SendMessageInput{Text: "x", ClientMessageID: strings.Repeat("k", 129)}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("long client_message_id: %v", err)
	}
	closed, open := "closed", "open"
	if _, err := h.svc.Update(ctx, p, c.ID, app.UpdateConversationInput{Status: &closed}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.SendMessage(ctx, p, c.ID, app.SendMessageInput{Text: "hi"}); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Fatalf("send to a closed conversation: %v, want ECONFLICT", err)
	}
	if _, err := h.svc.Update(ctx, p, c.ID, app.UpdateConversationInput{Status: &open}); err != nil {
		t.Fatal(err)
	}
	if sent, err := h.svc.SendMessage(ctx, p, c.ID, app.SendMessageInput{Text: "hi"}); err != nil || sent.Message.Seq != 2 {
		t.Fatalf("send after reopening: %+v, %v", sent, err)
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if _, err := h.svc.SendMessage(ctx, p, id, app.SendMessageInput{Text: "hi"}); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("send to %s: %v", id, err)
		}
		if _, err := h.svc.ListMessages(ctx, p, id, app.ListMessagesInput{}); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("messages of %s: %v", id, err)
		}
	}
	if _, err := h.svc.ListMessages(ctx, p, c.ID, app.ListMessagesInput{Limit: -1}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("limit -1: %v", err)
	}
}
