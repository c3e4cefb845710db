package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is a net/http server on loopback that counts the connections it accepted.
type testServer struct {
	*httptest.Server
	conns atomic.Int64
}

func newTestServer(t *testing.T, h http.Handler) *testServer {
	t.Helper()
	return newTestServerAt(t, func(string) http.Handler { return h })
}

// newTestServerAt starts the handler h returns for the server's address.
func newTestServerAt(t *testing.T, h func(addr string) http.Handler) *testServer {
	t.Helper()
	s := &testServer{}
	s.Server = httptest.NewUnstartedServer(nil)
	s.Config.Handler = h(s.Listener.Addr().String())
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *testServer) addr() string { return s.Listener.Addr().String() }

// echoHandler checks the request's framing and headers and answers with the status the path
// names (/status/NNN) and a body that repeats the request's.
func echoHandler(t *testing.T, host string) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		problem := ""
		switch {
		case err != nil:
			problem = err.Error()
		case r.Method != http.MethodPost || r.Proto != "HTTP/1.1":
			problem = "method or protocol " + r.Method + " " + r.Proto
		case r.Host != host:
			problem = "host " + r.Host
		case r.Header.Get("Content-Type") != "application/json":
			problem = "content type " + r.Header.Get("Content-Type")
		case r.Header.Get("Authorization") != "Bearer tok-1":
			problem = "authorization " + r.Header.Get("Authorization")
		case r.ContentLength != int64(len(body)) || len(r.TransferEncoding) != 0:
			problem = fmt.Sprintf("content length %d for %d bytes", r.ContentLength, len(body))
		}
		if problem != "" {
			t.Errorf("request %s: %s", r.URL.Path, problem)
			http.Error(rw, problem, http.StatusTeapot)
			return
		}
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if err != nil {
			code = http.StatusOK
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Content-Length", strconv.Itoa(len(body)+6))
		rw.WriteHeader(code)
		_, _ = rw.Write(append([]byte("echo: "), body...))
	}
}

// TestLoadConnKeepAlive sends many requests, with several statuses and body sizes (some larger
// than the reader's buffer), over one connection, and checks every answer.
func TestLoadConnKeepAlive(t *testing.T) {
	srv := newTestServerAt(t, func(addr string) http.Handler { return echoHandler(t, addr) })
	c := newLoadConn(srv.addr())
	defer c.close()
	statuses := []int{200, 201, 400, 404, 409, 500}
	for i := range 600 {
		want := statuses[i%len(statuses)]
		body := bytes.Repeat([]byte{byte('a' + i%26)}, (i*37)%(3*loadConnBufSize))
		status, got, err := c.post(context.Background(), fmt.Sprintf("/status/%d", want), "tok-1", body)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if status != want || !bytes.Equal(got, append([]byte("echo: "), body...)) {
			t.Fatalf("request %d: status %d (want %d), body of %d bytes (want %d)", i, status, want, len(got), len(body)+6)
		}
	}
	if c.dials != 1 || srv.conns.Load() != 1 {
		t.Fatalf("%d dials, %d connections accepted; want one", c.dials, srv.conns.Load())
	}
}

// TestLoadConnConnectionClose: an answer with Connection: close is read whole, and the next
// request goes over a new connection.
func TestLoadConnConnectionClose(t *testing.T) {
	srv := newTestServer(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			rw.Header().Set("Connection", "close")
		}
		rw.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(rw, `{"path":"`+r.URL.Path+`"}`)
	}))
	c := newLoadConn(srv.addr())
	defer c.close()
	for i, path := range []string{"/a", "/close", "/b", "/c", "/close", "/d"} {
		status, body, err := c.post(context.Background(), path, "tok", []byte(`{}`))
		if err != nil || status != http.StatusCreated || string(body) != `{"path":"`+path+`"}` {
			t.Fatalf("request %d (%s): %d %q %v", i, path, status, body, err)
		}
	}
	if c.dials != 3 || srv.conns.Load() != 3 {
		t.Fatalf("%d dials, %d connections accepted; want 3", c.dials, srv.conns.Load())
	}
}

