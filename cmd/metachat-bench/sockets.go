package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/adapters/socket"
	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// Sizes of the sockets section.
const (
	sockConversations = 500  // conversations, each with two sockets: 1,000 open sockets
	sockSamples       = 3000 // sends timed from the sender's frame to the other socket's frame
	sockSenders       = 8    // sends in flight at once
	sockOrigin        = "http://bench.metachat.invalid"
	widgetAsset       = "adapters/webui/assets/widget.js"
)

// startWidgets adds the widgets service, the live hub and the socket gateway to the world.
func (w *messageWorld) startWidgets(ctx context.Context, conv *app.Conversations, nc *nats.Conn, db projections.Beginner, logger *slog.Logger) error {
	secret, err := app.GenerateAPIKeyPepper()
	if err != nil {
		return err
	}
	nonces, err := w.store.NewOnce(ctx, "bench_widget_nonces", app.WidgetNonceTTL)
	if err != nil {
		return err
	}
	if w.widgets, err = app.NewWidgets(app.WidgetsConfig{Store: w.store, Registry: w.reg, DB: db, Waiter: w.waiter,
		Conversations: conv, Secret: secret, Nonces: nonces, Logger: logger}); err != nil {
		return err
	}
	// The hub stops reading the stream IdleAfter after its last follower left; the load section's
	// "back to baseline" snapshot (taken before any socket opened) waits at most 15 s for that.
	if w.live, err = app.NewLive(app.LiveConfig{Store: w.store, Registry: w.reg, Signals: eventstore.NewNATSSignals(nc, "bench.sig"),
		IdleAfter: 2 * time.Second, Logger: logger}); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.live.Run(runCtx) }()
	w.closers = append(w.closers, func() { cancel(); <-done })
	<-w.live.Running()
	w.gateway, err = socket.New(socket.Config{Widgets: w.widgets, Live: w.live, Logger: logger})
	if err != nil {
		return err
	}
	w.closers = append(w.closers, func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = w.gateway.Shutdown(sctx)
	})
	return nil
}

// benchSockets measures the web chat gateway: with 1,000 sockets open (two per conversation), the
// time from a visitor's send frame to the message frame on the conversation's other socket; the
// memory an idle socket costs; and the widget script's gzipped size.
func benchSockets(ctx context.Context, t *table, _ options, logger *slog.Logger) error {
	t.header(fmt.Sprintf("sockets: widget gateway, %d open sockets, send -> delivered to the conversation's other socket (target: P99 <= 25 ms); widget size (target <= 15 KB gzipped)", 2*sockConversations))
	w, err := startMessageWorld(ctx, logger)
	if err != nil {
		return err
	}
	defer w.close()
	wd, _, err := w.widgets.CreateWidget(ctx, w.owner, domain.WidgetSettings{Name: "Bench", AllowedOrigins: []string{sockOrigin}}, "")
	if err != nil {
		return err
	}
	before := heapInUse()
	goroutinesBefore := runtime.NumGoroutine()
	pairs := make([]*sockPair, 0, sockConversations)
	defer func() {
		for _, p := range pairs {
			p.close()
		}
	}()
	for range sockConversations {
		p, err := w.openPair(ctx, wd.ID)
		if err != nil {
			return err
		}
		pairs = append(pairs, p)
	}
	for w.live.Followers() < 2*sockConversations {
		time.Sleep(10 * time.Millisecond)
	}
	after := heapInUse()
	perSocket := float64(after-before) / float64(2*sockConversations)
	goroutinesPer := float64(runtime.NumGoroutine()-goroutinesBefore) / float64(2*sockConversations)

	lat, errs, elapsed := runSocketSends(ctx, pairs)
	t.row("scenario", "samples", "sends/s", "P50", "P99", "errors")
	t.row(fmt.Sprintf("send -> other socket, %d senders, %d sockets open", sockSenders, 2*sockConversations),
		fmt.Sprint(len(lat)), fmt.Sprintf("%.0f", rate(len(lat), elapsed)), ms(lat.pct(50)), ms(lat.pct(99)), fmt.Sprint(errs))
	t.row("measure", "value", "", "", "", "")
	t.row("heap per idle socket (server and bench client together, an upper bound)", fmt.Sprintf("%.1f KiB", perSocket/1024), "", "", "", "")
	t.row("goroutines per idle socket (server and bench client together)", fmt.Sprintf("%.1f", goroutinesPer), "", "", "", "")
	size, gz, err := gzippedSize(widgetAsset)
	if err != nil {
		return err
	}
	t.row("widget.js", fmt.Sprintf("%d B, %d B gzipped (%.1f KB)", size, gz, float64(gz)/1024), "", "", "", "")
	return nil
}

