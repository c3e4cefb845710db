package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// The load generator's HTTP client. net/http's Client costs the bench process a good share of its
// CPU (a reader and a writer goroutine per connection, the handoffs between them, request and
// header maps, io.ReadAll): CPU taken from the server being measured on the same small machine.
// loadConn does what wrk and h2load do instead: one keep-alive HTTP/1.1 connection per client,
// used by one request at a time (no pipelining), the request appended into a reused buffer and
// written with one write, the answer parsed from a buffered reader on the caller's goroutine.
//
// It is a client for the bench's own loopback server and nothing else: the answer must be framed
// by Content-Length or chunked transfer coding (an answer delimited by closing the connection is
// an error), 1xx answers other than 101 are skipped, and everything it does not understand is an
// error, after which the connection is closed and the next request dials again.

// Limits of the answers loadConn accepts.
const (
	loadConnBufSize    = 4096     // the buffered reader's size: the longest status or header line
	loadConnMaxHeaders = 128      // header lines in one answer (trailers included)
	loadConnMaxBody    = 16 << 20 // bytes of one answer's body
	loadConnMaxInfo    = 8        // 1xx answers skipped before the final answer
	loadConnTimeout    = 30 * time.Second
)

// clientError is an error of loadConn's own (not of the network): a constant, so that callers
// and tests can tell them apart with errors.Is.
type clientError string

// Error implements error.
func (e clientError) Error() string { return "httpclient: " + string(e) }

// The errors of the response parser.
const (
	errLineTooLong       = clientError("status or header line too long")
	errMalformedStatus   = clientError("malformed status line")
	errMalformedHeader   = clientError("malformed header line")
	errTooManyHeaders    = clientError("too many header lines")
	errBadContentLength  = clientError("bad Content-Length")
	errNoLength          = clientError("answer has a body but neither Content-Length nor chunked transfer coding")
	errTransferEncoding  = clientError("unsupported Transfer-Encoding")
	errMalformedChunk    = clientError("malformed chunked body")
	errBodyTooLarge      = clientError("body too large")
	errSwitchingProtocol = clientError("unexpected 101 Switching Protocols")
	errTooManyInfo       = clientError("too many 1xx answers")
)

// loadConn is one persistent HTTP/1.1 connection of the load generator to addr. It is used by one
// goroutine at a time. It dials lazily, and after any error (or an answer saying Connection:
// close) it closes the connection so that the next request dials a new one.
type loadConn struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
	req  []byte // the request being written, reused
	body []byte // the last answer's body, reused
	// scratch is a buffer the caller may build a request body in (see send), reused.
	scratch []byte
	// dials counts the connections made, the first one included.
	dials int
}

// newLoadConn returns a connection to addr (host:port), not dialled yet.
func newLoadConn(addr string) *loadConn {
	return &loadConn{addr: addr}
}

// close closes the connection; a later request dials again.
func (c *loadConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// post sends a POST of a JSON body to path with the bearer token and returns the answer's status
// and body. The body is valid until the next request on c.
func (c *loadConn) post(ctx context.Context, path, token string, body []byte) (int, []byte, error) {
	return c.do(ctx, "POST", path, token, body)
}

// do sends one request and reads its answer. A non-empty token is sent as a bearer token; a body
// (even an empty one) is sent with Content-Type: application/json unless the method is GET or
// HEAD and body is nil. The connection's deadline is the context's deadline or loadConnTimeout
// from now, whichever comes first.
func (c *loadConn) do(ctx context.Context, method, path, token string, body []byte) (int, []byte, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if c.conn == nil {
		d := net.Dialer{Timeout: loadConnTimeout}
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return 0, nil, err
		}
		c.conn, c.dials = conn, c.dials+1
		if c.br == nil {
			c.br = bufio.NewReaderSize(conn, loadConnBufSize)
		} else {
			c.br.Reset(conn)
		}
	}
	deadline := time.Now().Add(loadConnTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		c.close()
		return 0, nil, err
	}
	c.req = appendRequest(c.req[:0], method, c.addr, path, token, body)
	if _, err := c.conn.Write(c.req); err != nil {
		c.close()
		return 0, nil, fmt.Errorf("httpclient: write request: %w", err)
	}
	resp, err := readResponse(c.br, method == "HEAD", c.body[:0])
	c.body = resp.body
	if err != nil {
		c.close()
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("httpclient: connection closed before the answer ended: %w", err)
		}
		return 0, nil, err
	}
	if resp.close {
		c.close()
	}
	return resp.status, resp.body, nil
}

