package httpapi

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// registerKnowledgeRoutes registers the knowledge base: documents and search.
func (s *Server) registerKnowledgeRoutes(r chi.Router) {
	s.handle(r, http.MethodGet, "/api/v1/documents", s.handleListDocuments)
	s.handle(r, http.MethodPost, "/api/v1/documents", s.handleUploadDocument)
	s.handle(r, http.MethodGet, "/api/v1/documents/{document_id}", s.handleGetDocument)
	s.handle(r, http.MethodDelete, "/api/v1/documents/{document_id}", s.handleDeleteDocument)
	s.handle(r, http.MethodGet, "/api/v1/knowledge/search", s.handleSearchKnowledge)
}

// multipartOverhead is what a multipart body may carry beside its file: boundaries, part
// headers, the title.
const multipartOverhead = 64 << 10

// validateMultipart is validate for an operation whose body is multipart/form-data (an upload):
// the body must be multipart/form-data (415), at most the upload limit plus overhead (413), with
// a "file" part and an optional "title" of at most 200 characters (400). The parsed form is left
// in r.MultipartForm, in memory, for the handler.
func (s *Server) validateMultipart(r *http.Request) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return &domain.Error{Code: domain.EUNSUPPORTED, Message: "Send the file as multipart/form-data.",
			Fields: []domain.FieldError{{Field: "Content-Type", Message: "must be multipart/form-data"}}}
	}
	limit := int64(app.DefaultMaxUploadBytes)
	if s.cfg.Knowledge != nil {
		limit = s.cfg.Knowledge.MaxUploadBytes()
	}
	r.Body = http.MaxBytesReader(nil, r.Body, limit+multipartOverhead)
	if err := r.ParseMultipartForm(limit + multipartOverhead); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return domain.Errorf(domain.ETOOLARGE, "The file is larger than %d bytes.", limit)
		}
		return domain.Invalid("The multipart body could not be read.", domain.FieldError{Field: "body", Message: "malformed multipart/form-data"})
	}
	if fs := r.MultipartForm.File["file"]; len(fs) != 1 {
		return domain.Invalid("Send exactly one file.", domain.FieldError{Field: "file", Message: "is required"})
	}
	if t := r.MultipartForm.Value["title"]; len(t) > 1 || (len(t) == 1 && (!utf8.ValidString(t[0]) || utf8.RuneCountInString(t[0]) > domain.MaxDocumentTitleLen)) {
		return domain.Invalid("Invalid title.", domain.FieldError{Field: "title", Message: "must be at most 200 characters"})
	}
	return nil
}

type documentJSON struct {
	ID          string    `json:"id"`
	Title       string    `json:"title"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	Format      string    `json:"format"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	Status      string    `json:"status"`
	ChunkCount  int       `json:"chunk_count"`
	Error       string    `json:"error"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func documentOut(d app.Document) documentJSON {
	return documentJSON{ID: d.ID, Title: d.Title, Filename: d.Filename, ContentType: d.ContentType, Format: d.Format,
		Size: d.Size, SHA256: d.SHA256, Status: d.Status, ChunkCount: d.ChunkCount, Error: d.Error,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
}

// handleUploadDocument is POST /api/v1/documents (validated by validateMultipart).
func (s *Server) handleUploadDocument(w http.ResponseWriter, r *http.Request) {
	fh := r.MultipartForm.File["file"][0]
	f, err := fh.Open()
	if err != nil {
		s.writeError(w, r, domain.Invalid("The file could not be read.", domain.FieldError{Field: "file", Message: "unreadable"}))
		return
	}
	data, err := io.ReadAll(f)
	_ = f.Close()
	if err != nil {
		s.writeError(w, r, domain.Invalid("The file could not be read.", domain.FieldError{Field: "file", Message: "unreadable"}))
		return
	}
	var title string
	if t := r.MultipartForm.Value["title"]; len(t) == 1 {
		title = t[0]
	}
	doc, seq, err := s.cfg.Knowledge.Upload(r.Context(), principal(r.Context()), app.UploadInput{
		Title: title, Filename: fh.Filename, ContentType: fh.Header.Get("Content-Type"), Data: data,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, seq)
	writeJSON(w, http.StatusAccepted, documentOut(doc))
}

type documentListJSON struct {
	Items      []documentJSON `json:"items"`
	NextCursor *string        `json:"next_cursor"`
}

// handleListDocuments is GET /api/v1/documents.
func (s *Server) handleListDocuments(w http.ResponseWriter, r *http.Request) {
	limit, cursor, err := identityPage(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.cfg.Knowledge.ListDocuments(r.Context(), principal(r.Context()), limit, cursor)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := documentListJSON{Items: make([]documentJSON, 0, len(page.Items)), NextCursor: identityNextCursor(page.NextCursor)}
	for _, d := range page.Items {
		out.Items = append(out.Items, documentOut(d))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleGetDocument is GET /api/v1/documents/{document_id}.
func (s *Server) handleGetDocument(w http.ResponseWriter, r *http.Request) {
	d, err := s.cfg.Knowledge.GetDocument(r.Context(), principal(r.Context()), chi.URLParam(r, "document_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, documentOut(d))
}

// handleDeleteDocument is DELETE /api/v1/documents/{document_id}.
func (s *Server) handleDeleteDocument(w http.ResponseWriter, r *http.Request) {
	seq, err := s.cfg.Knowledge.DeleteDocument(r.Context(), principal(r.Context()), chi.URLParam(r, "document_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setStreamSequence(w, seq)
	w.WriteHeader(http.StatusNoContent)
}

type searchHitJSON struct {
	DocumentID string  `json:"document_id"`
	ChunkID    string  `json:"chunk_id"`
	Title      string  `json:"title"`
	Heading    string  `json:"heading"`
	Text       string  `json:"text"`
	Score      float64 `json:"score"`
}

// handleSearchKnowledge is GET /api/v1/knowledge/search?q=&k=.
func (s *Server) handleSearchKnowledge(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	k := 5
	if v := q.Get("k"); v != "" {
		var err error
		if k, err = strconv.Atoi(v); err != nil {
			s.writeError(w, r, domain.Invalid("Invalid k.", domain.FieldError{Field: "k", Message: "must be an integer"}))
			return
		}
	}
	hits, err := s.cfg.Knowledge.Search(r.Context(), principal(r.Context()), q.Get("q"), k)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Items []searchHitJSON `json:"items"`
	}{Items: make([]searchHitJSON, 0, len(hits))}
	for _, h := range hits {
		out.Items = append(out.Items, searchHitJSON{DocumentID: h.DocumentID, ChunkID: h.ChunkID, Title: h.Title,
			Heading: h.Heading, Text: h.Text, Score: h.Score})
	}
	writeJSON(w, http.StatusOK, out)
}
