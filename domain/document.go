package domain

import (
	"strings"
	"time"
	"unicode/utf8"
)

// DocumentAggregate is the aggregate type name of knowledge-base documents: one aggregate per
// document, under its tenant. A document's id is derived from its tenant and the sha256 of its
// content, so the same content uploaded twice is the same document.
const DocumentAggregate = "document"

// Stored event type names of the document aggregate. Never change them.
const (
	EventDocumentUploaded = "document.uploaded"
	EventDocumentChunked  = "document.chunked"
	EventDocumentIndexed  = "document.indexed"
	EventDocumentFailed   = "document.failed"
	EventDocumentDeleted  = "document.deleted"
)

// Document statuses, as the API shows them.
const (
	DocumentStatusProcessing = "processing"
	DocumentStatusReady      = "ready"
	DocumentStatusFailed     = "failed"
	DocumentStatusDeleted    = "deleted"
)

// Document formats the pipeline extracts text from.
const (
	FormatText     = "text"
	FormatMarkdown = "markdown"
	FormatHTML     = "html"
	FormatPDF      = "pdf"
)

// Limits of document fields.
const (
	MaxDocumentTitleLen    = 200
	MaxDocumentFilenameLen = 255
	MaxDocumentReasonLen   = 500
	// MaxChunkTextLen bounds one chunk's text, in bytes.
	MaxChunkTextLen = 8000
)

// DocumentUploaded records a new document: its metadata and where the original is kept (an
// object of the knowledge object store), never the content itself. UploadID is the id of this
// upload; the pipeline's results name it, so a result of an earlier upload of a document that
// was deleted and uploaded again is never taken for the new one.
type DocumentUploaded struct {
	DocumentID  string    `json:"document_id"`
	UploadID    string    `json:"upload_id"`
	Title       string    `json:"title"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	Format      string    `json:"format"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	Object      string    `json:"object"`
	UploadedAt  time.Time `json:"uploaded_at"`
}

// EventType implements Event.
func (*DocumentUploaded) EventType() string { return EventDocumentUploaded }

// Chunk is one retrievable passage of a document.
type Chunk struct {
	ChunkID string `json:"chunk_id"`
	Ordinal int    `json:"ordinal"`
	// Heading is the heading path the chunk sits under ("Billing › Refunds"), "" for none.
	Heading string `json:"heading"`
	Text    string `json:"text"`
}

// DocumentChunked carries some of the chunks extracted from an upload (a document's chunks are
// split over several events so that each stays small). Embeddings are not events: the knowledge
// projection computes them, so switching embedder is a rebuild of that projection.
type DocumentChunked struct {
	UploadID string  `json:"upload_id"`
	Chunks   []Chunk `json:"chunks"`
}

// EventType implements Event.
func (*DocumentChunked) EventType() string { return EventDocumentChunked }

// DocumentIndexed records that an upload's text was extracted and chunked, ChunkCount chunks in
// all, by the named extractor.
type DocumentIndexed struct {
	UploadID   string    `json:"upload_id"`
	ChunkCount int       `json:"chunk_count"`
	Extractor  string    `json:"extractor"`
	IndexedAt  time.Time `json:"indexed_at"`
}

// EventType implements Event.
func (*DocumentIndexed) EventType() string { return EventDocumentIndexed }

// DocumentFailed records that an upload could not be indexed, with a reason a user can act on.
type DocumentFailed struct {
	UploadID string    `json:"upload_id"`
	Reason   string    `json:"reason"`
	FailedAt time.Time `json:"failed_at"`
}

// EventType implements Event.
func (*DocumentFailed) EventType() string { return EventDocumentFailed }

// DocumentDeleted records that a document was removed from the knowledge base.
type DocumentDeleted struct {
	DeletedAt time.Time `json:"deleted_at"`
}

// EventType implements Event.
func (*DocumentDeleted) EventType() string { return EventDocumentDeleted }

// DocumentEventDefs returns the registry definitions of the document aggregate's events.
func DocumentEventDefs() []EventDef {
	return []EventDef{
		{Type: EventDocumentUploaded, Version: 1, New: func() Event { return new(DocumentUploaded) }},
		{Type: EventDocumentChunked, Version: 1, New: func() Event { return new(DocumentChunked) }},
		{Type: EventDocumentIndexed, Version: 1, New: func() Event { return new(DocumentIndexed) }},
		{Type: EventDocumentFailed, Version: 1, New: func() Event { return new(DocumentFailed) }},
		{Type: EventDocumentDeleted, Version: 1, New: func() Event { return new(DocumentDeleted) }},
	}
}

// DocumentRef returns the aggregate of a document.
func DocumentRef(tenantID, documentID string) AggregateRef {
	return AggregateRef{TenantID: tenantID, Type: DocumentAggregate, ID: documentID}
}

// Document is the decided state of one document.
type Document struct {
	ID         string
	Upload     DocumentUploaded
	Status     string
	ChunkCount int
	Error      string
	Exists     bool
}

// DocumentCommand is a command addressed to the document aggregate.
type DocumentCommand interface{ documentCommand() }

// UploadDocument records an upload. Uploading content the document already has (it is not
// deleted) changes nothing: the same content is recognised by its id.
type UploadDocument struct {
	Upload DocumentUploaded
}

