package socket_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/adapters/socket"
	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/internal/teststack"
)

// The tests run the gateway behind the real HTTP adapter (as `metachat serve` mounts it), on the
// real application stack: JetStream on an embedded server, Postgres, every read model.

const hostOrigin = "https://shop.example.com"

// instance is one running server: a stack, its gateway and its HTTP listener.
type instance struct {
	*teststack.Stack
	Gateway *socket.Gateway
	HTTP    *httptest.Server
}

func startInstance(t *testing.T, st *teststack.Stack, cfg socket.Config) *instance {
	return startInstanceBuffers(t, st, cfg, false)
}

// smallBufferListener gives accepted connections tiny kernel send buffers, so a client that
// stops reading blocks the server's writes after a few kilobytes instead of megabytes.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func startInstanceBuffers(t *testing.T, st *teststack.Stack, cfg socket.Config, smallBuffers bool) *instance {
	t.Helper()
	cfg.Widgets, cfg.Live, cfg.Logger = st.Widgets, st.Live, st.Logger
	g, err := socket.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.NewServer(httpapi.Config{
		Logger: st.Logger, Auth: st.Identity, Identity: st.Identity, Conversations: st.Conversations, Widgets: st.Widgets,
		Mounts: []httpapi.Mount{{Pattern: "/api/v1/widget/ws", Methods: []string{http.MethodGet}, Func: g.Serve}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(api)
	if smallBuffers {
		srv.Listener = smallBufferListener{srv.Listener}
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
		srv.Close()
	})
	return &instance{Stack: st, Gateway: g, HTTP: srv}
}

// tenantFixture is a tenant with an owner and a widget allowing hostOrigin.
type tenantFixture struct {
	Owner    domain.Principal
	WidgetID string
}

func newTenant(t *testing.T, st *teststack.Stack, settings domain.WidgetSettings) tenantFixture {
	t.Helper()
	ctx := t.Context()
	res, err := st.Identity.Signup(ctx, app.SignupInput{TenantName: "Shop", Email: "owner-" + randomID() + "@example.com", Password: "correct-horse-battery"})
	if err != nil {
		t.Fatal(err)
	}
	owner := domain.Principal{TenantID: res.TenantID, UserID: res.UserID, Role: domain.RoleOwner}
	if settings.Name == "" {
		settings = domain.WidgetSettings{Name: "Shop", AllowedOrigins: []string{hostOrigin}}
	}
	w, _, err := st.Widgets.CreateWidget(ctx, owner, settings, "")
	if err != nil {
		t.Fatal(err)
	}
	return tenantFixture{Owner: owner, WidgetID: w.ID}
}

func randomID() string { return strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "") }

// session starts a visitor session as the browser would.
func session(t *testing.T, st *teststack.Stack, widgetID, visitorID, conversationID string) app.SessionToken {
	t.Helper()
	s, err := st.Widgets.StartSession(t.Context(), app.StartSessionInput{
		WidgetID: widgetID, VisitorID: visitorID, ConversationID: conversationID, Origin: hostOrigin,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sock is a test client socket.
type sock struct {
	t  *testing.T
	ws *websocket.Conn
}

// dial opens a socket with token from origin; it fails the test unless the handshake succeeds.
func dial(t *testing.T, in *instance, token, origin string) *sock {
	t.Helper()
	ws, resp, err := dialRaw(t, in, token, origin)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &sock{t: t, ws: ws}
}

func dialRaw(t *testing.T, in *instance, token, origin string) (*websocket.Conn, *http.Response, error) {
	return dialOpts(t, in, token, origin, nil)
}

func dialOpts(t *testing.T, in *instance, token, origin string, client *http.Client) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(in.HTTP.URL, "http")+"/api/v1/widget/ws?token="+token,
		&websocket.DialOptions{HTTPHeader: h, HTTPClient: client})
}

// smallBufferClient dials with a tiny kernel receive buffer (see smallBufferListener).
func smallBufferClient() *http.Client {
	d := &net.Dialer{Control: nil}
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}}}
}

func (s *sock) send(v any) {
	s.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.ws.Write(ctx, websocket.MessageText, b); err != nil {
		s.t.Fatalf("write: %v", err)
	}
}

// frame is any server frame.
type frame struct {
	Type            string        `json:"type"`
	ID              string        `json:"id"`
	Seq             uint64        `json:"seq"`
	Text            string        `json:"text"`
	Author          domain.Author `json:"author"`
	ClientMessageID string        `json:"client_message_id"`
	Code            string        `json:"code"`
	Message         string        `json:"message"`
}

// next reads the next frame within d; a closed socket returns its close status as error.
func (s *sock) next(d time.Duration) (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := s.ws.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		s.t.Fatalf("undecodable frame %s: %v", b, err)
	}
	return f, nil
}

// expect reads frames until one of type typ arrives (skipping the others, but failing on an
// unexpected error frame), within d.
func (s *sock) expect(typ string, d time.Duration) frame {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		f, err := s.next(time.Until(deadline))
		if err != nil {
			s.t.Fatalf("waiting for a %s frame: %v", typ, err)
		}
		if f.Type == typ {
			return f
		}
		if f.Type == "error" {
			s.t.Fatalf("got %+v while waiting for a %s frame", f, typ)
		}
	}
}

// messages reads message frames until it has seen seq up to last, failing on a gap, a duplicate
// or a frame out of order.
func (s *sock) messages(after, last uint64, d time.Duration) []frame {
	s.t.Helper()
	var out []frame
	deadline := time.Now().Add(d)
	want := after + 1
	for want <= last {
		f, err := s.next(time.Until(deadline))
		if err != nil {
			s.t.Fatalf("waiting for seq %d (of %d): %v", want, last, err)
		}
		if f.Type != "message" {
			continue
		}
		if f.Seq != want {
			s.t.Fatalf("got seq %d, want %d: a gap, a duplicate or a reordering", f.Seq, want)
		}
		out = append(out, f)
		want++
	}
	return out
}

// closeStatus returns the close code of a read error (-1 when it is not a close).
func closeStatus(err error) websocket.StatusCode {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func encodeSegment(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
