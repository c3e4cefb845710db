package domain_test

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/metachat/metachat/domain"
)

const (
	convID   = "019abc40-0000-7000-8000-00000000c001"
	msgID1   = "019abc40-0000-7000-8000-00000000d001"
	msgID2   = "019abc40-0000-7000-8000-00000000d002"
	userID   = "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5aff"
	otherUID = "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5a77"
)

func ptr[T any](v T) *T { return &v }

func TestConversationDecider(t *testing.T) {
	d := domain.ConversationDecider()
	at := time.Date(2026, 2, 1, 10, 0, 0, 123456789, time.UTC)
	atUs := at.Truncate(time.Microsecond)
	contact := domain.Contact{ExternalID: "crm-1", Name: "Ada", Email: "ada@example.com"}
	started := &domain.ConversationStarted{ConversationID: convID, Channel: domain.ChannelAPI, Contact: contact, AssistantEnabled: true, StartedAt: atUs}
	user := domain.Author{Type: domain.AuthorUser, ID: userID}
	contactAuthor := domain.Author{Type: domain.AuthorContact, ID: "crm-1"}
	sent1 := &domain.MessageSent{MessageID: msgID1, Seq: 1, Text: "hi", Author: user, ClientMessageID: "c-1", SentAt: atUs}
	closed := &domain.ConversationClosed{ClosedAt: atUs}
	send := func(id, text, client string, a domain.Author) domain.SendMessage {
		return domain.SendMessage{MessageID: id, Text: text, Author: a, ClientMessageID: client, At: at}
	}
	tests := []struct {
		name     string
		history  []domain.Event
		cmd      domain.ConversationCommand
		want     []domain.Event
		wantCode string
	}{
		{"start", nil, domain.StartConversation{ConversationID: convID, Channel: "api", Contact: domain.Contact{ExternalID: "crm-1", Name: " Ada ", Email: " ada@example.com"}, AssistantEnabled: true, At: at},
			[]domain.Event{started}, ""},
		{"start upper-case id is stored lower-case", nil, domain.StartConversation{ConversationID: strings.ToUpper(convID), Channel: "api", Contact: contact, AssistantEnabled: true, At: at},
			[]domain.Event{started}, ""},
		{"start twice", []domain.Event{started}, domain.StartConversation{ConversationID: convID, Channel: "api", Contact: contact, At: at}, nil, domain.ECONFLICT},
		{"start twice idempotently", []domain.Event{started}, domain.StartConversation{ConversationID: convID, Channel: "api", Contact: contact, Idempotent: true, At: at}, nil, ""},
		{"start bad channel", nil, domain.StartConversation{ConversationID: convID, Channel: "sms", Contact: contact, At: at}, nil, domain.EINVALID},
		{"start bad id", nil, domain.StartConversation{ConversationID: "c1", Channel: "api", Contact: contact, At: at}, nil, domain.EINVALID},
		{"start without external id", nil, domain.StartConversation{ConversationID: convID, Channel: "web", Contact: domain.Contact{ExternalID: " "}, At: at}, nil, domain.EINVALID},
		{"start long external id", nil, domain.StartConversation{ConversationID: convID, Channel: "web", Contact: domain.Contact{ExternalID: strings.Repeat("x", 129)}, At: at}, nil, domain.EINVALID},
		{"start long name", nil, domain.StartConversation{ConversationID: convID, Channel: "web", Contact: domain.Contact{ExternalID: "x", Name: strings.Repeat("é", 201)}, At: at}, nil, domain.EINVALID},
		{"start bad email", nil, domain.StartConversation{ConversationID: convID, Channel: "web", Contact: domain.Contact{ExternalID: "x", Email: "not an email"}, At: at}, nil, domain.EINVALID},
		{"start without time", nil, domain.StartConversation{ConversationID: convID, Channel: "web", Contact: contact}, nil, domain.EINVALID},

		{"first message gets seq 1", []domain.Event{started}, send(msgID1, "hi", "c-1", user), []domain.Event{sent1}, ""},
		{"next message gets seq 2", []domain.Event{started, sent1}, send(msgID2, "again", "", user),
			[]domain.Event{&domain.MessageSent{MessageID: msgID2, Seq: 2, Text: "again", Author: user, SentAt: atUs}}, ""},
		{"repeated client_message_id decides nothing", []domain.Event{started, sent1}, send(msgID2, "hi", "c-1", user), nil, ""},
		{"repeat wins over validation", []domain.Event{started, sent1}, send("not-a-uuid", "", "c-1", user), nil, ""},
		{"message to a missing conversation", nil, send(msgID1, "hi", "", user), nil, domain.ENOTFOUND},
		{"empty text", []domain.Event{started}, send(msgID1, " \n ", "", user), nil, domain.EINVALID},
		{"text at the limit", []domain.Event{started}, send(msgID1, strings.Repeat("ü", 4000), "", user),
			[]domain.Event{&domain.MessageSent{MessageID: msgID1, Seq: 1, Text: strings.Repeat("ü", 4000), Author: user, SentAt: atUs}}, ""},
		{"text over the limit", []domain.Event{started}, send(msgID1, strings.Repeat("ü", 4001), "", user), nil, domain.EINVALID},
		{"text with a control character", []domain.Event{started}, send(msgID1, "a\x00b", "", user), nil, domain.EINVALID},
		{"text not UTF-8", []domain.Event{started}, send(msgID1, "a\xffb", "", user), nil, domain.EINVALID},
		{"long client_message_id", []domain.Event{started}, send(msgID1, "hi", strings.Repeat("k", 129), user), nil, domain.EINVALID},
		{"bad message id", []domain.Event{started}, send("m-1", "hi", "", user), nil, domain.EINVALID},
		{"unknown author type", []domain.Event{started}, send(msgID1, "hi", "", domain.Author{Type: "robot", ID: "r"}), nil, domain.EINVALID},
		{"user without id", []domain.Event{started}, send(msgID1, "hi", "", domain.Author{Type: domain.AuthorUser}), nil, domain.EINVALID},
		{"bot without id", []domain.Event{started}, send(msgID1, "hi", "", domain.Author{Type: domain.AuthorBot}),
			[]domain.Event{&domain.MessageSent{MessageID: msgID1, Seq: 1, Text: "hi", Author: domain.Author{Type: domain.AuthorBot}, SentAt: atUs}}, ""},
		{"agent message to a closed conversation", []domain.Event{started, closed}, send(msgID1, "hi", "", user), nil, domain.ECONFLICT},
		{"bot message to a closed conversation", []domain.Event{started, closed}, send(msgID1, "hi", "", domain.Author{Type: domain.AuthorBot}), nil, domain.ECONFLICT},
		{"contact message reopens a closed conversation", []domain.Event{started, closed}, send(msgID1, "hi", "", contactAuthor),
			[]domain.Event{&domain.ConversationReopened{ReopenedAt: atUs}, &domain.MessageSent{MessageID: msgID1, Seq: 1, Text: "hi", Author: contactAuthor, SentAt: atUs}}, ""},
		{"repeat to a closed conversation returns the original", []domain.Event{started, sent1, closed}, send(msgID2, "hi", "c-1", user), nil, ""},

		{"close", []domain.Event{started}, domain.UpdateConversation{Status: ptr("closed"), At: at}, []domain.Event{closed}, ""},
		{"close a closed one", []domain.Event{started, closed}, domain.UpdateConversation{Status: ptr("closed"), At: at}, nil, ""},
		{"reopen", []domain.Event{started, closed}, domain.UpdateConversation{Status: ptr("open"), At: at}, []domain.Event{&domain.ConversationReopened{ReopenedAt: atUs}}, ""},
		{"bad status", []domain.Event{started}, domain.UpdateConversation{Status: ptr("archived"), At: at}, nil, domain.EINVALID},
		{"assistant off", []domain.Event{started}, domain.UpdateConversation{AssistantEnabled: ptr(false), At: at},
			[]domain.Event{&domain.ConversationAssistantChanged{Enabled: false, ChangedAt: atUs}}, ""},
		{"assistant already on", []domain.Event{started}, domain.UpdateConversation{AssistantEnabled: ptr(true), At: at}, nil, ""},
		{"assign", []domain.Event{started}, domain.UpdateConversation{SetAssignee: true, AssigneeID: userID, At: at},
			[]domain.Event{&domain.ConversationAssigned{AssigneeID: userID, AssignedAt: atUs}}, ""},
		{"assign the same user", []domain.Event{started, &domain.ConversationAssigned{AssigneeID: userID}}, domain.UpdateConversation{SetAssignee: true, AssigneeID: strings.ToUpper(userID), At: at}, nil, ""},
		{"reassign", []domain.Event{started, &domain.ConversationAssigned{AssigneeID: userID}}, domain.UpdateConversation{SetAssignee: true, AssigneeID: otherUID, At: at},
			[]domain.Event{&domain.ConversationAssigned{AssigneeID: otherUID, AssignedAt: atUs}}, ""},
		{"unassign", []domain.Event{started, &domain.ConversationAssigned{AssigneeID: userID}}, domain.UpdateConversation{SetAssignee: true, At: at},
			[]domain.Event{&domain.ConversationUnassigned{UnassignedAt: atUs}}, ""},
		{"unassign nobody", []domain.Event{started}, domain.UpdateConversation{SetAssignee: true, At: at}, nil, ""},
		{"assign a non-uuid", []domain.Event{started}, domain.UpdateConversation{SetAssignee: true, AssigneeID: "bob", At: at}, nil, domain.EINVALID},
		{"everything at once", []domain.Event{started}, domain.UpdateConversation{Status: ptr("closed"), AssistantEnabled: ptr(false), SetAssignee: true, AssigneeID: userID, At: at},
			[]domain.Event{closed, &domain.ConversationAssistantChanged{Enabled: false, ChangedAt: atUs}, &domain.ConversationAssigned{AssigneeID: userID, AssignedAt: atUs}}, ""},
		{"invalid update changes nothing", []domain.Event{started}, domain.UpdateConversation{Status: ptr("closed"), SetAssignee: true, AssigneeID: "bob", At: at}, nil, domain.EINVALID},
		{"update a missing conversation", nil, domain.UpdateConversation{Status: ptr("closed"), At: at}, nil, domain.ENOTFOUND},
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

func dump(evs []domain.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s%+v ", e.EventType(), e)
	}
	return "[" + b.String() + "]"
}

func TestConversationFold(t *testing.T) {
	d := domain.ConversationDecider()
	at := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	s := d.Fold([]domain.Event{
		&domain.ConversationStarted{ConversationID: convID, Channel: "web", Contact: domain.Contact{ExternalID: "x"}, StartedAt: at},
		&domain.ConversationAssigned{AssigneeID: userID},
		&domain.ConversationAssistantChanged{Enabled: true},
		&domain.ConversationClosed{},
		&domain.MessageSent{MessageID: msgID1, Seq: 1, Text: "a", ClientMessageID: "k1", SentAt: at.Add(time.Minute)},
		&domain.ConversationReopened{},
		&domain.ConversationUnassigned{},
	})
	want := domain.Conversation{ID: convID, Channel: "web", Status: "open", Contact: domain.Contact{ExternalID: "x"},
		AssistantEnabled: true, CreatedAt: at, LastMessageAt: at.Add(time.Minute), LastSeq: 1, Exists: true}
	if ref, ok := s.ClientMessage("k1"); !ok || ref != (domain.MessageRef{ID: msgID1, Seq: 1}) {
		t.Fatalf("ClientMessage(k1) = %+v %v", ref, ok)
	}
	if _, ok := s.ClientMessage("k2"); ok {
		t.Fatal("ClientMessage(k2) found")
	}
	if s.ID != want.ID || s.Channel != want.Channel || s.Status != want.Status || s.Contact != want.Contact ||
		s.AssistantEnabled != want.AssistantEnabled || s.AssigneeID != "" || !s.CreatedAt.Equal(want.CreatedAt) ||
		!s.LastMessageAt.Equal(want.LastMessageAt) || s.LastSeq != 1 || !s.Exists {
		t.Fatalf("folded state %+v, want %+v", s, want)
	}
}

// TestConversationClientIndexIsPersistent checks the client_message_id index: every id sent is
// found with its seq, the states before an id was sent never see it (Evolve shares, never
// changes, the index), and states can be read concurrently while others are evolved from them.
func TestConversationClientIndexIsPersistent(t *testing.T) {
	d := domain.ConversationDecider()
	const n = 20000
	s := d.Fold([]domain.Event{&domain.ConversationStarted{ConversationID: convID, Channel: "api", Contact: domain.Contact{ExternalID: "x"}}})
	states := make([]domain.Conversation, 0, n+1)
	states = append(states, s)
	for i := 1; i <= n; i++ {
		s = d.Evolve(s, &domain.MessageSent{MessageID: fmt.Sprintf("m-%d", i), Seq: uint64(i), ClientMessageID: fmt.Sprintf("k-%d", i)})
		states = append(states, s)
	}
	for i := 1; i <= n; i++ {
		ref, ok := s.ClientMessage(fmt.Sprintf("k-%d", i))
		if !ok || ref.Seq != uint64(i) || ref.ID != fmt.Sprintf("m-%d", i) {
			t.Fatalf("k-%d: %+v %v", i, ref, ok)
		}
	}
	for _, i := range []int{0, 1, 17, 999, n / 2} {
		old := states[i]
		if _, ok := old.ClientMessage(fmt.Sprintf("k-%d", i+1)); ok {
			t.Fatalf("state %d sees the id of message %d", i, i+1)
		}
		if i > 0 {
			if ref, ok := old.ClientMessage(fmt.Sprintf("k-%d", i)); !ok || ref.Seq != uint64(i) {
				t.Fatalf("state %d lost its own id: %+v %v", i, ref, ok)
			}
		}
	}
	// Two branches from one state do not see each other.
	base := states[100]
	a := d.Evolve(base, &domain.MessageSent{MessageID: "a", Seq: 101, ClientMessageID: "branch"})
	b := d.Evolve(base, &domain.MessageSent{MessageID: "b", Seq: 101, ClientMessageID: "branch"})
	if ra, _ := a.ClientMessage("branch"); ra.ID != "a" {
		t.Fatalf("branch a: %+v", ra)
	}
	if rb, _ := b.ClientMessage("branch"); rb.ID != "b" {
		t.Fatalf("branch b: %+v", rb)
	}
	if _, ok := base.ClientMessage("branch"); ok {
		t.Fatal("the base state sees a branch's id")
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			st := base
			for i := range 500 {
				st = d.Evolve(st, &domain.MessageSent{MessageID: "x", Seq: uint64(101 + i), ClientMessageID: fmt.Sprintf("g%d-%d", g, i)})
				if _, ok := base.ClientMessage("k-50"); !ok {
					t.Error("base lost k-50")
					return
				}
			}
		})
	}
	wg.Wait()
}

