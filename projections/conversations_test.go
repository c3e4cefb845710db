package projections_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// convWorld is a harness running the conversations projection, with a conversation handler and a
// waiter.
type convWorld struct {
	*harness
	conv    *eventstore.Handler[domain.Conversation, domain.ConversationCommand]
	waiter  *projections.Waiter
	reader  *projections.Conversations
	manager *projections.Manager
}

func newConvWorld(t *testing.T, beforeEnsure func(*harness)) *convWorld {
	t.Helper()
	h := newHarness(t)
	if beforeEnsure != nil {
		beforeEnsure(h)
	}
	m := h.manager(t, projections.NewConversationProjection(h.reg))
	start(t, m.Run)
	return &convWorld{
		harness: h,
		conv:    eventstore.NewHandler(h.store, h.reg, domain.ConversationDecider()),
		waiter:  newWaiter(t, h, 10*time.Second),
		reader:  projections.NewConversations(h.pools.App),
		manager: m,
	}
}

// do runs a command on a conversation and waits until the read model has it.
func (w *convWorld) do(t *testing.T, tenant, id string, cmd domain.ConversationCommand) eventstore.Result[domain.Conversation] {
	t.Helper()
	res, err := w.conv.Handle(context.Background(), domain.AggregateRef{TenantID: tenant, Type: domain.ConversationAggregate, ID: id}, cmd, eventstore.Metadata{})
	if err != nil {
		t.Fatalf("%T: %v", cmd, err)
	}
	if err := w.waiter.WaitFor(context.Background(), projections.ConversationsProjection, res.Version); err != nil {
		t.Fatal(err)
	}
	return res
}

func (w *convWorld) start(t *testing.T, tenant string, contact domain.Contact, at time.Time) string {
	t.Helper()
	id := uuid.NewString()
	w.do(t, tenant, id, domain.StartConversation{ConversationID: id, Channel: domain.ChannelAPI, Contact: contact, At: at})
	return id
}

var apiKeyAuthor = domain.Author{Type: domain.AuthorAPIKey, ID: "k1"}

func (w *convWorld) send(t *testing.T, tenant, id, text string, at time.Time) {
	t.Helper()
	w.sendAs(t, tenant, id, text, at, apiKeyAuthor)
}

func (w *convWorld) sendAs(t *testing.T, tenant, id, text string, at time.Time, author domain.Author) {
	t.Helper()
	w.do(t, tenant, id, domain.SendMessage{MessageID: uuid.NewString(), Text: text, ClientMessageID: "c-" + text,
		Author: author, At: at})
}

func TestConversationProjection(t *testing.T) {
	t.Parallel()
	w := newConvWorld(t, nil)
	ctx := t.Context()
	tenant, other := uuid.NewString(), uuid.NewString()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	id := w.start(t, tenant, domain.Contact{ExternalID: "crm-1", Name: "Ada", Email: "ada@example.com"}, at)

	c, err := w.reader.Get(ctx, tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != id || c.Channel != "api" || c.Status != "open" || c.Contact.Name != "Ada" || c.Contact.Email != "ada@example.com" ||
		c.AssigneeID != "" || !c.LastMessageAt.IsZero() || !c.CreatedAt.Equal(at) || !c.LastActivityAt.Equal(at) || c.MessageCount != 0 {
		t.Fatalf("started conversation %+v", c)
	}

	assignee := uuid.NewString()
	off, closed := false, domain.ConversationStatusClosed
	w.do(t, tenant, id, domain.UpdateConversation{Status: &closed, AssistantEnabled: &off, SetAssignee: true, AssigneeID: assignee, At: at})
	if c, err := w.reader.Get(ctx, tenant, id); err != nil || c.Status != "closed" || c.AssigneeID != assignee || c.AssistantEnabled {
		t.Fatalf("after the update: %+v, %v", c, err)
	}
	contactAuthor := domain.Author{Type: domain.AuthorContact, ID: "crm-1"}
	for i := 1; i <= 3; i++ {
		author := apiKeyAuthor
		if i == 1 {
			author = contactAuthor // reopens the conversation
		}
		w.sendAs(t, tenant, id, fmt.Sprintf("m%d", i), at.Add(time.Duration(i)*time.Minute), author)
	}
	last := w.do(t, tenant, id, domain.UpdateConversation{SetAssignee: true, At: at})
	c, err = w.reader.Get(ctx, tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != "open" || c.AssistantEnabled || c.AssigneeID != "" || c.MessageCount != 3 ||
		!c.LastMessageAt.Equal(at.Add(3*time.Minute)) || !c.LastActivityAt.Equal(c.LastMessageAt) || c.Version != last.Version {
		t.Fatalf("after updates and messages: %+v", c)
	}

	msgs, err := w.reader.Messages(ctx, tenant, id, 0, 10)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("messages: %+v, %v", msgs, err)
	}
	for i, m := range msgs {
		if m.Seq != uint64(i+1) || m.Text != fmt.Sprintf("m%d", i+1) || m.ClientMessageID != "c-"+m.Text ||
			(i > 0 && m.Author != apiKeyAuthor) || m.ConversationID != id || !domain.IsUUID(m.ID) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	if page, err := w.reader.Messages(ctx, tenant, id, 1, 1); err != nil || len(page) != 1 || page[0].Seq != 2 {
		t.Fatalf("after seq 1, limit 1: %+v, %v", page, err)
	}
	if page, err := w.reader.Messages(ctx, tenant, id, 3, 10); err != nil || len(page) != 0 {
		t.Fatalf("after the last seq: %+v, %v", page, err)
	}
	if m, err := w.reader.Message(ctx, tenant, id, 2); err != nil || m.Text != "m2" {
		t.Fatalf("message 2: %+v, %v", m, err)
	}
	if _, err := w.reader.Message(ctx, tenant, id, 4); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("message 4: %v", err)
	}

	// Another tenant sees nothing, exactly as if it did not exist.
	if _, err := w.reader.Get(ctx, other, id); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("get as another tenant: %v", err)
	}
	if _, err := w.reader.Messages(ctx, other, id, 0, 10); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("messages as another tenant: %v", err)
	}
	if list, err := w.reader.List(ctx, other, projections.ConversationFilter{Limit: 10}); err != nil || len(list) != 0 {
		t.Fatalf("list as another tenant: %+v, %v", list, err)
	}
	for _, bad := range []string{"nope", uuid.NewString()} {
		if _, err := w.reader.Get(ctx, tenant, bad); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Fatalf("get %q: %v", bad, err)
		}
		if _, err := w.reader.Messages(ctx, tenant, bad, 0, 1); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Fatalf("messages of %q: %v", bad, err)
		}
	}
	// The app role cannot see the rows without a tenant.
	if n := queryInt(t, w.pools.App, "SELECT count(*) FROM messages"); n != 0 {
		t.Fatalf("metachat_app without a tenant sees %d messages", n)
	}
}

