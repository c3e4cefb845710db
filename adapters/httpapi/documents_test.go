package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// upload sends a multipart upload of one file (and a title when not empty).
func (c *client) upload(token, filename, title string, data []byte) response {
	c.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", filename)
	if err != nil {
		c.t.Fatal(err)
	}
	_, _ = fw.Write(data)
	if title != "" {
		_ = mw.WriteField("title", title)
	}
	_ = mw.Close()
	req, err := http.NewRequestWithContext(c.t.Context(), "POST", c.base+"/api/v1/documents", &body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// waitStatus polls a document until its status is not processing, and returns it.
func waitStatus(c *client, token, id string) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := c.do("GET", "/api/v1/documents/"+id, token, nil).must(c.t, 200, "get document")
		if m["status"] != "processing" || time.Now().After(deadline) {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// search returns the document ids of a search's results, in order.
func search(c *client, token, q string, k int) []string {
	c.t.Helper()
	m := c.do("GET", fmt.Sprintf("/api/v1/knowledge/search?q=%s&k=%d", url.QueryEscape(q), k), token, nil).must(c.t, 200, "search "+q)
	var ids []string
	for _, it := range m["items"].([]any) {
		ids = append(ids, it.(map[string]any)["document_id"].(string))
	}
	return ids
}

// minimalPDF builds a one-page PDF whose page shows lines of text (Helvetica), with a correct
// cross-reference table.
func minimalPDF(lines ...string) []byte {
	var content strings.Builder
	content.WriteString("BT /F1 12 Tf 72 720 Td 14 TL\n")
	for _, l := range lines {
		fmt.Fprintf(&content, "(%s) Tj T*\n", l)
	}
	content.WriteString("ET")
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", content.Len(), content.String()),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// TestDocumentsEachFormatBecomesReadyAndSearchable: text, Markdown, HTML and PDF uploads answer
// 202 processing, become ready with chunks, and are found by search; HTML's scripts and styles
// are not indexed; a broken PDF ends failed with a reason; an image is 415; the same content
// twice is one document; delete removes it from search; tenant B never retrieves A's chunks.
func TestDocumentsEachFormatBecomesReadyAndSearchable(t *testing.T) {
	c := startAPI(t)
	a, b := signUp(c), signUp(c)
	owner := a.Tokens["owner"]
	cases := []struct {
		name, file, query string
		data              []byte
	}{
		{"text", "shipping.txt", "parcel tracking number courier",
			[]byte("Shipping\n\nEvery parcel gets a tracking number from the courier within a day.")},
		{"markdown", "refunds.md", "refund within fourteen days",
			[]byte("# Refunds\n\n## Policy\n\nWe refund within fourteen days of the return.\n\n## Exceptions\n\nGift cards are final.")},
		{"html", "warranty.html", "warranty covers manufacturing defects",
			[]byte(`<!doctype html><html><head><title>x</title><style>.zebraquux{color:red}</style></head><body><script>var zebraquux = 1;</script><h1>Warranty</h1><p>The warranty covers manufacturing defects for <b>two years</b>.</p></body></html>`)},
		{"pdf", "passwords.pdf", "reset password security settings",
			minimalPDF("Account help", "To reset your password open the security settings page.")},
	}
	ids := map[string]string{}
	for _, tc := range cases {
		m := c.upload(owner, tc.file, "", tc.data).must(t, 202, "upload "+tc.name)
		if m["status"] != "processing" && m["status"] != "ready" {
			t.Errorf("%s: status %v", tc.name, m["status"])
		}
		if len(m["sha256"].(string)) != 64 || m["size"].(float64) != float64(len(tc.data)) {
			t.Errorf("%s: answer %v", tc.name, m)
		}
		ids[tc.name] = m["id"].(string)
	}
	for _, tc := range cases {
		d := waitStatus(c, owner, ids[tc.name])
		if d["status"] != "ready" || d["chunk_count"].(float64) < 1 || d["format"] != tc.name {
			t.Fatalf("%s: document %v", tc.name, d)
		}
		got := search(c, owner, tc.query, 5)
		if len(got) == 0 || got[0] != ids[tc.name] {
			t.Errorf("%s: search %q found %v, want %s first", tc.name, tc.query, got, ids[tc.name])
		}
		if other := search(c, b.Tokens["owner"], tc.query, 5); len(other) != 0 {
			t.Errorf("tenant B's search %q found A's %v", tc.query, other)
		}
	}
	if r := c.do("GET", "/api/v1/knowledge/search?q=zebraquux&k=50", owner, nil).must(t, 200, "search"); strings.Contains(fmt.Sprint(r), "zebraquux") {
		t.Errorf("HTML script/style content was indexed: %v", r)
	}

	// The same content again is the same document.
	again := c.upload(owner, "copy.txt", "Another title", cases[0].data).must(t, 202, "upload again")
	if again["id"] != ids["text"] || again["status"] != "ready" {
		t.Errorf("re-upload: %v, want document %s ready", again, ids["text"])
	}

	// A broken PDF fails with a reason; an image is refused.
	broken := c.upload(owner, "broken.pdf", "", []byte("%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage")).must(t, 202, "upload broken pdf")
	if d := waitStatus(c, owner, broken["id"].(string)); d["status"] != "failed" || !strings.Contains(d["error"].(string), "PDF") {
		t.Errorf("broken PDF: %v", d)
	}
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0}, 64)...)
	if r := c.upload(owner, "logo.png", "", png); r.Status != 415 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
		t.Errorf("PNG upload: %d %s", r.Status, r.Body)
	}
	if r := c.do("POST", "/api/v1/documents", owner, map[string]any{"file": "x"}); r.Status != 415 {
		t.Errorf("JSON upload: %d %s", r.Status, r.Body)
	}

	// The list shows the documents; B's shows none of them.
	list := c.do("GET", "/api/v1/documents", owner, nil).must(t, 200, "list")
	if n := len(list["items"].([]any)); n != 5 {
		t.Errorf("list has %d documents, want 5", n)
	}
	if r := c.do("GET", "/api/v1/documents/"+ids["text"], b.Tokens["owner"], nil); r.Status != 404 {
		t.Errorf("B reads A's document: %d", r.Status)
	}

	// Delete removes it from search.
	c.do("DELETE", "/api/v1/documents/"+ids["markdown"], owner, nil).must(t, 204, "delete")
	for _, id := range search(c, owner, "refund within fourteen days", 10) {
		if id == ids["markdown"] {
			t.Errorf("deleted document still found")
		}
	}
	if r := c.do("GET", "/api/v1/documents/"+ids["markdown"], owner, nil); r.Status != 404 {
		t.Errorf("deleted document: %d", r.Status)
	}
}

// TestUploadLimits: an upload over the size limit is 413, one without a file 400.
func TestUploadLimits(t *testing.T) {
	c := startAPI(t)
	a := signUp(c)
	big := bytes.Repeat([]byte("word "), (10<<20)/5+1000)
	if r := c.upload(a.Tokens["owner"], "big.txt", "", big); r.Status != 413 {
		t.Errorf("big upload: %d %s", r.Status, r.Body)
	}
	if r := c.upload(a.Tokens["agent"], "a.txt", "", []byte("hello")); r.Status != 403 {
		t.Errorf("agent upload: %d", r.Status)
	}
}
