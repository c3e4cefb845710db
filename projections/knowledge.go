package projections

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/metachat/metachat/domain"
)

// KnowledgeReadModel is the name of the knowledge read model.
const KnowledgeReadModel = "knowledge"

// KnowledgeProjection keeps these tables from the document events:
//
//   - documents (tenant_id, document_id, upload_id, title, filename, content_type, format, size,
//     sha256, status, chunk_count, error, created_at, updated_at, version): one row per document
//     that is not deleted, with its pipeline status;
//   - knowledge_chunks (tenant_id, document_id, upload_id, chunk_id, ordinal, title, heading,
//     text, embedder, embedding vector(D), tsv): the retrievable passages, with an HNSW index on
//     the embedding (cosine) and a GIN index on the full-text vector;
//   - knowledge_terms (tenant_id, lexeme, impact, chunk_id): each chunk's full-text lexemes with
//     their BM25 term weight (impact), indexed by lexeme and impact: the candidates of full-text
//     search, which row-level security lets Postgres find by index (it cannot use the GIN index);
//   - knowledge_lexemes (tenant_id, lexeme, df) and knowledge_stats (tenant_id, chunks): the
//     document frequencies and chunk counts of BM25's inverse document frequency.
//
// The chunks' texts come from document.chunked events; their embeddings are computed here, with
// the projection's Embedder, through the shared embedding cache (public.embedding_cache, by
// embedder and sha256 of the text). So switching embedder is a rebuild of this projection beside
// the old generation (`metachat projections rebuild knowledge` after changing the configuration),
// never an in-place update, and the rebuild pays only for texts the cache lacks. An embedding
// service that is down makes Apply fail with EUNAVAILABLE, which the runner retries (it is not a
// poison event).
type KnowledgeProjection struct {
	reg *domain.Registry
	emb Embedder
}

var _ Projection = (*KnowledgeProjection)(nil)

// NewKnowledgeProjection returns the knowledge projection, decoding payloads with reg and
// embedding chunks with emb.
func NewKnowledgeProjection(reg *domain.Registry, emb Embedder) *KnowledgeProjection {
	return &KnowledgeProjection{reg: reg, emb: emb}
}

// Name implements Projection.
func (*KnowledgeProjection) Name() string { return KnowledgeReadModel }