// FuzzConversationDecide feeds arbitrary outside input (message text, client_message_id, contact
// fields, channel) to the decider: it never panics, refuses with EINVALID only, and what it accepts
// is within the contract's limits.
func FuzzConversationDecide(f *testing.F) {
	f.Add("hello", "c-1", "crm-1", "Ada", "ada@example.com", "api")
	f.Add("", "", "", "", "", "")
	f.Add("a\x00b", "\xff", " ", strings.Repeat("é", 201), "@", "web")
	f.Add(strings.Repeat("ü", 4001), strings.Repeat("k", 129), strings.Repeat("x", 129), "\t", "a@b", "whatsapp")
	d := domain.ConversationDecider()
	at := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, text, clientID, externalID, name, email, channel string) {
		evs, err := d.Decide(d.Initial(), domain.StartConversation{ConversationID: convID, Channel: channel,
			Contact: domain.Contact{ExternalID: externalID, Name: name, Email: email}, At: at})
		if err != nil {
			if code := domain.ErrorCode(err); code != domain.EINVALID {
				t.Fatalf("start: code %q: %v", code, err)
			}
			evs = []domain.Event{&domain.ConversationStarted{ConversationID: convID, Channel: "api", Contact: domain.Contact{ExternalID: "x"}, StartedAt: at}}
		} else {
			c := evs[0].(*domain.ConversationStarted).Contact
			if !utf8.ValidString(c.ExternalID+c.Name+c.Email) || utf8.RuneCountInString(c.ExternalID) > domain.MaxExternalIDLen ||
				utf8.RuneCountInString(c.Name) > domain.MaxContactNameLen || strings.TrimSpace(c.ExternalID) == "" {
				t.Fatalf("accepted contact %+v", c)
			}
		}
		s := d.Fold(evs)
		out, err := d.Decide(s, domain.SendMessage{MessageID: msgID1, Text: text, ClientMessageID: clientID,
			Author: domain.Author{Type: domain.AuthorUser, ID: userID}, At: at})
		if err != nil {
			if code := domain.ErrorCode(err); code != domain.EINVALID {
				t.Fatalf("send: code %q: %v", code, err)
			}
			return
		}
		m := out[0].(*domain.MessageSent)
		if m.Seq != 1 || !utf8.ValidString(m.Text) || strings.TrimSpace(m.Text) == "" || utf8.RuneCountInString(m.Text) > domain.MaxMessageTextLen ||
			utf8.RuneCountInString(m.ClientMessageID) > domain.MaxClientMessageIDLen {
			t.Fatalf("accepted message %+v", m)
		}
		if clientID != "" {
			again, err := d.Decide(d.Evolve(s, m), domain.SendMessage{MessageID: msgID2, Text: text, ClientMessageID: clientID,
				Author: domain.Author{Type: domain.AuthorUser, ID: userID}, At: at})
			if err != nil || len(again) != 0 {
				t.Fatalf("repeat of %q: %v, %v", clientID, again, err)
			}
		}
	})
}
