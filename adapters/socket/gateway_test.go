package socket_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/metachat/metachat/adapters/socket"
	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/internal/teststack"
)

// TestHandshakeRefusals: each token failure — expired, from another origin, for another
// conversation, reused, forged — is refused with a 401 problem, and a good one opens the socket.
func TestHandshakeRefusals(t *testing.T) {
	st := teststack.Start(t)
	in := startInstance(t, st, socket.Config{})
	tn := newTenant(t, st, domain.WidgetSettings{})
	ctx := t.Context()

	refused := func(what, token, origin string) {
		t.Helper()
		ws, resp, err := dialRaw(t, in, token, origin)
		if resp != nil && resp.Body != nil {
			defer resp.Body.Close()
		}
		if err == nil {
			_ = ws.CloseNow()
			t.Errorf("%s: the handshake succeeded", what)
			return
		}
		if resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %v, %v; want 401", what, resp, err)
			return
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Errorf("%s: content type %q", what, ct)
		}
	}

	good := session(t, st, tn.WidgetID, "", "")
	refused("another origin", good.Token, "https://evil.example.com")
	refused("no origin", good.Token, "")
	dial(t, in, good.Token, hostOrigin) // the genuine handshake, once
	refused("reused", good.Token, hostOrigin)

	// Expired: issued by an instance whose clock says it is ten minutes earlier.
	past := st.NewWidgets(t, st.Pepper, func() time.Time { return time.Now().Add(-10 * time.Minute) })
	old, err := past.StartSession(ctx, app.StartSessionInput{WidgetID: tn.WidgetID, Origin: hostOrigin})
	if err != nil {
		t.Fatal(err)
	}
	refused("expired", old.Token, hostOrigin)

	// Forged: signed with another secret; or a genuine token whose claims were changed.
	otherSecret, err := app.GenerateAPIKeyPepper()
	if err != nil {
		t.Fatal(err)
	}
	forger := st.NewWidgets(t, otherSecret, nil)
	forged, err := forger.StartSession(ctx, app.StartSessionInput{WidgetID: tn.WidgetID, Origin: hostOrigin})
	if err != nil {
		t.Fatal(err)
	}
	refused("signed with another key", forged.Token, hostOrigin)
	victim := session(t, st, tn.WidgetID, "", "")
	attacker := session(t, st, tn.WidgetID, "", "")
	refused("claims changed to another conversation", swapClaim(t, attacker.Token, "cid", victim.ConversationID), hostOrigin)
	refused("alg none", noneToken(t, attacker.Token), hostOrigin)
	refused("garbage", "not-a-token", hostOrigin)

	// Another conversation: a visitor cannot get a session for someone else's conversation, nor
	// for a conversation of another channel.
	if _, err := st.Widgets.StartSession(ctx, app.StartSessionInput{WidgetID: tn.WidgetID, VisitorID: attacker.VisitorID,
		ConversationID: victim.ConversationID, Origin: hostOrigin}); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("session for another visitor's conversation: %v, want ENOTFOUND", err)
	}
	apiConv, err := st.Conversations.Create(ctx, tn.Owner, app.CreateConversationInput{Channel: domain.ChannelAPI,
		Contact: domain.Contact{ExternalID: attacker.VisitorID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Widgets.StartSession(ctx, app.StartSessionInput{WidgetID: tn.WidgetID, VisitorID: attacker.VisitorID,
		ConversationID: apiConv.ID, Origin: hostOrigin}); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("session for an API conversation: %v, want ENOTFOUND", err)
	}
	// A visitor id the server did not issue, and an origin the widget does not allow.
	if _, err := st.Widgets.StartSession(ctx, app.StartSessionInput{WidgetID: tn.WidgetID, VisitorID: "alice", Origin: hostOrigin}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("made-up visitor id: %v, want EINVALID", err)
	}
	if _, err := st.Widgets.StartSession(ctx, app.StartSessionInput{WidgetID: tn.WidgetID, Origin: "https://evil.example.com"}); domain.ErrorCode(err) != domain.EFORBIDDEN {
		t.Errorf("foreign origin: %v, want EFORBIDDEN", err)
	}
	// Resuming with the visitor's own conversation works, and keeps the conversation.
	again := session(t, st, tn.WidgetID, victim.VisitorID, victim.ConversationID)
	if again.ConversationID != victim.ConversationID || again.VisitorID != victim.VisitorID {
		t.Errorf("resumed session %+v", again)
	}
}

// swapClaim returns token with one claim replaced and the original signature kept.
func swapClaim(t *testing.T, token, claim, value string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := decodeSegment(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	m[claim] = value
	b, _ := json.Marshal(m)
	parts[1] = encodeSegment(b)
	return strings.Join(parts, ".")
}

// noneToken returns token's claims under an "alg": "none" header and no signature.
func noneToken(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	return encodeSegment([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
}

// TestIdentityVerification: with identity verification on, a visitor is who the tenant's server
// says, proven by the HMAC of their user id; nobody can pose as another user.
func TestIdentityVerification(t *testing.T) {
	st := teststack.Start(t)
	tn := newTenant(t, st, domain.WidgetSettings{Name: "Verified", AllowedOrigins: []string{hostOrigin}, IdentityVerification: true})
	ctx := t.Context()
	w, err := st.Widgets.GetWidget(ctx, tn.Owner, tn.WidgetID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.IdentitySecret, "whs_") {
		t.Fatalf("identity secret %q", w.IdentitySecret)
	}
	hash := app.UserHash(w.IdentitySecret, "user-42")
	s, err := st.Widgets.StartSession(ctx, app.StartSessionInput{WidgetID: tn.WidgetID, VisitorID: "user-42", UserHash: hash, Origin: hostOrigin})
	if err != nil || s.VisitorID != "user-42" {
		t.Fatalf("verified session: %+v, %v", s, err)
	}
	for name, in := range map[string]app.StartSessionInput{
		"no hash":                  {VisitorID: "user-42"},
		"wrong hash":               {VisitorID: "user-42", UserHash: strings.Repeat("0", 64)},
		"another user's hash":      {VisitorID: "user-43", UserHash: hash},
		"no visitor":               {UserHash: hash},
		"hash of another widget's": {VisitorID: "user-42", UserHash: app.UserHash("whs_other", "user-42")},
	} {
		in.WidgetID, in.Origin = tn.WidgetID, hostOrigin
		if _, err := st.Widgets.StartSession(ctx, in); err == nil {
			t.Errorf("%s: session started", name)
		}
	}
	// The verified visitor gets their own conversation back with the right hash only.
	if _, err := st.Widgets.StartSession(ctx, app.StartSessionInput{WidgetID: tn.WidgetID, VisitorID: "user-43",
		UserHash: app.UserHash(w.IdentitySecret, "user-43"), ConversationID: s.ConversationID, Origin: hostOrigin}); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("another verified user on user-42's conversation: %v", err)
	}
}

// TestSendAckFanOutAndDedupe: a send is acknowledged with its seq and pushed to every socket of the
// conversation (the visitor's other tab too); the same client_message_id again is acknowledged
// with the original and stored once; a REST message reaches the sockets; typing reaches the other
// socket only; bad frames are refused with an error frame.
func TestSendAckFanOutAndDedupe(t *testing.T) {
	st := teststack.Start(t)
	in := startInstance(t, st, socket.Config{})
	tn := newTenant(t, st, domain.WidgetSettings{})
	ctx := t.Context()
	s1 := session(t, st, tn.WidgetID, "", "")
	tab1 := dial(t, in, s1.Token, hostOrigin)
	tab1.send(map[string]any{"type": "resume", "after_seq": 0})
	s2 := session(t, st, tn.WidgetID, s1.VisitorID, s1.ConversationID)
	tab2 := dial(t, in, s2.Token, hostOrigin)
	tab2.send(map[string]any{"type": "resume", "after_seq": 0})
	waitFollowers(t, st, 2)

	tab1.send(map[string]any{"type": "send", "client_message_id": "m-1", "text": "Hello there"})
	// The sender gets the ack and the message, in either order; the other tab the message.
	var ack frame
	got := map[string]frame{}
	for len(got) < 2 {
		f, err := tab1.next(10 * time.Second)
		if err != nil {
			t.Fatalf("waiting for the ack and the message: %v (have %v)", err, got)
		}
		got[f.Type] = f
	}
	ack = got["ack"]
	if ack.Seq != 1 || ack.ClientMessageID != "m-1" || ack.ID == "" {
		t.Fatalf("ack %+v", ack)
	}
	for name, m := range map[string]frame{"tab1": got["message"], "tab2": tab2.messages(0, 1, 10*time.Second)[0]} {
		if m.Seq != 1 || m.ID != ack.ID || m.Text != "Hello there" || m.Author.Type != domain.AuthorContact || m.Author.ID != s1.VisitorID || m.ClientMessageID != "m-1" {
			t.Errorf("%s got %+v", name, m)
		}
	}
	// A retry of the same send: the original, never a second message.
	tab2.send(map[string]any{"type": "send", "client_message_id": "m-1", "text": "Hello there"})
	if again := tab2.expect("ack", 10*time.Second); again.ID != ack.ID || again.Seq != 1 {
		t.Errorf("repeated send acked %+v, want the original %+v", again, ack)
	}
	// A message through the REST API's service reaches both sockets.
	sent, err := st.Conversations.SendMessage(ctx, tn.Owner, s1.ConversationID, app.SendMessageInput{Text: "An agent answers", ClientMessageID: "agent-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*sock{tab1, tab2} {
		if m := s.messages(1, 2, 10*time.Second)[0]; m.ID != sent.Message.ID || m.Author.Type != domain.AuthorUser {
			t.Errorf("REST message arrived as %+v", m)
		}
	}
	msgs, err := st.Conversations.ListMessages(ctx, tn.Owner, s1.ConversationID, app.ListMessagesInput{})
	if err != nil || len(msgs) != 2 {
		t.Fatalf("stored messages %+v, %v: want exactly 2", msgs, err)
	}
	// Typing reaches the other tab, not the typist.
	tab1.send(map[string]any{"type": "typing"})
	if f := tab2.expect("typing", 10*time.Second); f.Author.Type != domain.AuthorContact {
		t.Errorf("typing frame %+v", f)
	}
	// Bad frames.
	for _, bad := range []string{`{"type":"send","client_message_id":"m-2","text":"   "}`, `{"type":"shout"}`, `not json`,
		`{"type":"send","text":"no id"}`, `{"type":"resume"}`} {
		if err := tab1.ws.Write(ctx, websocket.MessageText, []byte(bad)); err != nil {
			t.Fatal(err)
		}
		if f := tab1.expect("error", 10*time.Second); f.Code != "invalid" {
			t.Errorf("%s: error frame %+v", bad, f)
		}
	}
	if f, err := tab1.next(300 * time.Millisecond); err == nil && f.Type == "typing" {
		t.Errorf("the typist got their own typing notice")
	}
}

// waitFollowers waits until the hub has n followers.
func waitFollowers(t *testing.T, st *teststack.Stack, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for st.Live.Followers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d followers, want %d", st.Live.Followers(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestResumeWhileAppending: sockets that resume from various points while another client appends
// get every message after their point exactly once, in order, with no gap: the catch-up from the
// store and the live messages meet without a seam.
func TestResumeWhileAppending(t *testing.T) {
	st := teststack.Start(t)
	in := startInstance(t, st, socket.Config{})
	tn := newTenant(t, st, domain.WidgetSettings{})
	s0 := session(t, st, tn.WidgetID, "", "")
	const total = 150
	ctx := t.Context()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= total; i++ {
			if _, err := st.Conversations.SendMessage(ctx, tn.Owner, s0.ConversationID, app.SendMessageInput{
				Text: fmt.Sprintf("message %d", i), ClientMessageID: fmt.Sprintf("c-%d", i)}); err != nil {
				t.Errorf("append %d: %v", i, err)
				return
			}
		}
	}()
	// Resume at several moments of the append, each from the seq the visitor had then.
	var readers sync.WaitGroup
	for k := range 6 {
		time.Sleep(time.Duration(k*40) * time.Millisecond)
		msgs, err := st.Conversations.ListMessages(ctx, tn.Owner, s0.ConversationID, app.ListMessagesInput{})
		if err != nil {
			t.Fatal(err)
		}
		after := uint64(0)
		if n := len(msgs); n > 0 {
			after = msgs[n/2].Seq // somewhere in what exists: part catch-up, part live
		}
		s := session(t, st, tn.WidgetID, s0.VisitorID, s0.ConversationID)
		c := dial(t, in, s.Token, hostOrigin)
		c.send(map[string]any{"type": "resume", "after_seq": after})
		readers.Add(1)
		go func() {
			defer readers.Done()
			got := c.messages(after, total, 60*time.Second)
			if len(got) > 0 && got[len(got)-1].Text != fmt.Sprintf("message %d", total) {
				t.Errorf("last message %+v", got[len(got)-1])
			}
		}()
	}
	wg.Wait()
	readers.Wait()
}

// TestTwoInstancesShareNATS: two server instances (each with its own NATS connection, event store
// client, live hub and gateway) deliver each other's messages to their sockets.
func TestTwoInstancesShareNATS(t *testing.T) {
	st := teststack.Start(t)
	a := startInstance(t, st, socket.Config{})
	// Instance B: another connection to the same NATS server and the same database.
	nc := st.NATS.Connect(t)
	store, err := eventstore.Open(t.Context(), nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	core := *st.Core
	core.Store, core.Conn = store, nc
	b := startInstance(t, teststack.StartOn(t, &core, st.Pepper), socket.Config{})

	tn := newTenant(t, st, domain.WidgetSettings{})
	sa := session(t, a.Stack, tn.WidgetID, "", "")
	onA := dial(t, a, sa.Token, hostOrigin)
	onA.send(map[string]any{"type": "resume", "after_seq": 0})
	sb := session(t, b.Stack, tn.WidgetID, sa.VisitorID, sa.ConversationID)
	onB := dial(t, b, sb.Token, hostOrigin)
	onB.send(map[string]any{"type": "resume", "after_seq": 0})
	waitFollowers(t, a.Stack, 1)
	waitFollowers(t, b.Stack, 1)

	onA.send(map[string]any{"type": "send", "client_message_id": "from-a", "text": "sent through A"})
	onB.send(map[string]any{"type": "send", "client_message_id": "from-b", "text": "sent through B"})
	for name, s := range map[string]*sock{"A": onA, "B": onB} {
		got := map[string]bool{}
		for _, m := range s.messages(0, 2, 15*time.Second) {
			got[m.Text] = true
		}
		if !got["sent through A"] || !got["sent through B"] {
			t.Errorf("socket on %s got %v", name, got)
		}
	}
	// Typing crosses instances too.
	onB.send(map[string]any{"type": "typing"})
	onA.expect("typing", 10*time.Second)
}

// TestSlowSocketClosedForResume: a socket that stops reading never slows the others; once its
// queue fills it is closed with 4000, and a resume from its last seq gets the rest, gap-free.
func TestSlowSocketClosedForResume(t *testing.T) {
	st := teststack.Start(t)
	// A small queue per follower, so the test need not write megabytes.
	live, err := app.NewLive(app.LiveConfig{Store: st.Store, Registry: st.Registry, Signals: eventstore.NewMemorySignals(), QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = live.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-live.Running()
	stack := *st
	stack.Live = live
	in := startInstanceBuffers(t, &stack, socket.Config{WriteTimeout: 60 * time.Second}, true)
	tn := newTenant(t, st, domain.WidgetSettings{})
	s := session(t, st, tn.WidgetID, "", "")
	ws, resp, err := dialOpts(t, in, s.Token, hostOrigin, smallBufferClient())
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	slow := &sock{t: t, ws: ws}
	slow.send(map[string]any{"type": "resume", "after_seq": 0})
	s2 := session(t, st, tn.WidgetID, s.VisitorID, s.ConversationID)
	fast := dial(t, in, s2.Token, hostOrigin)
	fast.send(map[string]any{"type": "resume", "after_seq": 0})
	for live.Followers() < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	// Big messages fill the slow socket's (small) TCP buffers, then its queue.
	const total = 150
	text := strings.Repeat("x", domain.MaxMessageTextLen)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= total; i++ {
			if _, err := st.Conversations.SendMessage(t.Context(), tn.Owner, s.ConversationID, app.SendMessageInput{Text: text}); err != nil {
				t.Errorf("append %d: %v", i, err)
				return
			}
		}
	}()
	// The fast socket keeps up while the slow one reads nothing.
	fast.messages(0, total, 120*time.Second)
	wg.Wait()
	// The slow socket now reads: some messages in order, then the close for a resume.
	var last uint64
	for {
		f, err := slow.next(30 * time.Second)
		if err != nil {
			if code := closeStatus(err); code != socket.CloseResume {
				t.Fatalf("slow socket ended with %v (code %d), want %d", err, code, socket.CloseResume)
			}
			break
		}
		if f.Type == "message" {
			if f.Seq != last+1 {
				t.Fatalf("slow socket got seq %d after %d", f.Seq, last)
			}
			last = f.Seq
		}
	}
	if last >= total {
		t.Fatalf("the slow socket got all %d messages; it never fell behind", total)
	}
	s3 := session(t, st, tn.WidgetID, s.VisitorID, s.ConversationID)
	again := dial(t, in, s3.Token, hostOrigin)
	again.send(map[string]any{"type": "resume", "after_seq": last})
	again.messages(last, total, 60*time.Second)
}

// TestFrameLimits: an oversized frame closes the socket (1009); frames beyond the rate budget are
// refused with rate_limited; shutdown closes sockets with 1001.
func TestFrameLimits(t *testing.T) {
	st := teststack.Start(t)
	in := startInstance(t, st, socket.Config{FrameRate: 1, FrameBurst: 3, MaxFrameBytes: 1024})
	tn := newTenant(t, st, domain.WidgetSettings{})
	s := session(t, st, tn.WidgetID, "", "")
	c := dial(t, in, s.Token, hostOrigin)
	for range 6 {
		c.send(map[string]any{"type": "typing"})
	}
	if f := c.expect("error", 10*time.Second); f.Code != "rate_limited" {
		t.Errorf("over budget: %+v", f)
	}
	big := dial(t, in, session(t, st, tn.WidgetID, s.VisitorID, s.ConversationID).Token, hostOrigin)
	big.send(map[string]any{"type": "send", "client_message_id": "big", "text": strings.Repeat("y", 2000)})
	if _, err := big.next(10 * time.Second); closeStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("oversized frame: %v, want close 1009", err)
	}
	idle := dial(t, in, session(t, st, tn.WidgetID, s.VisitorID, s.ConversationID).Token, hostOrigin)
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { _ = in.Gateway.Shutdown(shut) }()
	if _, err := idle.next(10 * time.Second); closeStatus(err) != websocket.StatusGoingAway {
		t.Errorf("shutdown: %v, want close 1001", err)
	}
}

// TestPublicWidgetRoutes: the public routes answer exactly the widget's origins, with CORS for
// exactly those, and problem+json otherwise.
func TestPublicWidgetRoutes(t *testing.T) {
	st := teststack.Start(t)
	in := startInstance(t, st, socket.Config{})
	tn := newTenant(t, st, domain.WidgetSettings{Name: "Shop", AllowedOrigins: []string{hostOrigin}, Greeting: "Hello!",
		Colors: domain.WidgetColors{Primary: "#112233"}})
	type answer struct {
		StatusCode int
		Header     http.Header
		Body       []byte
	}
	do := func(method, path, origin string, body any) answer {
		t.Helper()
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(t.Context(), method, in.HTTP.URL+path, r)
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "POST")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return answer{StatusCode: resp.StatusCode, Header: resp.Header, Body: b}
	}
	cfgPath := "/api/v1/widget/config?widget_id=" + tn.WidgetID
	resp := do("GET", cfgPath, hostOrigin, nil)
	var pub map[string]any
	_ = json.Unmarshal(resp.Body, &pub)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != hostOrigin || pub["greeting"] != "Hello!" ||
		pub["colors"].(map[string]any)["primary"] != "#112233" || pub["allowed_origins"] != nil {
		t.Errorf("config: %d %v %v", resp.StatusCode, resp.Header, pub)
	}
	if r := do("GET", cfgPath, "https://evil.example.com", nil); r.StatusCode != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("config from another origin: %d, ACAO %q", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
	}
	if r := do("GET", "/api/v1/widget/config?widget_id="+uuid.NewString(), hostOrigin, nil); r.StatusCode != 404 {
		t.Errorf("unknown widget: %d", r.StatusCode)
	}
	sessPath := "/api/v1/widget/sessions?widget_id=" + tn.WidgetID
	if r := do("OPTIONS", sessPath, hostOrigin, nil); r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != hostOrigin ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", r.StatusCode, r.Header)
	}
	if r := do("OPTIONS", sessPath, "https://evil.example.com", nil); r.StatusCode != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", r.StatusCode, r.Header)
	}
	if r := do("OPTIONS", "/api/v1/widget/sessions", hostOrigin, nil); r.StatusCode != 403 {
		t.Errorf("preflight without a widget: %d", r.StatusCode)
	}
	r := do("POST", sessPath, hostOrigin, map[string]any{"widget_id": tn.WidgetID})
	var sess map[string]any
	_ = json.Unmarshal(r.Body, &sess)
	if r.StatusCode != 201 || r.Header.Get("Access-Control-Allow-Origin") != hostOrigin || sess["token"] == "" || sess["conversation_id"] == "" {
		t.Errorf("session: %d %v", r.StatusCode, sess)
	}
	if r := do("POST", sessPath, "https://evil.example.com", map[string]any{"widget_id": tn.WidgetID}); r.StatusCode != 403 {
		t.Errorf("session from another origin: %d", r.StatusCode)
	}
	if r := do("POST", sessPath, "", map[string]any{"widget_id": tn.WidgetID}); r.StatusCode != 403 {
		t.Errorf("session without an origin: %d", r.StatusCode)
	}
	if r := do("POST", "/api/v1/widget/sessions?widget_id="+uuid.NewString(), hostOrigin, map[string]any{"widget_id": tn.WidgetID}); r.StatusCode != 400 {
		t.Errorf("query and body disagree: %d", r.StatusCode)
	}
	if r := do("POST", "/api/v1/widget/ws?token=x", hostOrigin, nil); r.StatusCode != 405 {
		t.Errorf("POST to the socket: %d", r.StatusCode)
	}
}