// Setup implements Projection.
func (p *KnowledgeProjection) Setup(ctx context.Context, tx pgx.Tx, schema string) error {
	docs := pgx.Identifier{schema, "documents"}.Sanitize()
	chunks := pgx.Identifier{schema, "knowledge_chunks"}.Sanitize()
	dims := p.emb.Dimensions()
	if dims <= 0 || dims > 2000 {
		return fmt.Errorf("embedder %s: %d dimensions, HNSW supports 1-2000", p.emb.Name(), dims)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE `+docs+` (
		tenant_id    uuid        NOT NULL,
		document_id  uuid        NOT NULL,
		upload_id    uuid        NOT NULL,
		title        text        NOT NULL,
		filename     text        NOT NULL,
		content_type text        NOT NULL,
		format       text        NOT NULL,
		size         bigint      NOT NULL,
		sha256       text        NOT NULL,
		status       text        NOT NULL,
		chunk_count  integer     NOT NULL DEFAULT 0,
		error        text        NOT NULL DEFAULT '',
		created_at   timestamptz NOT NULL,
		updated_at   timestamptz NOT NULL,
		version      bigint      NOT NULL,
		PRIMARY KEY (tenant_id, document_id)
	);
	CREATE INDEX documents_page ON `+docs+` (tenant_id, created_at, document_id);
	CREATE TABLE `+chunks+` (
		tenant_id   uuid    NOT NULL,
		document_id uuid    NOT NULL,
		upload_id   uuid    NOT NULL,
		chunk_id    uuid    NOT NULL,
		ordinal     integer NOT NULL,
		title       text    NOT NULL,
		heading     text    NOT NULL,
		text        text    NOT NULL,
		embedder    text    NOT NULL,
		embedding   public.vector NOT NULL,
		tsv         tsvector GENERATED ALWAYS AS (
			setweight(to_tsvector('english', title || ' ' || heading), 'A') || to_tsvector('english', text)) STORED,
		PRIMARY KEY (tenant_id, chunk_id)
	);
	CREATE INDEX knowledge_chunks_document ON `+chunks+` (tenant_id, document_id);
	CREATE INDEX knowledge_chunks_tsv ON `+chunks+` USING gin (tsv)`); err != nil {
		return fmt.Errorf("create knowledge tables: %w", err)
	}
	// HNSW needs the vector's dimension in the column type, which comes from the embedder: the
	// DDL is formatted by Postgres from transaction settings, so no SQL is built from values here.
	if _, err := tx.Exec(ctx, `SELECT set_config('metachat.knowledge_chunks', $1, true),
		set_config('metachat.embedding_dims', $2, true)`, chunks, strconv.Itoa(dims)); err != nil {
		return fmt.Errorf("set embedding dimensions: %w", err)
	}
	if _, err := tx.Exec(ctx, `DO $$ BEGIN
		EXECUTE format('ALTER TABLE %s ALTER COLUMN embedding TYPE public.vector(%s)',
			current_setting('metachat.knowledge_chunks'), current_setting('metachat.embedding_dims')::integer);
	END $$`); err != nil {
		return fmt.Errorf("set embedding dimensions: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE INDEX knowledge_chunks_embedding ON `+chunks+` USING hnsw (embedding public.vector_cosine_ops)`); err != nil {
		return fmt.Errorf("create HNSW index: %w", err)
	}
	// The full-text index that row-level security lets Postgres use: under RLS Postgres may not
	// use the GIN index for tsv @@ query (ts_match_vq is not leakproof), but it may use btrees on
	// text, uuid and real (their operators are). knowledge_terms has one row per (lexeme, chunk)
	// with the lexeme's BM25 term weight in the chunk (its impact, see termImpact), indexed by
	// (tenant, lexeme, impact descending) so that search reads each query lexeme's best chunks
	// first and no more than it needs; knowledge_lexemes has each lexeme's document frequency
	// and knowledge_stats each tenant's chunk count, for the lexemes' inverse document frequency.
	terms := pgx.Identifier{schema, "knowledge_terms"}.Sanitize()
	lexemes := pgx.Identifier{schema, "knowledge_lexemes"}.Sanitize()
	stats := pgx.Identifier{schema, "knowledge_stats"}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE TABLE `+terms+` (
		tenant_id uuid NOT NULL,
		lexeme    text NOT NULL,
		impact    real NOT NULL,
		chunk_id  uuid NOT NULL
	);
	CREATE UNIQUE INDEX knowledge_terms_impact ON `+terms+` (tenant_id, lexeme, impact DESC, chunk_id);
	CREATE TABLE `+lexemes+` (
		tenant_id uuid    NOT NULL,
		lexeme    text    NOT NULL,
		df        integer NOT NULL,
		PRIMARY KEY (tenant_id, lexeme)
	);
	CREATE TABLE `+stats+` (
		tenant_id uuid   NOT NULL PRIMARY KEY,
		chunks    bigint NOT NULL
	)`); err != nil {
		return fmt.Errorf("create knowledge terms: %w", err)
	}
	for _, t := range []string{"documents", "knowledge_chunks", "knowledge_terms", "knowledge_lexemes", "knowledge_stats"} {
		if err := EnableTenantRLS(ctx, tx, schema, t); err != nil {
			return err
		}
	}
	return nil
}

// Apply implements Projection.
func (p *KnowledgeProjection) Apply(ctx context.Context, tx pgx.Tx, schema string, env domain.Envelope) error {
	if env.AggregateType != domain.DocumentAggregate {
		return nil
	}
	ev, err := p.reg.Decode(env)
	if err != nil {
		return fmt.Errorf("decode %s: %w", env.Type, err)
	}
	docs := pgx.Identifier{schema, "documents"}.Sanitize()
	seq := int64(env.Sequence)
	switch e := ev.(type) {
	case *domain.DocumentUploaded:
		at := eventTime(e.UploadedAt, env)
		if err := deleteChunks(ctx, tx, schema, env); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+docs+` (tenant_id, document_id, upload_id, title, filename, content_type,
				format, size, sha256, status, chunk_count, error, created_at, updated_at, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, '', $11, $11, $12)
			ON CONFLICT (tenant_id, document_id) DO UPDATE SET upload_id = excluded.upload_id, title = excluded.title,
				filename = excluded.filename, content_type = excluded.content_type, format = excluded.format,
				size = excluded.size, status = excluded.status, chunk_count = 0, error = '',
				created_at = excluded.created_at, updated_at = excluded.updated_at, version = excluded.version`,
			env.TenantID, env.AggregateID, e.UploadID, e.Title, e.Filename, e.ContentType, e.Format, e.Size, e.SHA256,
			domain.DocumentStatusProcessing, at, seq); err != nil {
			return fmt.Errorf("insert document %s: %w", env.AggregateID, err)
		}
	case *domain.DocumentChunked:
		return p.applyChunks(ctx, tx, schema, env, e)
	case *domain.DocumentIndexed:
		tag, err := tx.Exec(ctx, `UPDATE `+docs+` SET status = $3, chunk_count = $4, error = '', updated_at = $5, version = $6
			WHERE tenant_id = $1 AND document_id = $2`,
			env.TenantID, env.AggregateID, domain.DocumentStatusReady, e.ChunkCount, eventTime(e.IndexedAt, env), seq)
		return checkDocumentUpdate(env, tag, err)
	case *domain.DocumentFailed:
		tag, err := tx.Exec(ctx, `UPDATE `+docs+` SET status = $3, error = $4, updated_at = $5, version = $6
			WHERE tenant_id = $1 AND document_id = $2`,
			env.TenantID, env.AggregateID, domain.DocumentStatusFailed, e.Reason, eventTime(e.FailedAt, env), seq)
		return checkDocumentUpdate(env, tag, err)
	case *domain.DocumentDeleted:
		if err := deleteChunks(ctx, tx, schema, env); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM `+docs+` WHERE tenant_id = $1 AND document_id = $2`, env.TenantID, env.AggregateID); err != nil {
			return fmt.Errorf("delete document %s: %w", env.AggregateID, err)
		}
	}
	return nil
}

