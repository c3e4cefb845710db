// Package socket is the web chat's real-time gateway: the WebSocket endpoint the widget keeps
// open (GET /api/v1/widget/ws?token=…), speaking the JSON frames of docs/widget-protocol.md over
// github.com/coder/websocket. A handshake spends a single-use visitor session token
// (app.Widgets.OpenSession); sends are the same idempotent append as the REST API; every message
// of the conversation reaches every socket following it through app.Live, on any instance.
package socket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// Close codes the widget acts on (see docs/widget-protocol.md).
const (
	// CloseResume: the socket fell behind; reconnect and resume from the last seq seen.
	CloseResume websocket.StatusCode = 4000
	// CloseSessionEnded: the session is no longer valid; start a new session.
	CloseSessionEnded websocket.StatusCode = 4001
)

// Defaults of Config.
const (
	DefaultMaxFrameBytes = 16 << 10
	DefaultPingInterval  = 30 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
	DefaultSendTimeout   = 15 * time.Second
	DefaultFrameRate     = 10
	DefaultFrameBurst    = 20
	maxTokenLen          = 4096
)

// Config configures a Gateway.
type Config struct {
	// Widgets opens visitor sessions and carries their sends; Live delivers conversations.
	Widgets *app.Widgets
	Live    *app.Live
	// MaxFrameBytes bounds a client frame; a larger one closes the socket (1009). Default
	// DefaultMaxFrameBytes.
	MaxFrameBytes int64
	// PingInterval is how often the server pings; a ping unanswered within the interval closes
	// the socket. Default DefaultPingInterval.
	PingInterval time.Duration
	// WriteTimeout bounds one frame's write; a socket that cannot take a frame in time is closed.
	// Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// SendTimeout bounds one send's append. Default DefaultSendTimeout.
	SendTimeout time.Duration
	// FrameRate and FrameBurst are each socket's budget of client frames per second; frames over
	// it are refused with rate_limited. Defaults DefaultFrameRate and DefaultFrameBurst.
	FrameRate  float64
	FrameBurst int
	// Logger receives the gateway's logs; nil discards them. Tokens are never logged.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = DefaultSendTimeout
	}
	if c.FrameRate == 0 {
		c.FrameRate = DefaultFrameRate
	}
	if c.FrameBurst == 0 {
		c.FrameBurst = DefaultFrameBurst
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Widgets == nil || c.Live == nil {
		errs = append(errs, errors.New("socket: the widgets service and the live hub are required"))
	}
	if c.MaxFrameBytes < 256 || c.PingInterval <= 0 || c.WriteTimeout <= 0 || c.SendTimeout <= 0 || c.FrameRate <= 0 || c.FrameBurst < 1 {
		errs = append(errs, errors.New("socket: limits and intervals must be positive (MaxFrameBytes at least 256)"))
	}
	return errors.Join(errs...)
}

// Gateway is the WebSocket endpoint. It is safe for concurrent use.
type Gateway struct {
	cfg  Config
	log  *slog.Logger
	mu   sync.Mutex
	open map[*websocket.Conn]struct{}
	wg   sync.WaitGroup
	down atomic.Bool
}

// New returns a gateway for cfg.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Gateway{cfg: cfg, log: cfg.Logger.With("component", "socket"), open: map[*websocket.Conn]struct{}{}}, nil
}

// OpenSockets is how many sockets are open.
func (g *Gateway) OpenSockets() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.open)
}