// TestLoadConnChunked: a chunked answer (net/http chunks a body written before its length is
// known) is decoded, and the connection is kept.
func TestLoadConnChunked(t *testing.T) {
	piece := strings.Repeat("0123456789abcdef", 400) // 6,400 bytes, more than the reader's buffer
	srv := newTestServer(t, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Trailer", "X-Sum")
		rw.WriteHeader(http.StatusOK)
		for range 3 {
			_, _ = io.WriteString(rw, piece)
			rw.(http.Flusher).Flush()
		}
		rw.Header().Set("X-Sum", "3")
	}))
	c := newLoadConn(srv.addr())
	defer c.close()
	for i := range 5 {
		status, body, err := c.post(context.Background(), "/chunked", "", nil)
		if err != nil || status != http.StatusOK || string(body) != strings.Repeat(piece, 3) {
			t.Fatalf("request %d: %d, %d bytes, %v", i, status, len(body), err)
		}
	}
	if c.dials != 1 {
		t.Fatalf("%d dials; want 1", c.dials)
	}
}

// TestLoadConnServerDrops: a server that drops the connection without an answer gives an error,
// and the next request dials again and succeeds.
func TestLoadConnServerDrops(t *testing.T) {
	srv := newTestServer(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/drop" {
			conn, _, err := rw.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		rw.WriteHeader(http.StatusCreated)
	}))
	c := newLoadConn(srv.addr())
	defer c.close()
	ctx := context.Background()
	if status, _, err := c.post(ctx, "/ok", "tok", []byte(`{}`)); err != nil || status != http.StatusCreated {
		t.Fatalf("first request: %d %v", status, err)
	}
	if status, _, err := c.post(ctx, "/drop", "tok", []byte(`{}`)); err == nil {
		t.Fatalf("dropped request: status %d and no error", status)
	}
	if status, _, err := c.post(ctx, "/ok", "tok", []byte(`{}`)); err != nil || status != http.StatusCreated {
		t.Fatalf("request after the drop: %d %v", status, err)
	}
	if c.dials != 2 {
		t.Fatalf("%d dials; want 2", c.dials)
	}
}

// rawServer answers every request on loopback with the raw bytes answer returns for it, then
// closes the connection when answer says so.
func rawServer(t *testing.T, answer func(r *http.Request) (raw string, closeAfter bool)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, r.Body)
					raw, closeAfter := answer(r)
					if _, err := io.WriteString(conn, raw); err != nil || closeAfter {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// TestLoadConnFraming: answers loadConn does not understand are errors, never misread, and the
// connection is dialled again after them; HTTP/1.0 without keep-alive closes the connection.
func TestLoadConnFraming(t *testing.T) {
	addr := rawServer(t, func(r *http.Request) (string, bool) {
		switch r.URL.Path {
		case "/no-length":
			return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", true
		case "/gzip":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false
		case "/http10":
			return "HTTP/1.0 201 Created\r\nContent-Length: 2\r\n\r\nok", true
		case "/http10-keep-alive":
			return "HTTP/1.0 201 Created\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", false
		case "/continue":
			return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone", false
		}
		return "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", false
	})
	c := newLoadConn(addr)
	defer c.close()
	ctx := context.Background()
	steps := []struct {
		path    string
		status  int
		body    string
		err     error
		dialsTo int
	}{
		{"/ok", 201, "ok", nil, 1},
		{"/no-length", 0, "", errNoLength, 1},
		{"/ok", 201, "ok", nil, 2},
		{"/gzip", 0, "", errTransferEncoding, 2},
		{"/ok", 201, "ok", nil, 3},
		{"/http10", 201, "ok", nil, 3},
		{"/http10-keep-alive", 201, "ok", nil, 4},
		{"/continue", 201, "done", nil, 4},
		{"/ok", 201, "ok", nil, 4},
	}
	for i, s := range steps {
		status, body, err := c.post(ctx, s.path, "tok", []byte(`{}`))
		if s.err != nil {
			if !errors.Is(err, s.err) {
				t.Fatalf("step %d (%s): error %v, want %v", i, s.path, err, s.err)
			}
		} else if err != nil || status != s.status || string(body) != s.body {
			t.Fatalf("step %d (%s): %d %q %v", i, s.path, status, body, err)
		}
		if c.dials != s.dialsTo {
			t.Fatalf("step %d (%s): %d dials, want %d", i, s.path, c.dials, s.dialsTo)
		}
	}
}

// TestLoadConnDeadline: a server that never answers makes the request fail at the context's
// deadline.
func TestLoadConnDeadline(t *testing.T) {
	stall := make(chan struct{})
	srv := newTestServer(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer close(stall)
	c := newLoadConn(srv.addr())
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := c.post(ctx, "/stall", "tok", nil); err == nil {
		t.Fatal("no error from a server that never answers")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the request took %s", d)
	}
}

// TestLoadConnPool: concurrent requests through a pool, each connection used by one at a time.
func TestLoadConnPool(t *testing.T) {
	var inUse, maxInUse atomic.Int64
	srv := newTestServer(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		n := inUse.Add(1)
		defer inUse.Add(-1)
		for {
			m := maxInUse.Load()
			if n <= m || maxInUse.CompareAndSwap(m, n) {
				break
			}
		}
		b, _ := io.ReadAll(r.Body)
		rw.WriteHeader(http.StatusCreated)
		_, _ = rw.Write(b)
	}))
	const size = 8
	pool := newLoadConnPool(srv.addr(), size)
	sem := make(chan struct{}, size)
	var wg sync.WaitGroup
	var failures atomic.Int64
	for i := range 400 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c := pool.get()
			defer pool.put(c)
			want := strconv.Itoa(i)
			status, body, err := c.post(context.Background(), "/p", "tok", []byte(want))
			if err != nil || status != http.StatusCreated || string(body) != want {
				failures.Add(1)
				t.Errorf("request %d: %d %q %v", i, status, body, err)
			}
		})
	}
	wg.Wait()
	pool.close()
	if failures.Load() != 0 {
		t.FailNow()
	}
	if n := srv.conns.Load(); n > size {
		t.Fatalf("%d connections for a pool of %d", n, size)
	}
}