func TestConversationProjectionListAndSearch(t *testing.T) {
	t.Parallel()
	w := newConvWorld(t, nil)
	ctx := t.Context()
	tenant := uuid.NewString()
	base := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	contacts := []domain.Contact{
		{ExternalID: "crm-1", Name: "Ada Lovelace", Email: "ada@example.com"},
		{ExternalID: "crm-2", Name: "Grace Hopper"},
		{ExternalID: "WA-100%", Email: "GRACE@navy.mil"},
		{ExternalID: "crm_4", Name: "Édith Piaf"},
	}
	ids := make([]string, len(contacts))
	for i, c := range contacts {
		ids[i] = w.start(t, tenant, c, base.Add(time.Duration(i)*time.Minute))
	}
	// A message moves the first conversation to the top.
	w.send(t, tenant, ids[0], "hello", base.Add(time.Hour))
	closed := domain.ConversationStatusClosed
	w.do(t, tenant, ids[1], domain.UpdateConversation{Status: &closed, At: base})

	list := func(f projections.ConversationFilter) []string {
		t.Helper()
		if f.Limit == 0 {
			f.Limit = 50
		}
		cs, err := w.reader.List(ctx, tenant, f)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.ID
		}
		return out
	}
	eq := func(got []string, want ...string) bool { return strings.Join(got, ",") == strings.Join(want, ",") }
	if got := list(projections.ConversationFilter{}); !eq(got, ids[0], ids[3], ids[2], ids[1]) {
		t.Fatalf("list order %v", got)
	}
	if got := list(projections.ConversationFilter{Status: "closed"}); !eq(got, ids[1]) {
		t.Fatalf("closed: %v", got)
	}
	if got := list(projections.ConversationFilter{Status: "open"}); !eq(got, ids[0], ids[3], ids[2]) {
		t.Fatalf("open: %v", got)
	}
	for q, want := range map[string][]string{
		"grace":     {ids[2], ids[1]}, // a name and an email, any case
		"ADA@EXA":   {ids[0]},
		"crm":       {ids[0], ids[3], ids[1]},
		"100%":      {ids[2]}, // wildcards match themselves
		"%":         {ids[2]},
		"crm_":      {ids[3]},
		"édith":     {ids[3]},
		"nobody":    nil,
		"  crm-2  ": {ids[1]},
	} {
		if got := list(projections.ConversationFilter{Query: q}); !eq(got, want...) {
			t.Errorf("q=%q: %v, want %v", q, got, want)
		}
	}
	if got := list(projections.ConversationFilter{Query: "grace", Status: "open"}); !eq(got, ids[2]) {
		t.Errorf("open grace: %v", got)
	}

	// Keyset pages.
	var seen []string
	var after *projections.ConversationKey
	for {
		page, err := w.reader.List(ctx, tenant, projections.ConversationFilter{Limit: 3, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			seen = append(seen, c.ID)
		}
		if len(page) < 3 {
			break
		}
		k := page[len(page)-1].Key()
		after = &k
	}
	if !eq(seen, ids[0], ids[3], ids[2], ids[1]) {
		t.Fatalf("pages: %v", seen)
	}
	if _, err := w.reader.List(ctx, tenant, projections.ConversationFilter{}); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("limit 0: %v", err)
	}
}