// checkDocumentUpdate checks that an UPDATE of the event's document changed its one row: a
// document the table lacks means the stream and the read model disagree.
func checkDocumentUpdate(env domain.Envelope, tag pgconn.CommandTag, err error) error {
	if err != nil {
		return fmt.Errorf("update document %s: %w", env.AggregateID, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%s for unknown document %s of tenant %s", env.Type, env.AggregateID, env.TenantID)
	}
	return nil
}

func (p *KnowledgeProjection) applyChunks(ctx context.Context, tx pgx.Tx, schema string, env domain.Envelope, e *domain.DocumentChunked) error {
	docs := pgx.Identifier{schema, "documents"}.Sanitize()
	chunks := pgx.Identifier{schema, "knowledge_chunks"}.Sanitize()
	var title, uploadID string
	err := tx.QueryRow(ctx, `SELECT title, upload_id::text FROM `+docs+` WHERE tenant_id = $1 AND document_id = $2`,
		env.TenantID, env.AggregateID).Scan(&title, &uploadID)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("document.chunked for unknown document %s of tenant %s", env.AggregateID, env.TenantID)
	}
	if err != nil {
		return fmt.Errorf("read document %s: %w", env.AggregateID, err)
	}
	if uploadID != e.UploadID || len(e.Chunks) == 0 {
		return nil
	}
	texts := make([]string, len(e.Chunks))
	for i, c := range e.Chunks {
		texts[i] = EmbeddingText(title, c.Heading, c.Text)
	}
	vecs, err := CachedEmbed(ctx, tx, p.emb, texts)
	if err != nil {
		return err
	}
	n := len(e.Chunks)
	ids, ords, headings, bodies, lits := make([]string, n), make([]int32, n), make([]string, n), make([]string, n), make([]string, n)
	for i, c := range e.Chunks {
		ids[i], ords[i], headings[i], bodies[i], lits[i] = c.ChunkID, int32(c.Ordinal), c.Heading, c.Text, VectorLiteral(vecs[i])
	}
	var inserted []string
	rows, err := tx.Query(ctx, `INSERT INTO `+chunks+` (tenant_id, document_id, upload_id, chunk_id, ordinal, title, heading, text, embedder, embedding)
		SELECT $1, $2, $3, u.id, u.ord, $4, u.heading, u.body, $5, u.lit::public.vector
		FROM unnest($6::uuid[], $7::int[], $8::text[], $9::text[], $10::text[]) AS u(id, ord, heading, body, lit)
		ON CONFLICT (tenant_id, chunk_id) DO NOTHING
		RETURNING chunk_id::text`,
		env.TenantID, env.AggregateID, e.UploadID, title, p.emb.Name(), ids, ords, headings, bodies, lits)
	if err == nil {
		inserted, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return fmt.Errorf("insert chunks of %s: %w", env.AggregateID, err)
	}
	return addTerms(ctx, tx, schema, env.TenantID, inserted, 1)
}

