package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/adapters/natsserver"
	"github.com/metachat/metachat/adapters/pgserver"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// The fault suite: steady traffic through the real HTTP API and real widget sockets of a
// `metachat serve` process, against a NATS server and a Postgres server the test owns, while it
// kills the process with SIGKILL and starts it again, restarts NATS, restarts Postgres, and drops
// widget sockets at random. Clients retry every unacknowledged send with the same
// client_message_id, as the API documents. Afterwards: every acknowledged message is stored
// exactly once in the stream and in the read model, every retried send once, each conversation's
// seq has no gap, and the read model equals a fresh replay of the stream.

const faultOrigin = "http://faults.metachat.invalid"

// faultWorld is the system under test and its dependencies.
type faultWorld struct {
	t       *testing.T
	bin     string
	dataDir string
	addr    string
	metrics string
	natsDir string
	natsSrv *natsserver.Server
	natsCfg natsserver.Config
	pgCfg   pgserver.Config
	pg      *pgserver.Server
	mu      sync.Mutex
	procs   map[string]*proc // by command: serve, or api and worker
	logs    *safeBuffer
}

// proc is one running metachat process.
type proc struct {
	cmd    *exec.Cmd
	exited chan error
	addr   string
}

// startFaultWorld starts NATS, Postgres and the given metachat commands ("serve", or "api" and
// "worker").
func startFaultWorld(t *testing.T, commands ...string) *faultWorld {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	w := &faultWorld{t: t, bin: bin, dataDir: dataDir(t), addr: freeAddr(t), metrics: freeAddr(t), logs: &safeBuffer{},
		procs: map[string]*proc{}}
	w.natsDir = filepath.Join(filepath.Dir(w.dataDir), "nats")
	_, port, _ := net.SplitHostPort(freeAddr(t))
	natsPort, _ := strconv.Atoi(port)
	w.natsCfg = natsserver.Config{StoreDir: w.natsDir, Port: natsPort, ServerName: "faults"}
	w.startNATS()
	_, port, _ = net.SplitHostPort(freeAddr(t))
	pgPort, _ := strconv.Atoi(port)
	w.pgCfg = pgserver.Config{DataDir: filepath.Join(filepath.Dir(w.dataDir), "pg"), Port: pgPort, NoSync: true}
	w.startPostgres()
	t.Cleanup(func() {
		for name := range w.procs {
			w.kill(name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = w.pg.Stop(ctx)
		w.natsSrv.Shutdown()
	})
	for _, c := range commands {
		w.start(c)
	}
	return w
}

func (w *faultWorld) startNATS() {
	w.t.Helper()
	s, err := natsserver.Start(context.Background(), w.natsCfg)
	if err != nil {
		w.t.Fatalf("start NATS: %v", err)
	}
	w.natsSrv = s
}

func (w *faultWorld) startPostgres() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := pgserver.Start(ctx, w.pgCfg)
	if err != nil {
		w.t.Fatalf("start Postgres: %v", err)
	}
	w.pg = s
}

// start runs `metachat <command>` ("serve", "api" or "worker") and waits until it is healthy. The
// API (serve or api) listens on w.addr; a worker on an address of its own, on the same one each
// time it starts.
func (w *faultWorld) start(command string) {
	w.t.Helper()
	w.mu.Lock()
	p := w.procs[command]
	if p == nil {
		p = &proc{addr: w.addr}
		if command == "worker" {
			p.addr = freeAddr(w.t)
		}
		w.procs[command] = p
	}
	w.mu.Unlock()
	metrics := w.metrics
	if command == "worker" {
		metrics = "127.0.0.1:0"
	}
	cmd := exec.Command(w.bin, command)
	cmd.Env = append(filteredEnv(), "METACHAT_HTTP_ADDR="+p.addr, "METACHAT_DATA_DIR="+w.dataDir,
		"METACHAT_METRICS_ADDR="+metrics, "NATS_URL="+w.natsSrv.ClientURL(), "DATABASE_URL="+w.pg.URL(),
		"METACHAT_DEMO=false", "METACHAT_LOG_LEVEL=warn")
	cmd.Stdout, cmd.Stderr = w.logs, w.logs
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	w.mu.Lock()
	p.cmd, p.exited = cmd, exited
	w.mu.Unlock()
	waitHealthy(w.t, "http://"+p.addr+"/api/health", exited, w.logs)
}

// kill kills a process with SIGKILL (no shutdown at all).
func (w *faultWorld) kill(command string) {
	w.mu.Lock()
	p := w.procs[command]
	var cmd *exec.Cmd
	var exited chan error
	if p != nil {
		cmd, exited = p.cmd, p.exited
		p.cmd = nil
	}
	w.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// restartNATS stops the NATS server and starts it again on the same port and store.
func (w *faultWorld) restartNATS() {
	w.natsSrv.Shutdown()
	time.Sleep(500 * time.Millisecond)
	w.startNATS()
}

// restartPostgres stops Postgres (fast shutdown) and starts it again on the same port and data.
func (w *faultWorld) restartPostgres() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.pg.Stop(ctx); err != nil {
		w.t.Fatalf("stop Postgres: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	w.startPostgres()
}

// api is a small client of the API.
type api struct {
	base string
	http *http.Client
}

func (a api) do(ctx context.Context, method, path, token string, body any, hdr map[string]string) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// must retries a setup call until it answers want (the server may be starting).
func (a api) must(t *testing.T, method, path, token string, body any, hdr map[string]string, want int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, b, err := a.do(t.Context(), method, path, token, body, hdr)
		if err == nil && status == want {
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: %d %v %s", method, path, status, err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ledger records what the server acknowledged.
type ledger struct {
	mu    sync.Mutex
	acked map[string]map[string]ackRef // conversation -> client_message_id -> (id, seq)
	sent  map[string]int               // conversation -> client messages sent (each acked eventually)
	bad   []string
}

type ackRef struct {
	ID  string
	Seq uint64
}

func (l *ledger) ack(conv, cmid, id string, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.acked[conv] == nil {
		l.acked[conv] = map[string]ackRef{}
	}
	if prev, ok := l.acked[conv][cmid]; ok && (prev.ID != id || prev.Seq != seq) {
		l.bad = append(l.bad, fmt.Sprintf("%s/%s acknowledged as %v and as %s/%d", conv, cmid, prev, id, seq))
	}
	l.acked[conv][cmid] = ackRef{ID: id, Seq: seq}
}

func (l *ledger) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bad = append(l.bad, fmt.Sprintf(format, args...))
}

// restClient sends messages to one conversation, one at a time, each retried with the same
// client_message_id until it is acknowledged.
func restClient(ctx, finish context.Context, a api, key, conv string, l *ledger) {
	for n := 1; ctx.Err() == nil; n++ {
		cmid := fmt.Sprintf("rest-%d", n)
		for {
			cctx, cancel := context.WithTimeout(finish, 5*time.Second)
			status, b, err := a.do(cctx, "POST", "/api/v1/conversations/"+conv+"/messages", key, map[string]any{"text": "message " + cmid, "client_message_id": cmid}, nil)
			cancel()
			if err == nil && (status == 201 || status == 200) {
				var m struct {
					ID  string `json:"id"`
					Seq uint64 `json:"seq"`
				}
				if err := json.Unmarshal(b, &m); err != nil || m.ID == "" {
					l.problem("answer %q", b)
				}
				l.ack(conv, cmid, m.ID, m.Seq)
				break
			}
			if err == nil && status >= 400 && status < 500 && status != 429 {
				l.problem("send %s to %s: %d %s", cmid, conv, status, b)
				return
			}
			if finish.Err() != nil {
				l.problem("send %s to %s never acknowledged: %d %v", cmid, conv, status, err)
				return
			}
			time.Sleep(time.Duration(50+rand.IntN(150)) * time.Millisecond)
		}
	}
}

// socketClient is a visitor: it sends over the widget socket, one message at a time, and on any
// trouble (no ack in time, a dropped socket) reconnects with a new session, resumes from the last
// seq it saw, and re-sends the unacknowledged message with the same client_message_id. The seqs
// it receives after each resume must be gap-free.
type socketClient struct {
	a        api
	widgetID string
	visitor  string
	conv     string
	l        *ledger
	mu       sync.Mutex
	ws       *websocket.Conn
	drops    atomic.Int64
}

func (c *socketClient) connect(ctx context.Context, lastSeq uint64) (*websocket.Conn, error) {
	body := map[string]any{"widget_id": c.widgetID}
	if c.visitor != "" {
		body["visitor_id"], body["conversation_id"] = c.visitor, c.conv
	}
	status, b, err := c.a.do(ctx, "POST", "/api/v1/widget/sessions?widget_id="+c.widgetID, "", body, map[string]string{"Origin": faultOrigin})
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	if status != 201 {
		return nil, fmt.Errorf("session: %d %s", status, b)
	}
	var s struct {
		Token          string `json:"token"`
		VisitorID      string `json:"visitor_id"`
		ConversationID string `json:"conversation_id"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	c.visitor, c.conv = s.VisitorID, s.ConversationID
	h := http.Header{}
	h.Set("Origin", faultOrigin)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(c.a.base, "http")+"/api/v1/widget/ws?token="+s.Token, &websocket.DialOptions{HTTPHeader: h})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	if err := ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"resume","after_seq":%d}`, lastSeq)); err != nil {
		_ = ws.CloseNow()
		return nil, err
	}
	c.mu.Lock()
	c.ws = ws
	c.mu.Unlock()
	return ws, nil
}

// drop closes the client's socket abruptly, as a flaky network would.
func (c *socketClient) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ws != nil {
		_ = c.ws.CloseNow()
		c.drops.Add(1)
	}
}

func (c *socketClient) run(ctx, finish context.Context) {
	var lastSeq uint64
	for n := 1; ctx.Err() == nil; n++ {
		cmid := fmt.Sprintf("ws-%d", n)
		for {
			if finish.Err() != nil {
				c.l.problem("socket send %s to %s never acknowledged", cmid, c.conv)
				return
			}
			ws, err := c.connect(finish, lastSeq)
			if err != nil {
				time.Sleep(time.Duration(100+rand.IntN(200)) * time.Millisecond)
				continue
			}
			acked, seq := c.exchange(finish, ws, cmid, &lastSeq)
			_ = ws.CloseNow()
			if acked {
				lastSeq = max(lastSeq, seq)
				break
			}
		}
	}
}

// exchange sends one message on ws and reads frames until its ack (true) or trouble (false),
// checking that message seqs continue lastSeq without a gap.
func (c *socketClient) exchange(ctx context.Context, ws *websocket.Conn, cmid string, lastSeq *uint64) (bool, uint64) {
	if err := ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"send","client_message_id":%q,"text":"visitor %s"}`, cmid, cmid)); err != nil {
		return false, 0
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		_, b, err := ws.Read(rctx)
		if err != nil {
			return false, 0
		}
		var f struct {
			Type            string `json:"type"`
			ID              string `json:"id"`
			Seq             uint64 `json:"seq"`
			ClientMessageID string `json:"client_message_id"`
			Code            string `json:"code"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			c.l.problem("frame %q", b)
			return false, 0
		}
		switch f.Type {
		case "message":
			if f.Seq != *lastSeq+1 {
				c.l.problem("socket of %s got seq %d after %d", c.conv, f.Seq, *lastSeq)
			}
			*lastSeq = f.Seq
		case "ack":
			if f.ClientMessageID == cmid {
				c.l.ack(c.conv, cmid, f.ID, f.Seq)
				return true, f.Seq
			}
		case "error":
			if f.Code == "invalid" || f.Code == "conflict" {
				c.l.problem("socket send %s refused: %s", cmid, b)
			}
			return false, 0
		}
	}
}

