package app

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/metachat/metachat/domain"
)

func TestSniffFormat(t *testing.T) {
	for _, tc := range []struct {
		data, name, ct, want string
	}{
		{"hello world", "a.txt", "", domain.FormatText},
		{"# Title\n\ntext", "a.md", "", domain.FormatMarkdown},
		{"# Title\n\ntext", "upload", "text/markdown; charset=utf-8", domain.FormatMarkdown},
		{"<!doctype html><p>x</p>", "a.txt", "", domain.FormatHTML},
		{"<html><body>x</body></html>", "page", "", domain.FormatHTML},
		{"%PDF-1.4 ...", "x.bin", "", domain.FormatPDF},
		{"\x89PNG\r\n\x1a\n\x00\x00", "a.txt", "text/plain", ""},
		{"GIF89a....", "a.md", "", ""},
		{"\xff\xfe\xfd text", "a.txt", "", ""},
	} {
		got, err := SniffFormat([]byte(tc.data), tc.name, tc.ct)
		if tc.want == "" {
			if domain.ErrorCode(err) != domain.EUNSUPPORTED {
				t.Errorf("%q: %v %v, want EUNSUPPORTED", tc.data, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q (%s): %q %v, want %q", tc.data, tc.name, got, err, tc.want)
		}
	}
}

func TestHTMLTextDropsScriptsStylesAndMarkup(t *testing.T) {
	got, err := ExtractText(domain.FormatHTML, []byte(`<html><head><title>T</title><style>p{}</style></head>
		<body><script>alert(1)</script><h2>Returns</h2><p>Send it <em>back</em>.</p><noscript>x</noscript></body></html>`))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"alert", "p{}", "<", "noscript"} {
		if strings.Contains(got, bad) {
			t.Errorf("text %q contains %q", got, bad)
		}
	}
	if !strings.Contains(got, "## Returns") || !strings.Contains(got, "Send it back .") && !strings.Contains(got, "Send it back") {
		t.Errorf("text %q", got)
	}
}

func TestChunkTextByStructureWithOverlap(t *testing.T) {
	para := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20) // ~900 bytes
	text := "# Guide\n\n## Billing\n\n" + para + "\n\n" + para + "\n\n## Shipping\n\nShort paragraph."
	chunks := ChunkText(text)
	if err := checkChunks(chunks); err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 3 {
		t.Fatalf("%d chunks: %+v", len(chunks), chunks)
	}
	if chunks[0].Heading != "Guide › Billing" || chunks[2].Heading != "Guide › Shipping" {
		t.Errorf("headings %q, %q", chunks[0].Heading, chunks[2].Heading)
	}
	tail := chunks[0].Text[len(chunks[0].Text)-50:]
	if !strings.Contains(chunks[1].Text, tail) {
		t.Errorf("second chunk does not overlap the first")
	}
	if strings.Contains(chunks[2].Text, "fox") {
		t.Errorf("overlap crossed a heading")
	}
	for _, c := range ChunkText(strings.Repeat("x", 5000)) {
		if len(c.Text) > ChunkTarget+ChunkOverlap+2 {
			t.Errorf("chunk of %d bytes", len(c.Text))
		}
	}
}

func TestBrokenPDFIsActionable(t *testing.T) {
	_, err := ExtractText(domain.FormatPDF, []byte("%PDF-1.7\ngarbage"))
	if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), "PDF") {
		t.Errorf("err %v", err)
	}
}

// FuzzExtractAndChunk: any input either is refused with a domain error or extracts to valid
// UTF-8 text whose chunks are non-empty, valid and bounded; nothing panics. PDFs are left out:
// the PDF library can allocate without bound on crafted cross-reference tables, which stalls the
// fuzzer (see ARCHITECTURE.md, Knowledge); their extraction is covered by the adapter tests.
func FuzzExtractAndChunk(f *testing.F) {
	f.Add([]byte("# A\n\nb\n\n## C\n\nd"), "a.md")
	f.Add([]byte("<html><script>x</script><h1>T</h1><p>p</p></html>"), "a.html")
	f.Add([]byte("plain \x00 text"), "a.txt")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		format, err := SniffFormat(data, name, "")
		if err != nil {
			if domain.ErrorCode(err) != domain.EUNSUPPORTED {
				t.Fatalf("sniff: %v", err)
			}
			return
		}
		if format == domain.FormatPDF {
			return
		}
		text, err := ExtractText(format, data)
		if err != nil {
			if c := domain.ErrorCode(err); c != domain.EINVALID && c != domain.EUNSUPPORTED {
				t.Fatalf("extract: %v", err)
			}
			return
		}
		if !utf8.ValidString(text) {
			t.Fatal("extracted text is not UTF-8")
		}
		if err := checkChunks(ChunkText(text)); err != nil {
			t.Fatal(err)
		}
	})
}

// checkChunks verifies the chunker's promises (tests and fuzzing use it).
func checkChunks(chunks []TextChunk) error {
	for i, c := range chunks {
		if c.Text == "" || len(c.Text) > domain.MaxChunkTextLen || !utf8.ValidString(c.Text) {
			return fmt.Errorf("chunk %d: %d bytes, valid UTF-8 %v", i, len(c.Text), utf8.ValidString(c.Text))
		}
	}
	return nil
}