// appendRequest appends an HTTP/1.1 request to dst.
func appendRequest(dst []byte, method, host, path, token string, body []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\n"...)
	if token != "" {
		dst = append(dst, "Authorization: Bearer "...)
		dst = append(dst, token...)
		dst = append(dst, "\r\n"...)
	}
	if body != nil || (method != "GET" && method != "HEAD") {
		dst = append(dst, "Content-Type: application/json\r\nContent-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}

// httpResponse is what readResponse parsed of one answer.
type httpResponse struct {
	status int
	body   []byte
	// close says the connection cannot carry another request (Connection: close, or HTTP/1.0
	// without keep-alive).
	close bool
}

// readResponse reads one answer from br, skipping 1xx answers, and appends its body to dst. head
// says the request was a HEAD (whose answer has no body whatever its headers say). On an error
// the connection's framing is lost and it must not be used again.
func readResponse(br *bufio.Reader, head bool, dst []byte) (httpResponse, error) {
	for range loadConnMaxInfo + 1 {
		resp, h, err := readHead(br)
		if err != nil {
			return httpResponse{body: dst}, err
		}
		if resp.status == 101 {
			return httpResponse{body: dst}, errSwitchingProtocol
		}
		if resp.status < 200 {
			continue // an interim answer: headers only, the final one follows
		}
		resp.body = dst
		switch {
		case head || resp.status == 204 || resp.status == 304:
		case h.chunked:
			resp.body, err = readChunked(br, dst)
		case h.length >= 0:
			resp.body, err = readN(br, dst, h.length)
		default:
			err = errNoLength
		}
		return resp, err
	}
	return httpResponse{body: dst}, errTooManyInfo
}

// framing is what the headers say about the body.
type framing struct {
	length  int64 // Content-Length, -1 when absent
	chunked bool
}

// readHead reads a status line and its header lines.
func readHead(br *bufio.Reader) (httpResponse, framing, error) {
	h := framing{length: -1}
	line, err := readLine(br)
	if err != nil {
		return httpResponse{}, h, err
	}
	var resp httpResponse
	minor, status, ok := parseStatusLine(line)
	if !ok {
		return httpResponse{}, h, fmt.Errorf("%w: %q", errMalformedStatus, clip(line))
	}
	resp.status = status
	keepAlive := minor == 1 // HTTP/1.1 keeps the connection unless told otherwise; 1.0 closes it
	hasTE := false
	for n := 0; ; n++ {
		if n > loadConnMaxHeaders {
			return httpResponse{}, h, errTooManyHeaders
		}
		line, err := readLine(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return httpResponse{}, h, err
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' || bytes.ContainsAny(line[:colon], " \t") {
			return httpResponse{}, h, fmt.Errorf("%w: %q", errMalformedHeader, clip(line))
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		switch {
		case equalFold(name, "Content-Length"):
			n, ok := parseLength(value)
			if !ok || (h.length >= 0 && h.length != n) {
				return httpResponse{}, h, fmt.Errorf("%w: %q", errBadContentLength, clip(value))
			}
			h.length = n
		case equalFold(name, "Transfer-Encoding"):
			// Only "chunked" alone is understood; a second Transfer-Encoding header would add
			// codings to it.
			if hasTE || !equalFold(value, "chunked") {
				return httpResponse{}, h, fmt.Errorf("%w: %q", errTransferEncoding, clip(value))
			}
			hasTE, h.chunked = true, true
		case equalFold(name, "Connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.Trim(tok, " \t")
				if equalFold(tok, "close") {
					resp.close = true
				} else if equalFold(tok, "keep-alive") && minor == 0 {
					keepAlive = true
				}
			}
		}
	}
	if h.chunked && h.length >= 0 {
		// Both framings: chunked wins (RFC 9112, 6.3), and the connection is not trusted again.
		h.length, resp.close = -1, true
	}
	resp.close = resp.close || !keepAlive
	return resp, h, nil
}

// parseStatusLine parses "HTTP/1.x SSS[ reason]" and returns x and SSS.
func parseStatusLine(line []byte) (minor, status int, ok bool) {
	const prefix = "HTTP/1."
	if len(line) < len(prefix)+5 || string(line[:len(prefix)]) != prefix || line[len(prefix)+1] != ' ' {
		return 0, 0, false
	}
	switch line[len(prefix)] {
	case '0':
	case '1':
		minor = 1
	default:
		return 0, 0, false
	}
	code := line[len(prefix)+2:]
	if len(code) > 3 && code[3] != ' ' {
		return 0, 0, false
	}
	if len(code) < 3 {
		return 0, 0, false
	}
	for _, b := range code[:3] {
		if b < '0' || b > '9' {
			return 0, 0, false
		}
		status = status*10 + int(b-'0')
	}
	if status < 100 || status > 599 {
		return 0, 0, false
	}
	return minor, status, true
}

// parseLength parses a Content-Length value: decimal digits only, at most loadConnMaxBody.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, b := range v {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + int64(b-'0')
		if n > loadConnMaxBody {
			return 0, false
		}
	}
	return n, true
}

// readChunked reads a chunked body (RFC 9112, 7.1) and its trailers, appending the data to dst.
func readChunked(br *bufio.Reader, dst []byte) ([]byte, error) {
	total := int64(0)
	for {
		line, err := readLine(br)
		if err != nil {
			return dst, eofIsUnexpected(err)
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return dst, fmt.Errorf("%w: chunk size %q", errMalformedChunk, clip(line))
		}
		if total += size; total > loadConnMaxBody {
			return dst, errBodyTooLarge
		}
		if size == 0 {
			break
		}
		if dst, err = readN(br, dst, size); err != nil {
			return dst, err
		}
		line, err = readLine(br)
		if err != nil {
			return dst, eofIsUnexpected(err)
		}
		if len(line) != 0 {
			return dst, fmt.Errorf("%w: no CRLF after a chunk's data", errMalformedChunk)
		}
	}
	// Trailer lines, up to the empty line that ends the body; their content is ignored.
	for n := 0; ; n++ {
		if n > loadConnMaxHeaders {
			return dst, errTooManyHeaders
		}
		line, err := readLine(br)
		if err != nil {
			return dst, eofIsUnexpected(err)
		}
		if len(line) == 0 {
			return dst, nil
		}
	}
}

// parseChunkSize parses a chunk-size line: hex digits, optionally followed by whitespace and
// chunk extensions (";name=value"), which are ignored.
func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		d, ok := unhex(line[i])
		if !ok {
			break
		}
		if n = n<<4 | int64(d); n > loadConnMaxBody {
			return 0, false
		}
	}
	if i == 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(line[i:], " \t")
	return n, len(rest) == 0 || rest[0] == ';'
}