// TestConversationProjectionTrigramIndex: with pg_trgm installed, Setup adds the trigram index and
// searches still answer the same.
func TestConversationProjectionTrigramIndex(t *testing.T) {
	t.Parallel()
	w := newConvWorld(t, func(h *harness) {
		if _, err := h.pools.Owner.Exec(context.Background(), "CREATE EXTENSION IF NOT EXISTS pg_trgm"); err != nil {
			t.Skipf("pg_trgm is not available: %v", err)
		}
	})
	if err := w.manager.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	n := queryInt(t, w.pools.Owner, `SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'conversations_search'`,
		projections.SchemaName(projections.ConversationsProjection, 1))
	if n != 1 {
		t.Fatal("no trigram index")
	}
	tenant := uuid.NewString()
	id := w.start(t, tenant, domain.Contact{ExternalID: "x-1", Name: "Katherine Johnson"}, time.Now())
	cs, err := w.reader.List(t.Context(), tenant, projections.ConversationFilter{Query: "RINE JO", Limit: 5})
	if err != nil || len(cs) != 1 || cs[0].ID != id {
		t.Fatalf("search: %+v, %v", cs, err)
	}
}

// TestConversationProjectionStopsOnAGap: a message.sent whose seq does not follow the
// conversation's messages is a poison event, never a hole in the list. It comes in one atomic
// append after a valid message, so the batch apply fails and the events applied one by one find
// it: the valid message is applied, the projection stops at the gap.
func TestConversationProjectionStopsOnAGap(t *testing.T) {
	t.Parallel()
	w := newConvWorld(t, nil)
	tenant := uuid.NewString()
	id := w.start(t, tenant, domain.Contact{ExternalID: "x"}, time.Now())
	agg := domain.AggregateRef{TenantID: tenant, Type: domain.ConversationAggregate, ID: id}
	_, version, err := w.store.Load(t.Context(), agg, 0)
	if err != nil {
		t.Fatal(err)
	}
	var envs []domain.Envelope
	for _, seq := range []uint64{1, 3} {
		typ, v, payload, err := w.reg.Encode(&domain.MessageSent{MessageID: uuid.NewString(), Seq: seq, Text: fmt.Sprint("seq ", seq),
			Author: domain.Author{Type: "system"}, SentAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, domain.Envelope{ID: uuid.NewString(), Type: typ, SchemaVersion: v, Payload: payload})
	}
	res, err := w.store.Append(t.Context(), agg, version, envs...)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the projection to stop", func() bool {
		cp := readCheckpoint(t, w.pools.Owner, projections.ConversationsProjection, 1)
		return cp.Stopped && cp.StopSeq == res.LastSequence
	})
	if msgs, err := w.reader.Messages(t.Context(), tenant, id, 0, 10); err != nil || len(msgs) != 1 || msgs[0].Seq != 1 {
		t.Fatalf("messages: %+v, %v; want seq 1 only", msgs, err)
	}
}