// parseCase is an answer with what readResponse must make of it.
type parseCase struct {
	name   string
	raw    string
	head   bool
	status int
	body   string
	close  bool
	err    error
}

// parseCases are the answers TestReadResponse checks; they seed the fuzz test too.
func parseCases() []parseCase {
	return []parseCase{
		{"content length", "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\nhello", false, 201, "hello", false, nil},
		{"bare LF", "HTTP/1.1 200 OK\ncontent-length: 2\n\nhi", false, 200, "hi", false, nil},
		{"no reason", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", false, 404, "", false, nil},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 1\r\n\r\nx", false, 200, "x", true, nil},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", false, 200, "x", true, nil},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", false, 200, "x", false, nil},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\nA \r\n, world!!!\r\n0\r\nX-Trailer: 1\r\n\r\n", false, 200, "hello, world!!!", false, nil},
		{"chunked and length", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", false, 200, "ab", true, nil},
		{"same length twice", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab", false, 200, "ab", false, nil},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", false, 204, "", false, nil},
		{"304 with length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, 304, "", false, nil},
		{"head", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, 200, "", false, nil},
		{"interim answers", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx", false, 201, "x", false, nil},
		{"no length", "HTTP/1.1 200 OK\r\n\r\nbody until close", false, 0, "", false, errNoLength},
		{"other coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, 0, "", false, errTransferEncoding},
		{"two codings headers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, 0, "", false, errTransferEncoding},
		{"lengths differ", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", false, 0, "", false, errBadContentLength},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, 0, "", false, errBadContentLength},
		{"huge length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", false, 0, "", false, errBadContentLength},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false, 0, "", false, io.ErrUnexpectedEOF},
		{"cut in headers", "HTTP/1.1 200 OK\r\nContent-Len", false, 0, "", false, io.ErrUnexpectedEOF},
		{"cut after status", "HTTP/1.1 200 OK\r\n", false, 0, "", false, io.ErrUnexpectedEOF},
		{"empty", "", false, 0, "", false, io.EOF},
		{"bad version", "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, 0, "", false, errMalformedStatus},
		{"bad status", "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", false, 0, "", false, errMalformedStatus},
		{"status out of range", "HTTP/1.1 999 Nine\r\nContent-Length: 0\r\n\r\n", false, 0, "", false, errMalformedStatus},
		{"long status", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", false, 0, "", false, errMalformedStatus},
		{"folded header", "HTTP/1.1 200 OK\r\nX-A: 1\r\n continued\r\nContent-Length: 0\r\n\r\n", false, 0, "", false, errMalformedHeader},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", false, 0, "", false, errMalformedHeader},
		{"no colon", "HTTP/1.1 200 OK\r\nContent-Length\r\n\r\n", false, 0, "", false, errMalformedHeader},
		{"line too long", "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("a", loadConnBufSize) + "\r\nContent-Length: 0\r\n\r\n", false, 0, "", false, errLineTooLong},
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", false, 0, "", false, errSwitchingProtocol},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, 0, "", false, errMalformedChunk},
		{"no CRLF after chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", false, 0, "", false, errMalformedChunk},
		{"huge chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", false, 0, "", false, errMalformedChunk},
		{"cut in chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nabc", false, 0, "", false, io.ErrUnexpectedEOF},
		{"no end of trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n", false, 0, "", false, io.ErrUnexpectedEOF},
		{"too many interim answers", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", loadConnMaxInfo+1) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, 0, "", false, errTooManyInfo},
	}
}

func TestReadResponse(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.raw), loadConnBufSize)
			resp, err := readResponse(br, tc.head, nil)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || resp.status != tc.status || string(resp.body) != tc.body || resp.close != tc.close {
				t.Fatalf("got %d %q close=%v %v; want %d %q close=%v", resp.status, resp.body, resp.close, err, tc.status, tc.body, tc.close)
			}
			if br.Buffered() != 0 {
				t.Fatalf("%d bytes left unread", br.Buffered())
			}
		})
	}
}

// TestReadResponseSequence: answers read one after another from one stream keep their framing.
func TestReadResponseSequence(t *testing.T) {
	var raw strings.Builder
	var want []string
	for _, tc := range parseCases() {
		if tc.err == nil && !tc.head {
			raw.WriteString(tc.raw)
			want = append(want, tc.body)
		}
	}
	br := bufio.NewReaderSize(strings.NewReader(raw.String()), loadConnBufSize)
	for i, w := range want {
		resp, err := readResponse(br, false, nil)
		if err != nil || string(resp.body) != w {
			t.Fatalf("answer %d: %q %v; want %q", i, resp.body, err, w)
		}
	}
	if _, err := readResponse(br, false, nil); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last answer: %v, want EOF", err)
	}
}

// TestAppendMessageBody: the bench's message bodies are valid JSON with the given id.
func TestAppendMessageBody(t *testing.T) {
	var in struct {
		Text            string `json:"text"`
		ClientMessageID string `json:"client_message_id"`
	}
	b := appendMessageBody([]byte("junk"), "bench-", 42)[4:]
	if err := json.Unmarshal(b, &in); err != nil || in.ClientMessageID != "bench-42" || !strings.Contains(in.Text, "42") {
		t.Fatalf("%s: %+v %v", b, in, err)
	}
}

// FuzzParseResponse: whatever bytes the server sends, the parser neither panics nor loops, and
// what it accepts is sane.
func FuzzParseResponse(f *testing.F) {
	for _, tc := range parseCases() {
		f.Add([]byte(tc.raw), tc.head)
	}
	f.Fuzz(func(t *testing.T, raw []byte, head bool) {
		br := bufio.NewReaderSize(bytes.NewReader(raw), loadConnBufSize)
		var body []byte
		// Each answer read consumes at least one byte, so this ends with the input.
		for range len(raw) + 1 {
			resp, err := readResponse(br, head, body[:0])
			if err != nil {
				return
			}
			if resp.status < 200 || resp.status > 599 {
				t.Fatalf("status %d accepted", resp.status)
			}
			if len(resp.body) > len(raw) {
				t.Fatalf("a body of %d bytes from %d bytes of input", len(resp.body), len(raw))
			}
			body = resp.body
		}
		t.Fatal("more answers than bytes")
	})
}