// BM25's parameters (Robertson and Zaragoza's usual values), and the chunk length, in weighted
// lexeme occurrences, that length normalisation takes as average: chunks are filled to a bounded
// size (1,200 bytes, 100-150 occurrences when full), so a fixed reference stands in for the
// corpus average, and a chunk's impacts do not change when other chunks are added.
const (
	bm25K1        = 1.2
	bm25B         = 0.75
	bm25RefLength = 100
	// bm25TitleBoost is how many occurrences one in the title or heading (weight A) counts as.
	bm25TitleBoost = 3
)

// termImpactsSQL selects (chunk_id, lexeme, impact) for the chunks of tenant $1 whose ids are in
// $2: each lexeme's BM25 term weight in the chunk without the IDF factor, tf·(k1+1) / (tf +
// k1·(1−b+b·len/ref)), where tf counts the lexeme's occurrences (title and heading ones
// bm25TitleBoost times) and len is the sum of the chunk's tf. The same SQL computes the
// impacts to insert and the rows to delete, so the stored values are found again exactly.
func termImpactsSQL(chunks string) string {
	return `SELECT chunk_id, lexeme, (tf * ` + strconv.FormatFloat(bm25K1+1, 'f', -1, 64) + ` / (tf + ` +
		strconv.FormatFloat(bm25K1, 'f', -1, 64) + ` * (` + strconv.FormatFloat(1-bm25B, 'f', -1, 64) + ` + ` +
		strconv.FormatFloat(bm25B, 'f', -1, 64) + ` * len / ` + strconv.Itoa(bm25RefLength) + `)))::real AS impact
		FROM (SELECT chunk_id, lexeme, tf, sum(tf) OVER (PARTITION BY chunk_id) AS len
			FROM (SELECT c.chunk_id, u.lexeme, (cardinality(u.positions) +
					` + strconv.Itoa(bm25TitleBoost-1) + ` * cardinality(array_positions(u.weights, 'A')))::float8 AS tf
				FROM ` + chunks + ` c, unnest(c.tsv) AS u
				WHERE c.tenant_id = $1 AND c.chunk_id = ANY ($2::uuid[])) AS occurrences) AS counted`
}