// unhex returns the value of the hex digit b.
func unhex(b byte) (byte, bool) {
	switch {
	case b >= '0' && b <= '9':
		return b - '0', true
	case b >= 'a' && b <= 'f':
		return b - 'a' + 10, true
	case b >= 'A' && b <= 'F':
		return b - 'A' + 10, true
	}
	return 0, false
}

// readN appends the next n bytes of br to dst, as they arrive (a claimed length never allocates
// more than what was received).
func readN(br *bufio.Reader, dst []byte, n int64) ([]byte, error) {
	for n > 0 {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				return dst, eofIsUnexpected(err)
			}
		}
		k := min(n, int64(br.Buffered()))
		p, _ := br.Peek(int(k))
		dst = append(dst, p...)
		_, _ = br.Discard(int(k))
		n -= k
	}
	return dst, nil
}

// readLine returns the next line of br without its CRLF (or bare LF); the line is valid until the
// next read. A line longer than the reader's buffer is an error, and so is EOF inside a line.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, errLineTooLong
	case err == io.EOF && len(line) > 0:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// eofIsUnexpected turns the end of the stream in the middle of an answer into io.ErrUnexpectedEOF.
func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// equalFold reports whether b equals the ASCII string s, ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// loadConnPool hands out loadConns to addr, each to one request at a time: the connections of
// a scenario that has several requests in flight without a fixed set of clients. It keeps every
// connection it made idle in between, up to size, and closes them with close.
type loadConnPool struct {
	addr string
	idle chan *loadConn
	mu   sync.Mutex
	all  []*loadConn
}

// newLoadConnPool returns a pool of at most size connections to addr; at most size may be taken
// at once.
func newLoadConnPool(addr string, size int) *loadConnPool {
	return &loadConnPool{addr: addr, idle: make(chan *loadConn, size)}
}

// get returns an idle connection, or a new one.
func (p *loadConnPool) get() *loadConn {
	select {
	case c := <-p.idle:
		return c
	default:
	}
	c := newLoadConn(p.addr)
	p.mu.Lock()
	p.all = append(p.all, c)
	p.mu.Unlock()
	return c
}

// put gives c back to the pool, for the next request.
func (p *loadConnPool) put(c *loadConn) {
	select {
	case p.idle <- c:
	default: // more taken than the pool holds: not kept
		c.close()
	}
}

// close closes every connection of the pool; none may be in use.
func (p *loadConnPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.all {
		c.close()
	}
}