// TestConversationProjectionApplyBatch: ApplyBatch, fed the stream in chunks, builds exactly the
// tables Apply builds event by event, and refuses messages that do not follow their conversation's.
func TestConversationProjectionApplyBatch(t *testing.T) {
	t.Parallel()
	w := newConvWorld(t, nil)
	ctx := t.Context()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	tenants := []string{uuid.NewString(), uuid.NewString()}
	var convs [][2]string
	for i := range 4 {
		tenant := tenants[i%2]
		convs = append(convs, [2]string{tenant, w.start(t, tenant, domain.Contact{ExternalID: fmt.Sprint("c", i), Name: "N"}, at)})
	}
	closed := domain.ConversationStatusClosed
	for i := range 30 {
		n := (i * 7) % len(convs)
		c := convs[n]
		switch i {
		case 10:
			w.do(t, c[0], c[1], domain.UpdateConversation{Status: &closed, SetAssignee: true, AssigneeID: uuid.NewString(), At: at})
			// The conversation's own contact writes, which reopens it.
			w.sendAs(t, c[0], c[1], fmt.Sprint("reopen ", i), at.Add(time.Duration(i)*time.Second), domain.Author{Type: domain.AuthorContact, ID: fmt.Sprint("c", n)})
		default:
			w.send(t, c[0], c[1], fmt.Sprint("m", i), at.Add(time.Duration(i)*time.Second))
		}
	}
	envs, err := w.store.Read(ctx, 1, domain.Filter{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	// A schema of its own, set up as each generation is, and written by the projector.
	const schema = "batch_check"
	p := projections.NewConversationProjection(w.reg)
	setup := func() {
		tx, err := w.pools.Owner.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		for _, sql := range []string{"DROP SCHEMA IF EXISTS " + schema + " CASCADE", "CREATE SCHEMA " + schema} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Setup(ctx, tx, schema); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "GRANT USAGE ON SCHEMA "+schema+" TO metachat_projector; "+
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+schema+" TO metachat_projector"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	applyBatch := func(batch []domain.Envelope) error {
		tx, err := w.pools.Projector.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if err := p.ApplyBatch(ctx, tx, schema, batch); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	setup()
	for start := 0; start < len(envs); start += 7 {
		if err := applyBatch(envs[start:min(start+7, len(envs))]); err != nil {
			t.Fatalf("batch at %d: %v", start, err)
		}
	}
	digest := func(schema, table, order string) string {
		var d string
		if err := w.pools.Projector.QueryRow(ctx, `SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY `+order+`)), '')
			FROM `+schema+`.`+table+` t`).Scan(&d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	g1 := projections.SchemaName(projections.ConversationsProjection, 1)
	for table, order := range map[string]string{"conversations": "tenant_id, id", "messages": "tenant_id, conversation_id, seq"} {
		if a, b := digest(g1, table, order), digest(schema, table, order); a != b || a == "" {
			t.Errorf("%s: ApplyBatch built %s, Apply %s", table, b, a)
		}
	}

	// QueueBatch, where the chunk is messages only, builds the same tables too, and refuses the
	// chunks with other events.
	setup()
	queued, refused := 0, 0
	for start := 0; start < len(envs); start += 3 {
		chunk := envs[start:min(start+3, len(envs))]
		b := &pgx.Batch{}
		if !p.QueueBatch(b, schema, chunk) {
			if b.Len() != 0 {
				t.Fatalf("chunk at %d: QueueBatch refused it but queued %d statements", start, b.Len())
			}
			refused++
			if err := applyBatch(chunk); err != nil {
				t.Fatalf("batch at %d: %v", start, err)
			}
			continue
		}
		queued++
		if err := pgx.BeginFunc(ctx, w.pools.Projector, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() }); err != nil {
			t.Fatalf("queued batch at %d: %v", start, err)
		}
	}
	if queued == 0 || refused == 0 {
		t.Fatalf("QueueBatch took %d chunks and refused %d; the check needs both", queued, refused)
	}
	for table, order := range map[string]string{"conversations": "tenant_id, id", "messages": "tenant_id, conversation_id, seq"} {
		if a, b := digest(g1, table, order), digest(schema, table, order); a != b || a == "" {
			t.Errorf("%s: QueueBatch built %s, Apply %s", table, b, a)
		}
	}

	// Gaps: against the table, and inside one run.
	setup()
	var starts []domain.Envelope
	var first *domain.Envelope
	for i, env := range envs {
		if env.Type == domain.EventConversationStarted {
			starts = append(starts, env)
		}
		if env.Type == domain.EventMessageSent && first == nil {
			first = &envs[i]
		}
	}
	if err := applyBatch(starts); err != nil {
		t.Fatal(err)
	}
	msg := func(seq uint64) domain.Envelope {
		typ, v, payload, err := w.reg.Encode(&domain.MessageSent{MessageID: uuid.NewString(), Seq: seq, Text: "x",
			Author: domain.Author{Type: domain.AuthorSystem}, SentAt: at})
		if err != nil {
			t.Fatal(err)
		}
		env := *first
		env.Type, env.SchemaVersion, env.Payload = typ, v, payload
		return env
	}
	for name, batch := range map[string][]domain.Envelope{
		"first message is 2": {msg(2)},
		"1 then 3":           {msg(1), msg(3)},
		"1 twice":            {msg(1), msg(1)},
	} {
		if err := applyBatch(batch); err == nil {
			t.Errorf("%s: applied", name)
		}
		b := &pgx.Batch{}
		if p.QueueBatch(b, schema, batch) {
			if err := pgx.BeginFunc(ctx, w.pools.Projector, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() }); err == nil {
				t.Errorf("%s: queued and applied", name)
			}
		}
	}
	if err := applyBatch([]domain.Envelope{msg(1), msg(2)}); err != nil {
		t.Errorf("1, 2: %v", err)
	}
}