// addTerms adds (sign 1) or removes (sign −1) the chunks' rows of knowledge_terms and counts
// them in knowledge_lexemes and knowledge_stats. The chunks must be in knowledge_chunks. A lexeme
// whose last chunk goes keeps its row with df 0: it has no terms rows, so search never uses it.
func addTerms(ctx context.Context, tx pgx.Tx, schema, tenantID string, chunkIDs []string, sign int) error {
	if len(chunkIDs) == 0 {
		return nil
	}
	chunks := pgx.Identifier{schema, "knowledge_chunks"}.Sanitize()
	terms := pgx.Identifier{schema, "knowledge_terms"}.Sanitize()
	lexemes := pgx.Identifier{schema, "knowledge_lexemes"}.Sanitize()
	stats := pgx.Identifier{schema, "knowledge_stats"}.Sanitize()
	change := `INSERT INTO ` + terms + ` (tenant_id, lexeme, impact, chunk_id)
			SELECT $1, lexeme, impact, chunk_id FROM (` + termImpactsSQL(chunks) + `) AS i
			RETURNING lexeme`
	if sign < 0 {
		change = `DELETE FROM ` + terms + ` t USING (` + termImpactsSQL(chunks) + `) AS i
			WHERE t.tenant_id = $1 AND t.lexeme = i.lexeme AND t.impact = i.impact AND t.chunk_id = i.chunk_id
			RETURNING t.lexeme`
	}
	if _, err := tx.Exec(ctx, `WITH changed AS (`+change+`)
		INSERT INTO `+lexemes+` AS l (tenant_id, lexeme, df)
		SELECT $1, lexeme, $3 * count(*) FROM changed GROUP BY lexeme ORDER BY lexeme
		ON CONFLICT (tenant_id, lexeme) DO UPDATE SET df = l.df + excluded.df`, tenantID, chunkIDs, sign); err != nil {
		return fmt.Errorf("index terms: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+stats+` AS s (tenant_id, chunks) VALUES ($1, $2)
		ON CONFLICT (tenant_id) DO UPDATE SET chunks = s.chunks + excluded.chunks`, tenantID, sign*len(chunkIDs)); err != nil {
		return fmt.Errorf("count chunks: %w", err)
	}
	return nil
}

// deleteChunks removes the event's document's chunks and their terms.
func deleteChunks(ctx context.Context, tx pgx.Tx, schema string, env domain.Envelope) error {
	chunks := pgx.Identifier{schema, "knowledge_chunks"}.Sanitize()
	rows, err := tx.Query(ctx, `SELECT chunk_id::text FROM `+chunks+` WHERE tenant_id = $1 AND document_id = $2`,
		env.TenantID, env.AggregateID)
	var ids []string
	if err == nil {
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return fmt.Errorf("read chunks of %s: %w", env.AggregateID, err)
	}
	if err := addTerms(ctx, tx, schema, env.TenantID, ids, -1); err != nil {
		return fmt.Errorf("delete terms of %s: %w", env.AggregateID, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM `+chunks+` WHERE tenant_id = $1 AND document_id = $2`, env.TenantID, env.AggregateID); err != nil {
		return fmt.Errorf("delete chunks of %s: %w", env.AggregateID, err)
	}
	return nil
}

// EmbeddingText is the text a chunk is embedded as: its document's title and heading give the
// passage its context.
func EmbeddingText(title, heading, text string) string {
	s := title
	if heading != "" {
		s += "\n" + heading
	}
	return s + "\n" + text
}

// CachedEmbed embeds texts with emb, taking the embeddings public.embedding_cache already has
// (by embedder name and sha256 of the text) and adding the ones it computes. db must be allowed
// the cache (the projector role).
func CachedEmbed(ctx context.Context, db pgx.Tx, emb Embedder, texts []string) ([][]float32, error) {
	hashes := make([][]byte, len(texts))
	for i, t := range texts {
		h := sha256.Sum256([]byte(t))
		hashes[i] = h[:]
	}
	out := make([][]float32, len(texts))
	rows, err := db.Query(ctx, `SELECT text_sha256, embedding::text FROM public.embedding_cache
		WHERE embedder = $1 AND text_sha256 = ANY($2)`, emb.Name(), hashes)
	if err != nil {
		return nil, fmt.Errorf("read embedding cache: %w", err)
	}
	cached := map[string][]float32{}
	for rows.Next() {
		var h []byte
		var lit string
		if err := rows.Scan(&h, &lit); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read embedding cache: %w", err)
		}
		v, err := ParseVector(lit)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("parse cached embedding: %w", err)
		}
		cached[string(h)] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read embedding cache: %w", err)
	}
	var missing []int
	for i, h := range hashes {
		if v, ok := cached[string(h)]; ok && len(v) == emb.Dimensions() {
			out[i] = v
		} else {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	todo := make([]string, len(missing))
	for j, i := range missing {
		todo[j] = texts[i]
	}
	vecs, err := emb.Embed(ctx, todo)
	if err != nil {
		return nil, fmt.Errorf("embed %d texts with %s: %w", len(todo), emb.Name(), err)
	}
	if len(vecs) != len(todo) {
		return nil, fmt.Errorf("embedder %s returned %d vectors for %d texts", emb.Name(), len(vecs), len(todo))
	}
	newHashes, lits := make([][]byte, len(missing)), make([]string, len(missing))
	for j, i := range missing {
		if len(vecs[j]) != emb.Dimensions() {
			return nil, fmt.Errorf("embedder %s returned %d dimensions, want %d", emb.Name(), len(vecs[j]), emb.Dimensions())
		}
		out[i], newHashes[j], lits[j] = vecs[j], hashes[i], VectorLiteral(vecs[j])
	}
	if _, err := db.Exec(ctx, `INSERT INTO public.embedding_cache (embedder, text_sha256, embedding)
		SELECT $1, u.h, u.lit::public.vector FROM unnest($2::bytea[], $3::text[]) AS u(h, lit)
		ON CONFLICT DO NOTHING`, emb.Name(), newHashes, lits); err != nil {
		return nil, fmt.Errorf("write embedding cache: %w", err)
	}
	return out, nil
}