// Serve handles one handshake (mount it for GET only) and, once accepted, the socket until it closes. It returns an error
// only before the handshake is answered (a refused token is EUNAUTHORIZED), for the caller to
// answer as problem+json; once the socket is open it returns nil.
func (g *Gateway) Serve(w http.ResponseWriter, r *http.Request) error {
	if g.down.Load() {
		return domain.Errorf(domain.EUNAVAILABLE, "The server is shutting down; reconnect.")
	}
	token := r.URL.Query().Get("token")
	if token == "" || len(token) > maxTokenLen {
		return domain.Errorf(domain.EUNAUTHORIZED, "A session token is required: ?token=…")
	}
	origin := r.Header.Get("Origin")
	sess, err := g.cfg.Widgets.OpenSession(r.Context(), token, origin)
	if err != nil {
		return err
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: []string{originPattern(sess.Origin)}})
	if err != nil {
		// Accept has answered the request itself (a bad upgrade).
		g.log.DebugContext(r.Context(), "websocket upgrade refused", "error", err)
		return nil
	}
	conn.SetReadLimit(g.cfg.MaxFrameBytes)
	if !g.track(conn) {
		_ = conn.Close(websocket.StatusGoingAway, "server shutting down")
		return nil
	}
	defer g.untrack(conn)
	g.session(context.WithoutCancel(r.Context()), conn, sess)
	return nil
}

