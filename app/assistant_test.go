package app_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// asstHarness is an env with the conversations, the knowledge base (pipeline running) and an
// assistant running.
type asstHarness struct {
	*env
	conv    *app.Conversations
	know    *app.Knowledge
	asst    *app.Assistant
	metrics *prometheus.Registry
	tenant  string
	owner   domain.Principal
}

func asstProjections(reg *domain.Registry) []projections.Projection {
	return []projections.Projection{projections.NewConversationProjection(reg),
		projections.NewKnowledgeProjection(reg, projections.NewLocalEmbedder())}
}

func newAsstHarness(t *testing.T, mod func(*app.AssistantConfig)) *asstHarness {
	t.Helper()
	h := &asstHarness{env: newEnv(t, asstProjections), metrics: prometheus.NewRegistry(), tenant: uuid.NewString()}
	h.owner = domain.Principal{TenantID: h.tenant, UserID: uuid.NewString(), Role: domain.RoleOwner}
	var err error
	if h.conv, err = app.NewConversations(app.ConversationsConfig{Store: h.Store, Registry: h.Registry, DB: h.Pools.App,
		Waiter: h.Waiter, Logger: h.Logger}); err != nil {
		t.Fatal(err)
	}
	objects, err := h.Store.NewObjects(t.Context(), "documents", 0)
	if err != nil {
		t.Fatal(err)
	}
	if h.know, err = app.NewKnowledge(app.KnowledgeConfig{Store: h.Store, Registry: h.Registry, DB: h.Pools.App,
		Waiter: h.Waiter, Objects: objects, Worker: h.Store, Logger: h.Logger}); err != nil {
		t.Fatal(err)
	}
	h.asst = h.newAssistant(t, mod)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{"pipeline": h.know.RunPipeline, "assistant": h.asst.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return h
}

// newAssistant returns an assistant on the harness (not running): another instance.
func (h *asstHarness) newAssistant(t *testing.T, mod func(*app.AssistantConfig)) *app.Assistant {
	t.Helper()
	metrics, err := app.NewAssistantMetrics(prometheus.NewRegistry())
	if h.asst == nil {
		metrics, err = app.NewAssistantMetrics(h.metrics)
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.AssistantConfig{Store: h.Store, Registry: h.Registry, Worker: h.Store, Knowledge: h.know,
		Metrics: metrics, Logger: h.Logger}
	if mod != nil {
		mod(&cfg)
	}
	a, err := app.NewAssistant(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

const bikeManual = `# Returns

You can return a bike within 30 days of delivery for a full refund. Pack it in its original box and
print the return label from your account.

# Tyres

Inflate road tyres to 6 bar and mountain bike tyres to 2 bar. Check the pressure every week.
`

// upload adds a document and waits until it is indexed.
func (h *asstHarness) upload(t *testing.T, name, text string) string {
	t.Helper()
	doc, _, err := h.know.Upload(t.Context(), h.owner, app.UploadInput{Filename: name, Data: []byte(text)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "document indexed", func() bool {
		d, err := h.know.GetDocument(t.Context(), h.owner, doc.ID)
		return err == nil && d.Status == "ready"
	})
	return doc.ID
}

// start creates a web conversation with contact v-1 and returns it with the contact's principal.
func (h *asstHarness) start(t *testing.T, assistant bool) (string, domain.Principal) {
	t.Helper()
	c, err := h.conv.Create(t.Context(), h.owner, app.CreateConversationInput{Channel: domain.ChannelWeb,
		Contact: domain.Contact{ExternalID: "v-1"}, AssistantEnabled: assistant})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID, domain.Principal{TenantID: h.tenant, VisitorID: "v-1", Role: domain.RoleVisitor}
}

func (h *asstHarness) ask(t *testing.T, visitor domain.Principal, conv, text string) app.Message {
	t.Helper()
	sent, err := h.conv.SendMessage(t.Context(), visitor, conv, app.SendMessageInput{Text: text, ClientMessageID: uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	return sent.Message
}

func (h *asstHarness) messages(t *testing.T, conv string) []app.Message {
	t.Helper()
	msgs, err := h.conv.ListMessages(t.Context(), h.owner, conv, app.ListMessagesInput{})
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// waitMessages waits until the conversation has n messages and returns them.
func (h *asstHarness) waitMessages(t *testing.T, conv string, n int) []app.Message {
	t.Helper()
	var msgs []app.Message
	waitFor(t, 30*time.Second, "the assistant's reply", func() bool {
		msgs = h.messages(t, conv)
		return len(msgs) >= n
	})
	return msgs
}

// events returns the conversation's stored events of type typ.
func (h *asstHarness) events(t *testing.T, conv, typ string) []domain.Envelope {
	t.Helper()
	envs, err := h.Store.Read(t.Context(), 1, domain.Filter{TenantID: h.tenant, AggregateType: domain.ConversationAggregate, AggregateID: conv}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []domain.Envelope
	for _, e := range envs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (h *asstHarness) retrievals(t *testing.T, conv string) []*domain.RetrievalPerformed {
	t.Helper()
	var out []*domain.RetrievalPerformed
	for _, env := range h.events(t, conv, domain.EventRetrievalPerformed) {
		ev, err := h.Registry.Decode(env)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.(*domain.RetrievalPerformed))
	}
	return out
}

// chunkExists reports whether the knowledge read model has the chunk, of that document, in the
// tenant.
func (h *asstHarness) chunkExists(t *testing.T, c domain.Citation) bool {
	t.Helper()
	var n int
	err := projections.WithTenant(t.Context(), h.Pools.App, h.tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(t.Context(), `SELECT count(*) FROM public.knowledge_chunks WHERE tenant_id = $1 AND chunk_id = $2
			AND document_id = $3`, h.tenant, c.ChunkID, c.DocumentID).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// counter returns the value of a series of the harness's registry (0 when absent).
func (h *asstHarness) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := h.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// redeliveringWorker hands every event to the reactor twice, as JetStream does when the
// acknowledgement of a handled event is lost.
type redeliveringWorker struct{ app.Worker }

func (w redeliveringWorker) Work(ctx context.Context, cfg eventstore.WorkConfig, fn func(context.Context, domain.Envelope) error) error {
	return w.Worker.Work(ctx, cfg, func(ctx context.Context, env domain.Envelope) error {
		if err := fn(ctx, env); err != nil {
			return err
		}
		return fn(ctx, env)
	})
}

// TestAssistantRepliesOnceWithCitations: end to end with the local extractive answerer — a
// customer's question in a conversation with the assistant on gets exactly one bot reply whose
// citations name chunks that exist; retrieval.performed explains it; redelivering the trigger (the
// consumer here hands every event over twice), to this instance or another, produces no second
// reply; staff messages get none.
func TestAssistantRepliesOnceWithCitations(t *testing.T) {
	t.Parallel()
	h := newAsstHarness(t, func(c *app.AssistantConfig) { c.Worker = redeliveringWorker{c.Worker} })
	ctx := t.Context()
	docID := h.upload(t, "bikes.md", bikeManual)
	conv, visitor := h.start(t, true)
	q := h.ask(t, visitor, conv, "How many days do I have to return a bike?")
	msgs := h.waitMessages(t, conv, 2)
	reply := msgs[1]
	if len(msgs) != 2 || reply.Author.Type != domain.AuthorBot || reply.Seq != 2 || !strings.Contains(reply.Text, "30 days") ||
		!strings.Contains(reply.Text, "[1] bikes — Returns") {
		t.Fatalf("messages %+v, want the question and a bot reply quoting the returns passage", msgs)
	}
	if len(reply.Citations) == 0 || reply.Citations[0].DocumentID != docID || reply.Citations[0].Title != "bikes" {
		t.Fatalf("citations %+v, want the returns chunk of %s first", reply.Citations, docID)
	}
	for _, c := range reply.Citations {
		if !h.chunkExists(t, c) {
			t.Errorf("citation %+v names no chunk of the knowledge base", c)
		}
	}
	rs := h.retrievals(t, conv)
	if len(rs) != 1 {
		t.Fatalf("%d retrieval.performed events, want 1", len(rs))
	}
	r := rs[0]
	if r.MessageID != q.ID || r.ReplyMessageID != reply.ID || r.Question != q.Text || len(r.Chunks) == 0 ||
		r.Chunks[0].ChunkID != reply.Citations[0].ChunkID || r.Chunks[0].Score <= 0 || r.Embedder != projections.LocalEmbedderName ||
		r.Model != app.LocalAnswererModel || len(r.PromptSHA256) != 64 || r.Outcome != domain.RetrievalAnswered {
		t.Errorf("retrieval %+v", r)
	}
	if n := len(h.events(t, conv, domain.EventUsageRecorded)); n != 0 {
		t.Errorf("%d usage events for the local answerer, want none", n)
	}

	// Redelivery: the trigger handed out again, to this instance and to a fresh one.
	trigger := h.events(t, conv, domain.EventMessageSent)[0]
	for _, a := range []*app.Assistant{h.asst, h.newAssistant(t, nil)} {
		if err := a.Process(ctx, trigger); err != nil {
			t.Fatal(err)
		}
	}
	// Staff messages get no reply; the next customer message gets its own.
	if _, err := h.conv.SendMessage(ctx, h.owner, conv, app.SendMessageInput{Text: "An agent here."}); err != nil {
		t.Fatal(err)
	}
	h.ask(t, visitor, conv, "What pressure for road tyres?")
	msgs = h.waitMessages(t, conv, 5)
	if len(msgs) != 5 || msgs[4].Author.Type != domain.AuthorBot || !strings.Contains(msgs[4].Text, "6 bar") {
		t.Fatalf("messages %+v, want question, reply, agent, question, reply", msgs)
	}
	if n := len(h.retrievals(t, conv)); n != 2 {
		t.Errorf("%d retrievals, want 2 (one per customer message)", n)
	}
	if v := h.counter(t, "metachat_assistant_replies_total", map[string]string{"outcome": "answered"}); v != 2 {
		t.Errorf("replies_total{answered} = %v, want 2", v)
	}
}

// TestAssistantTakeover: with the assistant off (a human took over) a customer message gets no
// reply — not even once the assistant is switched on again; the next one then does.
func TestAssistantTakeover(t *testing.T) {
	t.Parallel()
	// One at a time: the reply to the second message means the first was handled.
	h := newAsstHarness(t, func(c *app.AssistantConfig) { c.Concurrency = 1 })
	ctx := t.Context()
	h.upload(t, "bikes.md", bikeManual)
	conv, visitor := h.start(t, true)
	off, on := false, true
	if _, err := h.conv.Update(ctx, h.owner, conv, app.UpdateConversationInput{AssistantEnabled: &off}); err != nil {
		t.Fatal(err)
	}
	h.ask(t, visitor, conv, "How do I return a bike?")
	if _, err := h.conv.Update(ctx, h.owner, conv, app.UpdateConversationInput{AssistantEnabled: &on}); err != nil {
		t.Fatal(err)
	}
	second := h.ask(t, visitor, conv, "What pressure for road tyres?")
	msgs := h.waitMessages(t, conv, 3)
	if len(msgs) != 3 || msgs[2].Author.Type != domain.AuthorBot {
		t.Fatalf("messages %+v, want two questions and one reply", msgs)
	}
	if rs := h.retrievals(t, conv); len(rs) != 1 || rs[0].MessageID != second.ID {
		t.Fatalf("retrievals %+v, want one, for the message after the takeover", rs)
	}
	// A conversation created without the assistant gets none.
	quiet, visitor2 := h.start(t, false)
	h.ask(t, visitor2, quiet, "How do I return a bike?")
	h.ask(t, visitor, conv, "And mountain bike tyres?")
	h.waitMessages(t, conv, 5)
	if msgs := h.messages(t, quiet); len(msgs) != 1 {
		t.Fatalf("conversation without the assistant has %d messages, want 1", len(msgs))
	}
}

// slowAnswerer never answers before its context ends; failingAnswerer fails.
type slowAnswerer struct{}

func (slowAnswerer) Model() string { return "test:slow" }
func (slowAnswerer) Answer(ctx context.Context, _ app.AnswerInput) (app.Answer, error) {
	<-ctx.Done()
	return app.Answer{}, domain.Errorf(domain.EUNAVAILABLE, "too slow: %v", ctx.Err())
}

type failingAnswerer struct{}

func (failingAnswerer) Model() string { return "test:failing" }
func (failingAnswerer) Answer(context.Context, app.AnswerInput) (app.Answer, error) {
	return app.Answer{}, domain.Errorf(domain.EUNAVAILABLE, "model down")
}

// TestAssistantFallback: a slow or failing answerer gives the polite fallback reply, recorded as
// such, with an error metric — never a missing reply.
func TestAssistantFallback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		answerer app.Answerer
		kind     string
	}{{"slow", slowAnswerer{}, "timeout"}, {"failing", failingAnswerer{}, "unavailable"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newAsstHarness(t, func(c *app.AssistantConfig) {
				c.Answerer, c.AnswerTimeout = tc.answerer, 300*time.Millisecond
			})
			conv, visitor := h.start(t, true)
			h.ask(t, visitor, conv, "Anyone there?")
			msgs := h.waitMessages(t, conv, 2)
			if msgs[1].Author.Type != domain.AuthorBot || msgs[1].Text != app.DefaultAssistantFallback || len(msgs[1].Citations) != 0 {
				t.Fatalf("reply %+v, want the fallback", msgs[1])
			}
			rs := h.retrievals(t, conv)
			if len(rs) != 1 || rs[0].Outcome != domain.RetrievalFallback || rs[0].Error != tc.kind || rs[0].Model != tc.answerer.Model() {
				t.Fatalf("retrievals %+v, want one fallback (%s)", rs, tc.kind)
			}
			if v := h.counter(t, "metachat_assistant_errors_total", map[string]string{"stage": "answer", "kind": tc.kind}); v != 1 {
				t.Errorf("errors_total{answer,%s} = %v, want 1", tc.kind, v)
			}
			if v := h.counter(t, "metachat_assistant_replies_total", map[string]string{"outcome": "fallback"}); v != 1 {
				t.Errorf("replies_total{fallback} = %v, want 1", v)
			}
		})
	}
}

// chatModel is a stand-in for a chat-completions API (adapters/openai.Chat is tested against a
// loopback server speaking the wire format): it cites the first passage and reports usage.
type chatModel struct{ got []app.ChatMessage }

func (*chatModel) Model() string { return "test:chat" }
func (m *chatModel) Complete(_ context.Context, req app.ChatRequest) (app.ChatCompletion, error) {
	m.got = req.Messages
	return app.ChatCompletion{Content: "Within 30 days [1].\x00", Usage: app.TokenUsage{PromptTokens: 300, CompletionTokens: 12, TotalTokens: 312}}, nil
}

// TestAssistantChatAnswererRecordsUsage: with a chat model the reply cites what the answer cites,
// and the tokens are recorded as usage in the same append as the reply.
func TestAssistantChatAnswererRecordsUsage(t *testing.T) {
	t.Parallel()
	model := &chatModel{}
	h := newAsstHarness(t, func(c *app.AssistantConfig) { c.Answerer = app.NewChatAnswerer(model, 0) })
	h.upload(t, "bikes.md", bikeManual)
	conv, visitor := h.start(t, true)
	h.ask(t, visitor, conv, "How many days do I have to return a bike?")
	msgs := h.waitMessages(t, conv, 2)
	if msgs[1].Text != "Within 30 days [1]." || len(msgs[1].Citations) != 1 || !h.chunkExists(t, msgs[1].Citations[0]) {
		t.Fatalf("reply %+v, want the model's answer (cleaned) citing one existing chunk", msgs[1])
	}
	usage := h.events(t, conv, domain.EventUsageRecorded)
	retrieval := h.events(t, conv, domain.EventRetrievalPerformed)
	reply := h.events(t, conv, domain.EventMessageSent)[1]
	if len(usage) != 1 || len(retrieval) != 1 || retrieval[0].Sequence+1 != usage[0].Sequence || usage[0].Sequence+1 != reply.Sequence {
		t.Fatalf("usage %v and retrieval %v, want one each, stored with the reply", usage, retrieval)
	}
	ev, err := h.Registry.Decode(usage[0])
	if err != nil {
		t.Fatal(err)
	}
	if u := ev.(*domain.UsageRecorded); u.Kind != domain.UsageLLMTokens || u.Model != "test:chat" || u.PromptTokens != 300 || u.TotalTokens != 312 {
		t.Errorf("usage %+v", u)
	}
	r, err := h.Registry.Decode(retrieval[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := app.NewChatAnswerer(model, 0); r.(*domain.RetrievalPerformed).PromptSHA256 == "" || want.Model() != r.(*domain.RetrievalPerformed).Model {
		t.Errorf("retrieval %+v", r)
	}
	if len(model.got) != 2 || !strings.Contains(model.got[0].Content, "[1] bikes — Returns") {
		t.Errorf("prompt %+v, want the numbered passages", model.got)
	}
}

func TestAssistantConfig(t *testing.T) {
	t.Parallel()
	err := app.AssistantConfig{Passages: 51, AnswerTimeout: time.Hour, Concurrency: -1, FallbackText: " "}.Validate()
	for _, want := range []string{"no event store", "no worker", "no knowledge", "passages", "answer timeout", "concurrency", "fallback"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

// TestLocalAnswerer: the extractive answer quotes the best sentences of the relevant passages and
// numbers them as citations; without a relevant passage it says it found nothing.
func TestLocalAnswerer(t *testing.T) {
	t.Parallel()
	a := app.LocalAnswerer{MaxExcerpt: 80}
	ans, err := a.Answer(t.Context(), app.AnswerInput{Question: "What pressure for road tyres?", Passages: []app.Passage{
		{N: 1, Title: "Unrelated", Text: "Our shop opens at nine.", Distance: 0.95},
		{N: 2, Title: "Manual", Heading: "Tyres", Lexical: true,
			Text: "Tyres wear out. Inflate road tyres to 6 bar and mountain bike tyres to 2 bar. Check weekly."},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Cited) != 1 || ans.Cited[0] != 2 || !strings.Contains(ans.Text, "[1] Manual — Tyres\n") || !strings.Contains(ans.Text, "Inflate road tyres to 6 bar") ||
		strings.Contains(ans.Text, "shop") || len(ans.PromptSHA256) != 64 {
		t.Errorf("answer %+v", ans)
	}
	none, err := a.Answer(t.Context(), app.AnswerInput{Question: "Do you sell kayaks?"})
	if err != nil || len(none.Cited) != 0 || !strings.Contains(none.Text, "could not find") {
		t.Errorf("answer without passages %+v, %v", none, err)
	}
}
