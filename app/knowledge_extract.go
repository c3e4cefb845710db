package app

import (
	"bytes"
	"net/http"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ledongthuc/pdf"
	"golang.org/x/net/html"

	"github.com/metachat/metachat/domain"
)

// ExtractorName names the extraction and chunking code; it is recorded with every indexed
// document (document.indexed), so a change of their output changes it.
const ExtractorName = "metachat-extract-v1"

// Chunking bounds, in bytes of text.
const (
	// ChunkTarget is the size a chunk is filled up to; ChunkOverlap how much of the end of a chunk
	// the next chunk under the same heading repeats.
	ChunkTarget  = 1200
	ChunkOverlap = 200
	// MaxExtractedText bounds the text of one document.
	MaxExtractedText = 2 << 20
)

// SniffFormat decides a document's format from its content first, then its file name and declared
// content type: a PDF by its magic bytes, HTML by its markup (http.DetectContentType), and among
// valid UTF-8 text, Markdown by its extension or type. Anything else (images, archives, binary
// data, text that is not UTF-8) is EUNSUPPORTED.
func SniffFormat(data []byte, filename, contentType string) (string, error) {
	if bytes.HasPrefix(data, []byte("%PDF-")) {
		return domain.FormatPDF, nil
	}
	detected := http.DetectContentType(data)
	ext := strings.ToLower(path.Ext(filename))
	ct := strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	switch {
	case strings.HasPrefix(detected, "text/html"), strings.HasPrefix(detected, "text/xml") && (ext == ".html" || ext == ".htm"):
		return domain.FormatHTML, nil
	case strings.HasPrefix(detected, "text/plain"):
		if !utf8.Valid(data) {
			return "", unsupported()
		}
		switch {
		case ext == ".md" || ext == ".markdown" || ct == "text/markdown" || ct == "text/x-markdown":
			return domain.FormatMarkdown, nil
		case ext == ".html" || ext == ".htm" || ct == "text/html":
			return domain.FormatHTML, nil
		}
		return domain.FormatText, nil
	}
	return "", unsupported()
}

func unsupported() error {
	return &domain.Error{Code: domain.EUNSUPPORTED,
		Message: "Unsupported file type: upload plain text, Markdown, HTML or PDF.",
		Fields:  []domain.FieldError{{Field: "file", Message: "must be plain text, Markdown, HTML or PDF"}}}
}

// ExtractText returns a document's text with its structure as Markdown-like lines: "# " headings,
// blank lines between paragraphs. Its error is a domain EINVALID error whose message says what a
// user can do about it.
func ExtractText(format string, data []byte) (string, error) {
	var text string
	switch format {
	case domain.FormatText, domain.FormatMarkdown:
		text = string(data)
	case domain.FormatHTML:
		text = htmlText(data)
	case domain.FormatPDF:
		var err error
		if text, err = pdfText(data); err != nil {
			return "", err
		}
	default:
		return "", unsupported()
	}
	text = strings.ToValidUTF8(strings.ReplaceAll(text, "\r\n", "\n"), "")
	text = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		return -1
	}, text)
	if strings.TrimSpace(text) == "" {
		if format == domain.FormatPDF {
			return "", domain.Errorf(domain.EINVALID, "The PDF has no extractable text (it may be a scan): upload a PDF with a text layer, or its text.")
		}
		return "", domain.Errorf(domain.EINVALID, "The document has no text.")
	}
	if len(text) > MaxExtractedText {
		return "", domain.Errorf(domain.EINVALID, "The document has more than %d MiB of text: split it into smaller documents.", MaxExtractedText>>20)
	}
	return text, nil
}

// pdfText extracts a PDF's text page by page. The library panics on some malformed files; a panic
// is a damaged file like any other error.
func pdfText(data []byte) (text string, err error) {
	damaged := domain.Errorf(domain.EINVALID, "The PDF could not be read: it is damaged, encrypted or not a PDF. Export it again, or upload its text.")
	defer func() {
		if recover() != nil {
			text, err = "", damaged
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", damaged
	}
	var b strings.Builder
	for i := 1; i <= r.NumPage(); i++ {
		p := r.Page(i)
		if p.V.IsNull() {
			continue
		}
		rows, err := p.GetTextByRow()
		if err != nil {
			return "", damaged
		}
		for _, row := range rows {
			var line strings.Builder
			for _, w := range row.Content {
				line.WriteString(w.S)
			}
			b.WriteString(strings.TrimSpace(line.String()))
			b.WriteByte('\n')
		}
		b.WriteString("\n")
		if b.Len() > MaxExtractedText {
			break
		}
	}
	return b.String(), nil
}

// htmlText renders HTML as text: scripts, styles, templates and other non-content elements are
// dropped with their content, headings become "# " lines, block elements end paragraphs, and all
// markup is gone.
func htmlText(data []byte) string {
	z := html.NewTokenizer(bytes.NewReader(data))
	var b strings.Builder
	skip := 0
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return b.String() // io.EOF or a read error: what was read is the text
		case html.TextToken:
			if skip == 0 {
				t := strings.Join(strings.Fields(string(z.Text())), " ")
				if t != "" {
					if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") && !strings.HasSuffix(b.String(), " ") {
						b.WriteByte(' ')
					}
					b.WriteString(t)
				}
			}
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			tag := string(name)
			switch tag {
			case "script", "style", "noscript", "template", "head", "svg", "iframe", "object":
				if tt == html.StartTagToken {
					skip++
				} else if tt == html.EndTagToken && skip > 0 {
					skip--
				}
				continue
			}
			if skip > 0 {
				continue
			}
			switch tag {
			case "h1", "h2", "h3", "h4", "h5", "h6":
				b.WriteString("\n\n")
				if tt == html.StartTagToken {
					b.WriteString(strings.Repeat("#", int(tag[1]-'0')) + " ")
				}
			case "p", "div", "section", "article", "li", "ul", "ol", "table", "tr", "blockquote", "pre", "main",
				"header", "footer", "nav", "aside", "dd", "dt":
				b.WriteString("\n\n")
			case "br", "td", "th":
				b.WriteString("\n")
			}
		}
	}
}

