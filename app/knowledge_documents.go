package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// Document is a knowledge-base document as the API shows it.
type Document struct {
	ID          string
	Title       string
	Filename    string
	ContentType string
	Format      string
	Size        int64
	SHA256      string
	Status      string
	ChunkCount  int
	Error       string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// DocumentPage is one page of documents and the cursor of the next ("" on the last page).
type DocumentPage struct {
	Items      []Document
	NextCursor string
}

// UploadInput is one uploaded file.
type UploadInput struct {
	// Title is optional; the file name (without extension) serves when empty.
	Title       string
	Filename    string
	ContentType string
	Data        []byte
}

// Upload adds a document to p's tenant's knowledge base: it checks the size, sniffs the format
// (EUNSUPPORTED for anything but text, Markdown, HTML and PDF), keeps the original in the object
// store and records document.uploaded; the pipeline does the rest. The same content uploaded
// again (same sha256) is the same document: the answer is that document as it is, and nothing is
// recorded. The second result is the stream sequence of the write (0 when nothing was written).
func (k *Knowledge) Upload(ctx context.Context, p domain.Principal, in UploadInput) (Document, uint64, error) {
	if err := requireKnowledgeEditor(p); err != nil {
		return Document{}, 0, err
	}
	if int64(len(in.Data)) > k.cfg.MaxUploadBytes {
		return Document{}, 0, domain.Errorf(domain.ETOOLARGE, "The file is larger than %d bytes.", k.cfg.MaxUploadBytes)
	}
	if len(in.Data) == 0 {
		return Document{}, 0, domain.Invalid("The file is empty.", domain.FieldError{Field: "file", Message: "must not be empty"})
	}
	format, err := SniffFormat(in.Data, in.Filename, in.ContentType)
	if err != nil {
		return Document{}, 0, err
	}
	filename := strings.ToValidUTF8(path.Base(strings.ReplaceAll(in.Filename, "\\", "/")), "")
	if filename == "." || filename == "/" {
		filename = ""
	}
	if utf8.RuneCountInString(filename) > domain.MaxDocumentFilenameLen {
		filename = string([]rune(filename)[:domain.MaxDocumentFilenameLen])
	}
	title := strings.TrimSpace(in.Title)
	if utf8.RuneCountInString(title) > domain.MaxDocumentTitleLen {
		return Document{}, 0, domain.Invalid("Invalid title.", domain.FieldError{Field: "title", Message: "must be at most 200 characters"})
	}
	if title == "" {
		title = strings.TrimSuffix(filename, path.Ext(filename))
	}
	if title == "" {
		title = "Untitled document"
	}
	sum := sha256.Sum256(in.Data)
	sha := hex.EncodeToString(sum[:])
	space, err := uuid.Parse(p.TenantID)
	if err != nil {
		return Document{}, 0, domain.Invalid("Invalid tenant id.", domain.FieldError{Field: "tenant_id", Message: "must be a UUID"})
	}
	docID := uuid.NewHash(sha256.New(), space, []byte("document\x00"+sha), 8).String()
	uploadID, err := uuid.NewV7()
	if err != nil {
		return Document{}, 0, domain.Errorf(domain.EINTERNAL, "Could not make an id.")
	}
	object := p.TenantID + "/" + sha
	if err := k.cfg.Objects.Put(ctx, object, in.Data); err != nil {
		return Document{}, 0, err
	}
	ct := in.ContentType
	if len(ct) > 100 {
		ct = ct[:100]
	}
	res, err := k.handler.Handle(ctx, domain.DocumentRef(p.TenantID, docID), domain.UploadDocument{Upload: domain.DocumentUploaded{
		DocumentID: docID, UploadID: uploadID.String(), Title: title, Filename: filename, ContentType: strings.ToValidUTF8(ct, ""),
		Format: format, Size: int64(len(in.Data)), SHA256: sha, Object: object, UploadedAt: k.now(),
	}}, eventstore.Metadata{Actor: p.Actor()})
	if err != nil {
		return Document{}, 0, err
	}
	if err := k.cfg.Waiter.WaitFor(ctx, projections.KnowledgeReadModel, res.Version); err != nil {
		k.log.WarnContext(ctx, "upload: read model not caught up", "document_id", docID, "err", err)
	}
	var seq uint64
	if len(res.Events) > 0 {
		seq = res.Version
	}
	return documentFromState(res.State), seq, nil
}

func documentFromState(s domain.Document) Document {
	u := s.Upload
	return Document{ID: s.ID, Title: u.Title, Filename: u.Filename, ContentType: u.ContentType, Format: u.Format, Size: u.Size,
		SHA256: u.SHA256, Status: s.Status, ChunkCount: s.ChunkCount, Error: s.Error, CreatedAt: u.UploadedAt, UpdatedAt: u.UploadedAt}
}

func documentFromRow(r projections.DocumentRow) Document {
	return Document{ID: r.ID, Title: r.Title, Filename: r.Filename, ContentType: r.ContentType, Format: r.Format, Size: r.Size,
		SHA256: r.SHA256, Status: r.Status, ChunkCount: r.ChunkCount, Error: r.Error, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// GetDocument returns a document of p's tenant with its pipeline status.
func (k *Knowledge) GetDocument(ctx context.Context, p domain.Principal, id string) (Document, error) {
	if err := requireKnowledgeReader(p); err != nil {
		return Document{}, err
	}
	row, err := k.reader.GetDocument(ctx, p.TenantID, strings.ToLower(id))
	if err != nil {
		return Document{}, err
	}
	return documentFromRow(row), nil
}

// ListDocuments returns a page of p's tenant's documents, oldest first.
func (k *Knowledge) ListDocuments(ctx context.Context, p domain.Principal, limit int, cursor string) (DocumentPage, error) {
	if err := requireKnowledgeReader(p); err != nil {
		return DocumentPage{}, err
	}
	limit, err := identityPageLimit(limit)
	if err != nil {
		return DocumentPage{}, err
	}
	after, err := decodeIdentityCursor(cursor)
	if err != nil {
		return DocumentPage{}, err
	}
	rows, err := k.reader.ListDocuments(ctx, p.TenantID, after.CreatedAt, after.ID, limit+1)
	if err != nil {
		return DocumentPage{}, err
	}
	page := DocumentPage{Items: make([]Document, 0, min(len(rows), limit))}
	for n, r := range rows {
		if n == limit {
			last := rows[n-1]
			page.NextCursor = encodeIdentityCursor(identityCursor{CreatedAt: last.CreatedAt, ID: last.ID})
			break
		}
		page.Items = append(page.Items, documentFromRow(r))
	}
	return page, nil
}

// DeleteDocument removes a document of p's tenant from the knowledge base: once the answer is
// given, search no longer finds its chunks. The original is removed from the object store.
func (k *Knowledge) DeleteDocument(ctx context.Context, p domain.Principal, id string) (uint64, error) {
	if err := requireKnowledgeEditor(p); err != nil {
		return 0, err
	}
	if !domain.IsUUID(id) {
		return 0, domain.Errorf(domain.ENOTFOUND, "Document not found.")
	}
	id = strings.ToLower(id)
	res, err := k.handler.Handle(ctx, domain.DocumentRef(p.TenantID, id), domain.DeleteDocument{At: k.now()},
		eventstore.Metadata{Actor: p.Actor()})
	if err != nil {
		return 0, err
	}
	if err := k.cfg.Objects.Delete(ctx, res.State.Upload.Object); err != nil {
		k.log.WarnContext(ctx, "delete: original not removed", "document_id", id, "err", err)
	}
	// The promise is that search no longer finds it: wait until the read model has it.
	if err := k.cfg.Waiter.WaitFor(ctx, projections.KnowledgeReadModel, res.Version); err != nil {
		return 0, err
	}
	return res.Version, nil
}
