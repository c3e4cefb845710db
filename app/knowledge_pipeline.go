package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"strconv"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// RunPipeline runs the document pipeline until ctx ends: a reactor on the document events
// (a durable JetStream consumer shared by every instance, so each upload is processed by one of
// them at a time and again after a crash). For each document.uploaded it fetches the original,
// extracts its text, chunks it by structure and records the chunks with document.indexed, or
// document.failed with a reason a user can act on. The knowledge projection embeds the chunks and
// makes them searchable. A redelivered upload changes nothing (the decider accepts one result per
// upload).
func (k *Knowledge) RunPipeline(ctx context.Context) error {
	if k.cfg.Worker == nil {
		return errors.New("knowledge pipeline: no worker configured")
	}
	return k.cfg.Worker.Work(ctx, eventstore.WorkConfig{
		Durable: PipelineConsumer, Filter: domain.Filter{AggregateType: domain.DocumentAggregate}, Logger: k.log,
	}, k.process)
}

// process handles one document event.
func (k *Knowledge) process(ctx context.Context, env domain.Envelope) error {
	if env.Type != domain.EventDocumentUploaded {
		return nil
	}
	ev, err := k.cfg.Registry.Decode(env)
	if err != nil {
		return err
	}
	up := ev.(*domain.DocumentUploaded)
	agg := domain.DocumentRef(env.TenantID, env.AggregateID)
	md := eventstore.Metadata{Actor: domain.SystemActor, CorrelationID: env.CorrelationID, CausationID: env.ID}
	data, err := k.cfg.Objects.Get(ctx, up.Object)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		// Deleted meanwhile, or lost: nothing to index.
		_, err = k.handler.Handle(ctx, agg, domain.RecordFailed{UploadID: up.UploadID,
			Reason: "The uploaded file is no longer stored: upload it again.", At: k.now()}, md)
		return err
	}
	if err != nil {
		return err
	}
	chunks, err := k.Prepare(up.Format, data, up.UploadID)
	if err != nil {
		var de *domain.Error
		if !errors.As(err, &de) || (de.Code != domain.EINVALID && de.Code != domain.EUNSUPPORTED) {
			return err
		}
		k.log.InfoContext(ctx, "pipeline: document failed", "document_id", up.DocumentID, "reason", de.Message)
		_, err = k.handler.Handle(ctx, agg, domain.RecordFailed{UploadID: up.UploadID, Reason: de.Message, At: k.now()}, md)
		return err
	}
	res, err := k.handler.Handle(ctx, agg, domain.RecordIndexed{UploadID: up.UploadID, Chunks: chunks, Extractor: ExtractorName,
		At: k.now()}, md)
	if err != nil {
		return err
	}
	k.log.InfoContext(ctx, "pipeline: document indexed", "document_id", up.DocumentID, "chunks", len(chunks),
		"events", len(res.Events))
	return nil
}

// Prepare extracts a document's text and chunks it, with chunk ids derived from the upload (so a
// repeated run gives the same ids). Its error is EINVALID with a reason a user can act on.
func (k *Knowledge) Prepare(format string, data []byte, uploadID string) ([]domain.Chunk, error) {
	text, err := ExtractText(format, data)
	if err != nil {
		return nil, err
	}
	parts := ChunkText(text)
	if len(parts) == 0 {
		return nil, domain.Errorf(domain.EINVALID, "The document has no text.")
	}
	space, err := uuid.Parse(uploadID)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "Invalid upload id.")
	}
	out := make([]domain.Chunk, len(parts))
	for i, p := range parts {
		out[i] = domain.Chunk{ChunkID: uuid.NewHash(sha256.New(), space, []byte("chunk\x00"+strconv.Itoa(i)), 8).String(),
			Ordinal: i, Heading: p.Heading, Text: p.Text}
	}
	return out, nil
}

// SearchHit is one search result.
type SearchHit = projections.ChunkHit

// Search runs a hybrid search over p's tenant's knowledge (full-text and vector, fused by
// reciprocal rank fusion) and returns at most k chunks, best first.
func (k *Knowledge) Search(ctx context.Context, p domain.Principal, q string, limit int) ([]SearchHit, error) {
	if err := requireKnowledgeReader(p); err != nil {
		return nil, err
	}
	return k.search(ctx, p.TenantID, q, limit)
}

func (k *Knowledge) search(ctx context.Context, tenantID, q string, limit int) ([]SearchHit, error) {
	if limit <= 0 {
		limit = 5
	}
	if limit > DefaultMaxSearchResults {
		return nil, domain.Invalid("Invalid k.", domain.FieldError{Field: "k", Message: "must be between 1 and 50"})
	}
	if q == "" || len(q) > 1000 {
		return nil, domain.Invalid("Invalid query.", domain.FieldError{Field: "q", Message: "must be 1-1000 characters"})
	}
	vecs, err := k.cfg.Embedder.Embed(ctx, []string{q})
	if err != nil {
		// Full-text search alone is still an answer.
		k.log.WarnContext(ctx, "search: query not embedded, full-text only", "err", err)
		vecs = nil
	}
	sq := projections.SearchQuery{Text: q, K: limit, Embedder: k.cfg.Embedder.Name()}
	if len(vecs) == 1 {
		sq.Vector = vecs[0]
	}
	return k.reader.Search(ctx, tenantID, sq)
}