// TextChunk is one chunk of a document before it has an id.
type TextChunk struct {
	Heading string
	Text    string
}

// ChunkText splits text into chunks by its structure: Markdown headings ("#" to "######") start a
// section, blank lines separate paragraphs, and paragraphs are gathered up to ChunkTarget bytes;
// the next chunk of the same section starts with the last ChunkOverlap bytes (at a word boundary)
// of the previous one. A paragraph larger than a chunk is split at word boundaries. Every chunk
// carries its heading path ("Billing › Refunds").
func ChunkText(text string) []TextChunk {
	var out []TextChunk
	var headings []string
	var cur strings.Builder
	tail := ""
	flush := func() {
		t := strings.TrimSpace(cur.String())
		cur.Reset()
		if t == "" || t == strings.TrimSpace(tail) {
			return
		}
		out = append(out, TextChunk{Heading: strings.Join(headings, " › "), Text: t})
		tail = overlapTail(t)
	}
	add := func(para string) {
		for len(para) > ChunkTarget {
			cut := wordBoundary(para, ChunkTarget)
			add1 := para[:cut]
			para = strings.TrimSpace(para[cut:])
			if cur.Len() > 0 && cur.Len()+len(add1) > ChunkTarget {
				flush()
				cur.WriteString(tail)
			}
			if cur.Len() > 0 {
				cur.WriteString("\n\n")
			}
			cur.WriteString(add1)
			flush()
			cur.WriteString(tail)
		}
		if para == "" {
			return
		}
		if cur.Len() > len(tail) && cur.Len()+len(para)+2 > ChunkTarget {
			flush()
			cur.WriteString(tail)
		}
		if cur.Len() > 0 {
			cur.WriteString("\n\n")
		}
		cur.WriteString(para)
	}
	for _, block := range strings.Split(text, "\n\n") {
		var para []string
		for _, line := range strings.Split(block, "\n") {
			trimmed := strings.TrimSpace(line)
			if level, title, ok := markdownHeading(trimmed); ok {
				if len(para) > 0 {
					add(strings.Join(para, "\n"))
					para = nil
				}
				flush()
				tail = ""
				if level-1 < len(headings) {
					headings = headings[:level-1]
				}
				for len(headings) < level-1 {
					headings = append(headings, "")
				}
				headings = append(headings, title)
				headings = compact(headings)
				continue
			}
			if trimmed != "" {
				para = append(para, trimmed)
			}
		}
		if len(para) > 0 {
			add(strings.Join(para, "\n"))
		}
	}
	flush()
	return out
}

func compact(hs []string) []string {
	out := hs[:0]
	for _, h := range hs {
		if h != "" {
			out = append(out, h)
		}
	}
	return out
}

// markdownHeading parses "## Title".
func markdownHeading(line string) (int, string, bool) {
	level := 0
	for level < len(line) && line[level] == '#' {
		level++
	}
	if level == 0 || level > 6 || level >= len(line) || line[level] != ' ' {
		return 0, "", false
	}
	title := strings.TrimSpace(strings.TrimRight(line[level:], "#"))
	if title == "" {
		return 0, "", false
	}
	if len(title) > 200 {
		title = title[:wordBoundary(title, 200)]
	}
	return level, title, true
}

// wordBoundary returns a cut position at most n into s, at the last space before n when there is
// one in its second half, and never inside a UTF-8 sequence.
func wordBoundary(s string, n int) int {
	if n >= len(s) {
		return len(s)
	}
	if i := strings.LastIndexAny(s[:n], " \n\t"); i > n/2 {
		return i
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	if n == 0 {
		return len(s)
	}
	return n
}

// overlapTail is the end of a chunk the next one repeats: its last ChunkOverlap bytes, from a word
// start.
func overlapTail(t string) string {
	if len(t) <= ChunkOverlap {
		return ""
	}
	s := t[len(t)-ChunkOverlap:]
	if i := strings.IndexAny(s, " \n\t"); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return s
}