// RecordIndexed records the pipeline's chunks for an upload. It changes nothing unless the
// document is processing that very upload, so a redelivered job never indexes twice.
type RecordIndexed struct {
	UploadID  string
	Chunks    []Chunk
	Extractor string
	// MaxEventBytes bounds the chunk text of one document.chunked event (default 128 KiB).
	MaxEventBytes int
	At            time.Time
}

// RecordFailed records that an upload could not be indexed; like RecordIndexed it changes nothing
// unless the document is processing that upload.
type RecordFailed struct {
	UploadID string
	Reason   string
	At       time.Time
}

// DeleteDocument removes a document; a missing or deleted one is ENOTFOUND.
type DeleteDocument struct {
	At time.Time
}

func (UploadDocument) documentCommand() {}
func (RecordIndexed) documentCommand()  {}
func (RecordFailed) documentCommand()   {}
func (DeleteDocument) documentCommand() {}

// DocumentDecider is the document aggregate's behaviour.
func DocumentDecider() Decider[Document, DocumentCommand] {
	return Decider[Document, DocumentCommand]{
		AggregateType: DocumentAggregate,
		Initial:       func() Document { return Document{} },
		Evolve:        evolveDocument,
		Decide:        decideDocument,
	}
}

func evolveDocument(s Document, e Event) Document {
	switch e := e.(type) {
	case *DocumentUploaded:
		s = Document{ID: e.DocumentID, Upload: *e, Status: DocumentStatusProcessing, Exists: true}
	case *DocumentIndexed:
		s.Status, s.ChunkCount, s.Error = DocumentStatusReady, e.ChunkCount, ""
	case *DocumentFailed:
		s.Status, s.Error = DocumentStatusFailed, e.Reason
	case *DocumentDeleted:
		s.Status = DocumentStatusDeleted
	}
	return s
}

func decideDocument(s Document, c DocumentCommand) ([]Event, error) {
	switch c := c.(type) {
	case UploadDocument:
		if s.Exists && s.Status != DocumentStatusDeleted {
			return nil, nil
		}
		u := c.Upload
		u.Title = strings.TrimSpace(u.Title)
		var fields []FieldError
		if !IsUUID(u.DocumentID) || !IsUUID(u.UploadID) {
			fields = append(fields, FieldError{Field: "id", Message: "must be a UUID"})
		}
		if u.Title == "" || utf8.RuneCountInString(u.Title) > MaxDocumentTitleLen {
			fields = append(fields, FieldError{Field: "title", Message: "must be 1-200 characters"})
		}
		switch u.Format {
		case FormatText, FormatMarkdown, FormatHTML, FormatPDF:
		default:
			fields = append(fields, FieldError{Field: "file", Message: "unsupported format"})
		}
		if len(u.SHA256) != 64 || u.Object == "" || u.Size <= 0 {
			fields = append(fields, FieldError{Field: "file", Message: "must be stored with its sha256 and object"})
		}
		if len(fields) > 0 {
			return nil, Invalid("Invalid document.", fields...)
		}
		u.UploadedAt = convTime(u.UploadedAt)
		return []Event{&u}, nil
	case RecordIndexed:
		if !s.Exists || s.Status != DocumentStatusProcessing || s.Upload.UploadID != c.UploadID {
			return nil, nil
		}
		limit := c.MaxEventBytes
		if limit <= 0 {
			limit = 128 << 10
		}
		var out []Event
		cur := &DocumentChunked{UploadID: c.UploadID}
		size := 0
		for _, ch := range c.Chunks {
			if len(ch.Text) > MaxChunkTextLen || !IsUUID(ch.ChunkID) {
				return nil, Errorf(EINVALID, "Chunk %d is invalid.", ch.Ordinal)
			}
			if size > 0 && size+len(ch.Text)+len(ch.Heading) > limit {
				out = append(out, cur)
				cur, size = &DocumentChunked{UploadID: c.UploadID}, 0
			}
			cur.Chunks = append(cur.Chunks, ch)
			size += len(ch.Text) + len(ch.Heading)
		}
		if len(cur.Chunks) > 0 {
			out = append(out, cur)
		}
		return append(out, &DocumentIndexed{UploadID: c.UploadID, ChunkCount: len(c.Chunks), Extractor: c.Extractor,
			IndexedAt: convTime(c.At)}), nil
	case RecordFailed:
		if !s.Exists || s.Status != DocumentStatusProcessing || s.Upload.UploadID != c.UploadID {
			return nil, nil
		}
		reason := strings.TrimSpace(c.Reason)
		if reason == "" {
			reason = "The document could not be processed."
		}
		if utf8.RuneCountInString(reason) > MaxDocumentReasonLen {
			reason = string([]rune(reason)[:MaxDocumentReasonLen])
		}
		return []Event{&DocumentFailed{UploadID: c.UploadID, Reason: reason, FailedAt: convTime(c.At)}}, nil
	case DeleteDocument:
		if !s.Exists || s.Status == DocumentStatusDeleted {
			return nil, Errorf(ENOTFOUND, "Document not found.")
		}
		return []Event{&DocumentDeleted{DeletedAt: convTime(c.At)}}, nil
	default:
		return nil, Errorf(EINVALID, "Unknown document command.")
	}
}