// originPattern is an origin as an exact OriginPatterns entry ("scheme://host" with path.Match's
// special characters escaped).
func originPattern(origin string) string {
	r := strings.NewReplacer(`\`, `\\`, `[`, `\[`, `]`, `\]`, `*`, `\*`, `?`, `\?`)
	return r.Replace(origin)
}

func (g *Gateway) track(c *websocket.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.down.Load() {
		return false
	}
	g.open[c] = struct{}{}
	g.wg.Add(1)
	return true
}

func (g *Gateway) untrack(c *websocket.Conn) {
	g.mu.Lock()
	delete(g.open, c)
	g.mu.Unlock()
	g.wg.Done()
}

// Shutdown refuses new sockets, closes the open ones with 1001 (going away: reconnect) and waits
// for them to end, or for ctx.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.down.Store(true)
	conns := make([]*websocket.Conn, 0, len(g.open))
	for c := range g.open {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		go func() { _ = c.Close(websocket.StatusGoingAway, "server shutting down") }()
	}
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		for c := range g.open {
			_ = c.CloseNow()
		}
		g.mu.Unlock()
		return fmt.Errorf("socket shutdown: %w", ctx.Err())
	}
}

// conn is one open socket's state.
type conn struct {
	g       *Gateway
	ws      *websocket.Conn
	sess    app.WidgetSession
	log     *slog.Logger
	limiter *rate.Limiter
	// follower is the current resume's follower; stopFollow ends its writer.
	follower   *app.Follower
	stopFollow context.CancelFunc
	followDone chan struct{}
}

// session runs an open socket until it closes.
func (g *Gateway) session(ctx context.Context, ws *websocket.Conn, sess app.WidgetSession) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &conn{g: g, ws: ws, sess: sess, log: g.log.With("conversation", sess.ConversationID),
		limiter: rate.NewLimiter(rate.Limit(g.cfg.FrameRate), g.cfg.FrameBurst)}
	defer c.endFollow()
	go c.keepAlive(ctx, cancel)
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			c.log.DebugContext(ctx, "socket closed", "error", err)
			_ = ws.CloseNow()
			return
		}
		if !c.limiter.Allow() {
			c.write(ctx, errorFrame{Type: "error", Code: codeRateLimited, Message: "Too many frames; slow down and retry."})
			continue
		}
		f, err := parseClientFrame(data)
		if err != nil {
			c.write(ctx, errorOut(err, ""))
			continue
		}
		switch f.Type {
		case frameSend:
			c.send(ctx, f)
		case frameResume:
			if err := c.resume(ctx, *f.AfterSeq); err != nil {
				c.log.WarnContext(ctx, "resume failed", "error", err)
				c.write(ctx, errorOut(err, ""))
			}
		case frameTyping:
			if c.follower != nil {
				if err := c.follower.Typing(ctx, domain.Author{Type: domain.AuthorContact}); err != nil {
					c.log.DebugContext(ctx, "typing signal", "error", err)
				}
			}
		}
	}
}

// keepAlive pings until ctx ends; an unanswered ping closes the socket.
func (c *conn) keepAlive(ctx context.Context, cancel context.CancelFunc) {
	t := time.NewTicker(c.g.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, pcancel := context.WithTimeout(ctx, c.g.cfg.PingInterval)
			err := c.ws.Ping(pctx)
			pcancel()
			if err != nil {
				c.log.DebugContext(ctx, "ping unanswered; closing", "error", err)
				_ = c.ws.CloseNow()
				cancel()
				return
			}
		}
	}
}

// write sends one frame within the write timeout; a socket that cannot take it is closed.
func (c *conn) write(ctx context.Context, v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		c.log.ErrorContext(ctx, "encode frame", "error", err)
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, c.g.cfg.WriteTimeout)
	defer cancel()
	if err := c.ws.Write(wctx, websocket.MessageText, data); err != nil {
		c.log.DebugContext(ctx, "write failed; closing", "error", err)
		_ = c.ws.CloseNow()
		return false
	}
	return true
}

// send appends the visitor's message and acknowledges it (or says why not).
func (c *conn) send(ctx context.Context, f clientFrame) {
	sctx, cancel := context.WithTimeout(ctx, c.g.cfg.SendTimeout)
	defer cancel()
	sent, err := c.g.cfg.Widgets.Send(sctx, c.sess, f.ClientMessageID, f.Text)
	if err != nil {
		if domain.ErrorCode(err) != domain.EINVALID && domain.ErrorCode(err) != domain.ECONFLICT {
			c.log.WarnContext(ctx, "socket send failed", "error", err)
		}
		c.write(ctx, errorOut(err, f.ClientMessageID))
		return
	}
	c.write(ctx, ackFrame{Type: "ack", ClientMessageID: f.ClientMessageID, ID: sent.Message.ID, Seq: sent.Message.Seq})
}

// resume (re)starts delivery after afterSeq: a follower catches up from the store, then follows
// live messages, and a writer goroutine sends what it yields.
func (c *conn) resume(ctx context.Context, afterSeq uint64) error {
	c.endFollow()
	f, err := c.g.cfg.Live.Follow(ctx, c.sess.Principal(), c.sess.ConversationID, afterSeq)
	if err != nil {
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			_ = c.ws.Close(CloseSessionEnded, "conversation not found; start a new session")
		}
		return err
	}
	fctx, stop := context.WithCancel(ctx)
	c.follower, c.stopFollow, c.followDone = f, stop, make(chan struct{})
	go c.deliver(fctx, f, c.followDone)
	return nil
}

// deliver writes a follower's events until ctx ends; a follower that fell behind closes the socket
// with CloseResume.
func (c *conn) deliver(ctx context.Context, f *app.Follower, done chan<- struct{}) {
	defer close(done)
	for {
		ev, err := f.Next(ctx)
		switch {
		case errors.Is(err, app.ErrLagged):
			c.log.InfoContext(ctx, "socket fell behind; closing for a resume", "last_seq", f.LastSeq())
			_ = c.ws.Close(CloseResume, "fell behind; resume from your last seq")
			return
		case err != nil:
			if ctx.Err() == nil {
				c.log.WarnContext(ctx, "delivery stopped", "error", err)
				_ = c.ws.Close(websocket.StatusInternalError, "delivery failed; reconnect")
			}
			return
		}
		var frame any
		if ev.Message != nil {
			frame = messageOut(ev.Message)
		} else {
			frame = typingFrame{Type: "typing", Author: *ev.Typing}
		}
		if !c.write(ctx, frame) {
			return
		}
	}
}

// endFollow stops the current follower and its writer.
func (c *conn) endFollow() {
	if c.follower == nil {
		return
	}
	c.stopFollow()
	c.follower.Close()
	<-c.followDone
	c.follower = nil
}