// heapInUse returns the heap's spans in use after two collections.
func heapInUse() uint64 {
	return collectedMemStats().HeapInuse
}

// collectedMemStats returns the memory statistics after two collections.
func collectedMemStats() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// gzippedSize is a file's size and its size gzipped at the best compression.
func gzippedSize(path string) (int, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("widget script: %w (run make bench from the repository root)", err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return len(b), buf.Len(), nil
}

// sockPair is one conversation's two sockets: the visitor sends on a, and b receives.
type sockPair struct {
	a, b    *websocket.Conn
	wmu     sync.Mutex // one send frame at a time on a
	mu      sync.Mutex
	waiting map[string]chan struct{} // client_message_id -> closed when b has the message
}

func (p *sockPair) close() {
	_ = p.a.CloseNow()
	_ = p.b.CloseNow()
}

// sendAndAwait sends a message with client_message_id id on a and waits until b has it.
func (p *sockPair) sendAndAwait(ctx context.Context, id string) error {
	ch := make(chan struct{})
	p.mu.Lock()
	p.waiting[id] = ch
	p.mu.Unlock()
	p.wmu.Lock()
	err := p.a.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"send","client_message_id":%q,"text":"bench message %s"}`, id, id))
	p.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("message %s not delivered", id)
	}
}

// openPair starts a visitor session and opens two sockets on it (two tabs), both resumed.
func (w *messageWorld) openPair(ctx context.Context, widgetID string) (*sockPair, error) {
	s1, err := w.widgets.StartSession(ctx, app.StartSessionInput{WidgetID: widgetID, Origin: sockOrigin})
	if err != nil {
		return nil, err
	}
	s2, err := w.widgets.StartSession(ctx, app.StartSessionInput{WidgetID: widgetID, VisitorID: s1.VisitorID, ConversationID: s1.ConversationID, Origin: sockOrigin})
	if err != nil {
		return nil, err
	}
	p := &sockPair{waiting: map[string]chan struct{}{}}
	if p.a, err = w.dialSocket(ctx, s1.Token); err != nil {
		return nil, err
	}
	if p.b, err = w.dialSocket(ctx, s2.Token); err != nil {
		_ = p.a.CloseNow()
		return nil, err
	}
	go drain(p.a, nil)
	go drain(p.b, p)
	return p, nil
}

func (w *messageWorld) dialSocket(ctx context.Context, token string) (*websocket.Conn, error) {
	h := http.Header{}
	h.Set("Origin", sockOrigin)
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(w.base, "http")+"/api/v1/widget/ws?token="+token,
		&websocket.DialOptions{HTTPHeader: h})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dial the widget socket: %w", err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"resume","after_seq":0}`)); err != nil {
		return nil, err
	}
	return c, nil
}

// drain reads a socket's frames until it closes; on the receiving socket it signals each awaited
// message.
func drain(c *websocket.Conn, p *sockPair) {
	for {
		_, b, err := c.Read(context.Background())
		if err != nil {
			return
		}
		if p == nil {
			continue
		}
		var f struct {
			Type            string `json:"type"`
			ClientMessageID string `json:"client_message_id"`
		}
		if json.Unmarshal(b, &f) != nil || f.Type != "message" {
			continue
		}
		p.mu.Lock()
		if ch, ok := p.waiting[f.ClientMessageID]; ok {
			close(ch)
			delete(p.waiting, f.ClientMessageID)
		}
		p.mu.Unlock()
	}
}

// runSocketSends sends sockSamples messages from random conversations' first sockets, sockSenders
// at a time, and times each until the second socket has it.
func runSocketSends(ctx context.Context, pairs []*sockPair) (latencies, int, time.Duration) {
	var mu sync.Mutex
	var lat latencies
	errs := 0
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range sockSenders {
		wg.Go(func() {
			for n := range jobs {
				p := pairs[rand.IntN(len(pairs))]
				t0 := time.Now()
				err := p.sendAndAwait(ctx, fmt.Sprintf("bench-sock-%d", n))
				mu.Lock()
				if err != nil {
					errs++
				} else {
					lat = append(lat, time.Since(t0))
				}
				mu.Unlock()
			}
		})
	}
	for n := range sockSamples {
		jobs <- n
	}
	close(jobs)
	wg.Wait()
	return lat, errs, time.Since(start)
}