func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite runs the binary under faults for a few minutes")
	}
	w := startFaultWorld(t, "serve")
	w.run(t, func(steady func()) {
		t.Log("fault: SIGKILL metachat serve, then start it again")
		w.kill("serve")
		time.Sleep(500 * time.Millisecond)
		w.start("serve")
		steady()
		t.Log("fault: restart NATS")
		w.restartNATS()
		steady()
		t.Log("fault: restart Postgres")
		w.restartPostgres()
		steady()
	})
}

// TestFaultsSplitRoles: `metachat api` and `metachat worker` as separate processes; the worker
// (the projectors) is killed with SIGKILL while it applies batches, then started again; the API
// keeps acknowledging sends meanwhile (their reads wait for the projection up to the
// read-your-writes timeout), and the read model catches up with nothing lost or doubled.
func TestFaultsSplitRoles(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite runs the binary under faults for a few minutes")
	}
	w := startFaultWorld(t, "worker", "api")
	w.run(t, func(steady func()) {
		for range 2 {
			t.Log("fault: SIGKILL metachat worker mid-batch, then start it again")
			w.kill("worker")
			time.Sleep(time.Second)
			w.start("worker")
			steady()
		}
	})
}

// run drives the load, calls faults (with a function that lets the load run steadily for a
// while), stops the load, and verifies.
func (w *faultWorld) run(t *testing.T, faults func(steady func())) {
	a := api{base: "http://" + w.addr, http: &http.Client{Timeout: 10 * time.Second}}
	owner := a.must(t, "POST", "/api/v1/signup", "", map[string]any{"tenant_name": "Faults", "email": "owner@faults.example", "password": "correct-horse-battery"}, nil, 201)
	token := owner["access_token"].(string)
	key := a.must(t, "POST", "/api/v1/api-keys", token, map[string]any{"name": "faults"}, nil, 201)["key"].(string)
	widget := a.must(t, "POST", "/api/v1/widgets", token, map[string]any{"name": "Faults", "allowed_origins": []string{faultOrigin}}, nil, 201)["id"].(string)
	l := &ledger{acked: map[string]map[string]ackRef{}, sent: map[string]int{}}

	const restClients, socketClients = 6, 4
	var convs []string
	for i := range restClients {
		c := a.must(t, "POST", "/api/v1/conversations", key, map[string]any{"channel": "api", "contact": map[string]any{"external_id": fmt.Sprintf("faults-%d", i)}}, nil, 201)
		convs = append(convs, c["id"].(string))
	}
	load, stopLoad := context.WithCancel(context.Background())
	finish, stopFinish := context.WithTimeout(context.Background(), 5*time.Minute)
	defer stopFinish()
	var wg sync.WaitGroup
	for _, conv := range convs {
		wg.Go(func() { restClient(load, finish, a, key, conv, l) })
	}
	sockets := make([]*socketClient, socketClients)
	for i := range sockets {
		sockets[i] = &socketClient{a: a, widgetID: widget, l: l}
		wg.Go(func() { sockets[i].run(load, finish) })
	}
	// Widget sockets dropped at random throughout.
	dropCtx, stopDrops := context.WithCancel(context.Background())
	var dropWG sync.WaitGroup
	dropWG.Go(func() {
		for dropCtx.Err() == nil {
			time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
			sockets[rand.IntN(len(sockets))].drop()
		}
	})

	steady := func() { time.Sleep(3 * time.Second) }
	steady()
	faults(steady)
	stopLoad()
	wg.Wait()
	stopDrops()
	dropWG.Wait()

	l.mu.Lock()
	bad := append([]string(nil), l.bad...)
	l.mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
	drops := int64(0)
	for _, s := range sockets {
		drops += s.drops.Load()
		if s.conv != "" {
			convs = append(convs, s.conv)
		}
	}
	total := 0
	for _, m := range l.acked {
		total += len(m)
	}
	t.Logf("%d acknowledged messages in %d conversations; %d sockets dropped", total, len(convs), drops)
	if total < 50 {
		t.Errorf("only %d messages acknowledged: the load did not run", total)
	}
	w.verify(t, a, token, convs, l)
}

