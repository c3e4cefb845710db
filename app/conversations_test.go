package app_test

import (
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

func TestConversationsCreateGetUpdate(t *testing.T) {
	t.Parallel()
	h := newConvHarness(t)
	ctx := t.Context()
	p := convAgent()
	contact := domain.Contact{ExternalID: "crm-1", Name: " Ada ", Email: "ada@example.com"}
	c, err := h.svc.Create(ctx, p, app.CreateConversationInput{Channel: "api", Contact: contact, AssistantEnabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if !domain.IsUUID(c.ID) || c.Status != "open" || c.Contact.Name != "Ada" || !c.AssistantEnabled || c.Version == 0 ||
		c.CreatedAt.IsZero() || !c.LastMessageAt.IsZero() {
		t.Fatalf("created %+v", c)
	}
	got, err := h.svc.Get(ctx, p, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Fatalf("get %+v\nwant the create's answer %+v", got, c)
	}

	closed, off := "closed", false
	assignee := uuid.NewString()
	u, err := h.svc.Update(ctx, p, c.ID, app.UpdateConversationInput{Status: &closed, AssistantEnabled: &off, SetAssignee: true, AssigneeID: assignee})
	if err != nil {
		t.Fatal(err)
	}
	if u.Status != "closed" || u.AssistantEnabled || u.AssigneeID != assignee || u.Version <= c.Version {
		t.Fatalf("updated %+v", u)
	}
	if got, err := h.svc.Get(ctx, p, c.ID); err != nil || got != u {
		t.Fatalf("get after update %+v, %v\nwant %+v", got, err, u)
	}
	// The same update again changes nothing.
	if again, err := h.svc.Update(ctx, p, c.ID, app.UpdateConversationInput{Status: &closed}); err != nil || again.Version != u.Version {
		t.Fatalf("repeated update: %+v, %v", again, err)
	}
	if un, err := h.svc.Update(ctx, p, c.ID, app.UpdateConversationInput{SetAssignee: true}); err != nil || un.AssigneeID != "" {
		t.Fatalf("unassign: %+v, %v", un, err)
	}
	bad := "archived"
	if _, err := h.svc.Update(ctx, p, c.ID, app.UpdateConversationInput{Status: &bad}); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("bad status: %v", err)
	}
	if _, err := h.svc.Update(ctx, p, uuid.NewString(), app.UpdateConversationInput{Status: &closed}); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("update a missing conversation: %v", err)
	}
	if _, err := h.svc.Create(ctx, p, app.CreateConversationInput{Channel: "sms", Contact: contact}); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("bad channel: %v", err)
	}
	if _, err := h.svc.Get(ctx, domain.Principal{}, c.ID); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
		t.Fatalf("no principal: %v", err)
	}
}

// TestConversationsCreateIsIdempotent: a create retried with its Idempotency-Key answers the
// conversation the first one created, also from another instance; another tenant's equal key is
// another conversation.
func TestConversationsCreateIsIdempotent(t *testing.T) {
	t.Parallel()
	h := newConvHarness(t)
	ctx := t.Context()
	p := convAgent()
	in := app.CreateConversationInput{Channel: "api", Contact: domain.Contact{ExternalID: "x"}, IdempotencyKey: "create-1"}
	first, err := h.svc.Create(ctx, p, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []*app.Conversations{h.svc, h.service(t)} {
		again, err := svc.Create(ctx, p, in)
		if err != nil || again != first {
			t.Fatalf("retried create: %+v, %v\nwant %+v", again, err, first)
		}
	}
	other, err := h.svc.Create(ctx, convKey(uuid.NewString()), in)
	if err != nil || other.ID == first.ID {
		t.Fatalf("another tenant's create with the same key: %+v, %v", other, err)
	}
	page, err := h.svc.List(ctx, p, app.ListConversationsInput{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("list after retried creates: %d conversations, %v; want 1", len(page.Items), err)
	}
}

// TestConversationsTenantIsolation: another tenant's conversation answers exactly as a missing one
// to every operation.
func TestConversationsTenantIsolation(t *testing.T) {
	t.Parallel()
	h := newConvHarness(t)
	ctx := t.Context()
	a, b := convAgent(), convAgent()
	c := h.create(t, a, domain.Contact{ExternalID: "a-1", Name: "Alice"})
	if _, err := h.svc.SendMessage(ctx, a, c.ID, app.SendMessageInput{Text: "secret"}); err != nil {
		t.Fatal(err)
	}
	missing := uuid.NewString()
	closed := "closed"
	for _, id := range []string{c.ID, missing} {
		errs := map[string]error{}
		_, errs["get"] = h.svc.Get(ctx, b, id)
		_, errs["update"] = h.svc.Update(ctx, b, id, app.UpdateConversationInput{Status: &closed})
		_, errs["send"] = h.svc.SendMessage(ctx, b, id, app.SendMessageInput{Text: "hi", ClientMessageID: "k"})
		_, errs["messages"] = h.svc.ListMessages(ctx, b, id, app.ListMessagesInput{})
		for op, err := range errs {
			if domain.ErrorCode(err) != domain.ENOTFOUND || domain.ErrorMessage(err) != "Conversation not found." {
				t.Errorf("%s of %s as another tenant: %v, want ENOTFOUND", op, id, err)
			}
		}
	}
	for _, q := range []string{"", "alice"} {
		page, err := h.svc.List(ctx, b, app.ListConversationsInput{Query: q})
		if err != nil || len(page.Items) != 0 {
			t.Errorf("list (q=%q) as another tenant: %+v, %v", q, page.Items, err)
		}
	}
	// Tenant A still sees its conversation unchanged.
	got, err := h.svc.Get(ctx, a, c.ID)
	if err != nil || got.Status != "open" || got.MessageCount != 1 {
		t.Fatalf("A's conversation after B's attempts: %+v, %v", got, err)
	}
}

// TestConversationsReadYourWrites: a list right after a create (or a send) includes it.
func TestConversationsReadYourWrites(t *testing.T) {
	t.Parallel()
	h := newConvHarness(t)
	ctx := t.Context()
	p := convAgent()
	for i := range 10 {
		c := h.create(t, p, domain.Contact{ExternalID: fmt.Sprint(i)})
		page, err := h.svc.List(ctx, p, app.ListConversationsInput{Limit: 1})
		if err != nil || len(page.Items) != 1 || page.Items[0].ID != c.ID {
			t.Fatalf("create %d: the list right after shows %+v, %v", i, page.Items, err)
		}
		sent, err := h.svc.SendMessage(ctx, p, c.ID, app.SendMessageInput{Text: "hi"})
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := h.svc.ListMessages(ctx, p, c.ID, app.ListMessagesInput{})
		if err != nil || len(msgs) != 1 || !reflect.DeepEqual(msgs[0], sent.Message) {
			t.Fatalf("send %d: the messages right after are %+v, %v; want %+v", i, msgs, err, sent.Message)
		}
	}
}

// TestConversationsListPagesWhileCreating: following the cursors returns every conversation that
// existed exactly once, while new ones are created between the pages.
func TestConversationsListPagesWhileCreating(t *testing.T) {
	t.Parallel()
	h := newConvHarness(t)
	ctx := t.Context()
	p := convAgent()
	const existing = 23
	want := map[string]bool{}
	for i := range existing {
		want[h.create(t, p, domain.Contact{ExternalID: fmt.Sprint("old-", i)}).ID] = true
	}
	seen := map[string]int{}
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := h.svc.List(ctx, p, app.ListConversationsInput{Limit: 5, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Items {
			seen[c.ID]++
		}
		// Others create conversations meanwhile.
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				in := app.CreateConversationInput{Channel: "api", Contact: domain.Contact{ExternalID: fmt.Sprint("new-", pages, "-", i)}}
				if _, err := h.svc.Create(ctx, convKey(p.TenantID), in); err != nil {
					t.Errorf("create while listing: %v", err)
				}
			})
		}
		wg.Wait()
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("conversation %s listed %d times, want once", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("conversation %s listed %d times", id, n)
		}
	}
	if _, err := h.svc.List(ctx, p, app.ListConversationsInput{Cursor: "garbage"}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("bad cursor: %v", err)
	}
	if _, err := h.svc.List(ctx, p, app.ListConversationsInput{Limit: 201}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("limit 201: %v", err)
	}
}

func TestConversationsSearchAndStatus(t *testing.T) {
	t.Parallel()
	h := newConvHarness(t)
	ctx := t.Context()
	p := convAgent()
	ada := h.create(t, p, domain.Contact{ExternalID: "crm-1", Name: "Ada Lovelace", Email: "ada@example.com"})
	grace := h.create(t, p, domain.Contact{ExternalID: "crm-2", Name: "Grace Hopper", Email: "grace@navy.mil"})
	wa := h.create(t, p, domain.Contact{ExternalID: "+44 20 7946 0958"})
	closed := "closed"
	if _, err := h.svc.Update(ctx, p, grace.ID, app.UpdateConversationInput{Status: &closed}); err != nil {
		t.Fatal(err)
	}
	ids := func(in app.ListConversationsInput) []string {
		t.Helper()
		page, err := h.svc.List(ctx, p, in)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range page.Items {
			out = append(out, c.ID)
		}
		return out
	}
	for _, tt := range []struct {
		in   app.ListConversationsInput
		want []string
	}{
		{app.ListConversationsInput{Query: "LOVELACE"}, []string{ada.ID}},
		{app.ListConversationsInput{Query: "navy.mil"}, []string{grace.ID}},
		{app.ListConversationsInput{Query: "7946"}, []string{wa.ID}},
		{app.ListConversationsInput{Query: "crm-"}, []string{grace.ID, ada.ID}},
		{app.ListConversationsInput{Query: "crm-", Status: "open"}, []string{ada.ID}},
		{app.ListConversationsInput{Status: "closed"}, []string{grace.ID}},
		{app.ListConversationsInput{Query: "nobody"}, nil},
	} {
		if got := ids(tt.in); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%+v: %v, want %v", tt.in, got, tt.want)
		}
	}
	if _, err := h.svc.List(ctx, p, app.ListConversationsInput{Status: "pending"}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("bad status: %v", err)
	}
}

func TestConversationsConfig(t *testing.T) {
	t.Parallel()
	if _, err := app.NewConversations(app.ConversationsConfig{}); err == nil {
		t.Fatal("empty config accepted")
	}
	err := app.ConversationsConfig{CacheSize: -1, MaxRetries: -1}.Validate()
	if err == nil {
		t.Fatal("negative sizes accepted")
	}
}