// verify checks the stream and the read model against the ledger and each other.
func (w *faultWorld) verify(t *testing.T, a api, token string, convs []string, l *ledger) {
	t.Helper()
	// The stream: every message.sent, by conversation.
	nc, err := nats.Connect(w.natsSrv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	store, err := eventstore.Open(t.Context(), nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg := domain.NewDefaultRegistry()
	type msg struct {
		ID, CMID string
		Seq      uint64
	}
	stream := map[string][]msg{}
	var last uint64
	for from := uint64(1); ; {
		evs, err := store.Read(t.Context(), from, domain.Filter{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, env := range evs {
			last = env.Sequence
			if env.Type != domain.EventMessageSent {
				continue
			}
			ev, err := reg.Decode(env)
			if err != nil {
				t.Fatal(err)
			}
			m := ev.(*domain.MessageSent)
			stream[env.AggregateID] = append(stream[env.AggregateID], msg{ID: m.MessageID, CMID: m.ClientMessageID, Seq: m.Seq})
		}
		if len(evs) < 1000 {
			break
		}
		from = evs[len(evs)-1].Sequence + 1
	}
	// Wait for the read model to catch up with the stream, then compare every conversation.
	deadline := time.Now().Add(60 * time.Second)
	for _, conv := range convs {
		var rm []msg
		for {
			rm = rm[:0]
			after := uint64(0)
			for {
				status, b, err := a.do(t.Context(), "GET", fmt.Sprintf("/api/v1/conversations/%s/messages?after_seq=%d&limit=200", conv, after), token, nil, nil)
				if err != nil || status != 200 {
					t.Fatalf("list messages of %s: %d %v %s", conv, status, err, b)
				}
				var page struct {
					Items []struct {
						ID              string `json:"id"`
						Seq             uint64 `json:"seq"`
						ClientMessageID string `json:"client_message_id"`
					} `json:"items"`
				}
				if err := json.Unmarshal(b, &page); err != nil {
					t.Fatal(err)
				}
				for _, it := range page.Items {
					rm = append(rm, msg{ID: it.ID, CMID: it.ClientMessageID, Seq: it.Seq})
					after = it.Seq
				}
				if len(page.Items) < 200 {
					break
				}
			}
			if len(rm) == len(stream[conv]) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		st := stream[conv]
		if len(rm) != len(st) {
			t.Errorf("conversation %s: read model has %d messages, the stream %d", conv, len(rm), len(st))
			continue
		}
		seen := map[string]bool{}
		for i := range st {
			if st[i].Seq != uint64(i+1) {
				t.Errorf("conversation %s: stream message %d has seq %d (a gap or a duplicate)", conv, i+1, st[i].Seq)
			}
			if rm[i] != st[i] {
				t.Errorf("conversation %s seq %d: read model %+v, stream %+v", conv, i+1, rm[i], st[i])
			}
			if st[i].CMID == "" { // the assistant's replies (widget conversations have it on) carry none
				continue
			}
			if seen[st[i].CMID] {
				t.Errorf("conversation %s: client_message_id %s stored twice", conv, st[i].CMID)
			}
			seen[st[i].CMID] = true
		}
		l.mu.Lock()
		for cmid, ref := range l.acked[conv] {
			if !seen[cmid] {
				t.Errorf("conversation %s: acknowledged %s (%v) is not stored", conv, cmid, ref)
			} else if ref.Seq < 1 || ref.Seq > uint64(len(st)) || st[ref.Seq-1].ID != ref.ID || st[ref.Seq-1].CMID != cmid {
				t.Errorf("conversation %s: acknowledged %s as %v, stored otherwise", conv, cmid, ref)
			}
		}
		l.mu.Unlock()
	}
	t.Logf("stream holds %d events; %d conversations checked", last, len(convs))
	if t.Failed() {
		t.Logf("serve logs:\n%s", tail(w.logs.String(), 60))
	}
}
