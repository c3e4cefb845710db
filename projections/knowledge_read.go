package projections

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// RRFK is the constant of reciprocal rank fusion: a result's fused score is the sum over the
// rankings it appears in of 1/(RRFK + rank).
const RRFK = 60

// DocumentRow is one row of the documents read model.
type DocumentRow struct {
	TenantID    string
	ID          string
	UploadID    string
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
	// Version is the stream sequence of the document's last event.
	Version uint64
}

// ChunkHit is one search result.
type ChunkHit struct {
	DocumentID string
	ChunkID    string
	Title      string
	Heading    string
	Text       string
	// Score is the fused reciprocal-rank score; LexicalRank and VectorRank are the ranks (1-based,
	// 0: absent) in the two rankings, Distance the cosine distance when VectorRank > 0.
	Score       float64
	LexicalRank int
	VectorRank  int
	Distance    float64
}

// Knowledge reads the knowledge read model through the app pool.
type Knowledge struct {
	db Beginner
}

// NewKnowledge returns the knowledge reader on db (the app pool).
func NewKnowledge(db Beginner) *Knowledge { return &Knowledge{db: db} }

const documentColumns = `tenant_id::text, document_id::text, upload_id::text, title, filename, content_type, format,
	size, sha256, status, chunk_count, error, created_at, updated_at, version`

func scanDocument(row pgx.Row) (DocumentRow, error) {
	var d DocumentRow
	err := row.Scan(&d.TenantID, &d.ID, &d.UploadID, &d.Title, &d.Filename, &d.ContentType, &d.Format, &d.Size,
		&d.SHA256, &d.Status, &d.ChunkCount, &d.Error, &d.CreatedAt, &d.UpdatedAt, &d.Version)
	return d, err
}

// GetDocument returns one document of a tenant; a missing one, another tenant's, or an id that
// is not a UUID, is ENOTFOUND.
func (k *Knowledge) GetDocument(ctx context.Context, tenantID, documentID string) (DocumentRow, error) {
	return getOne(ctx, k.db, tenantID, documentID, "Document not found.", scanDocument,
		`SELECT `+documentColumns+` FROM public.documents WHERE tenant_id = $1 AND document_id = $2`, tenantID, documentID)
}

// ListDocuments returns at most limit documents of a tenant in the order of (created_at,
// document_id), after the given position when afterID is not empty.
func (k *Knowledge) ListDocuments(ctx context.Context, tenantID string, afterCreatedAt time.Time, afterID string, limit int) ([]DocumentRow, error) {
	var out []DocumentRow
	err := WithTenant(ctx, k.db, tenantID, func(tx pgx.Tx) error {
		var rows pgx.Rows
		var err error
		if afterID == "" {
			rows, err = tx.Query(ctx, `SELECT `+documentColumns+` FROM public.documents
				WHERE tenant_id = $1 ORDER BY created_at, document_id LIMIT $2`, tenantID, limit)
		} else {
			rows, err = tx.Query(ctx, `SELECT `+documentColumns+` FROM public.documents
				WHERE tenant_id = $1 AND (created_at, document_id) > ($2, $3::uuid)
				ORDER BY created_at, document_id LIMIT $4`, tenantID, afterCreatedAt, afterID, limit)
		}
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (DocumentRow, error) { return scanDocument(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list documents of %s: %w", tenantID, err)
	}
	return out, nil
}

// SearchQuery is one hybrid search.
type SearchQuery struct {
	// Text is the user's query, for full-text search (websearch_to_tsquery syntax).
	Text string
	// Vector is the query's embedding by Embedder (nil: full-text only).
	Vector   []float32
	Embedder string
	// K is the number of results; Candidates how many each ranking contributes (default 4K, at
	// least 40).
	K          int
	Candidates int
	// EfSearch is HNSW's candidate list size (default 100).
	EfSearch int
	// PostingsPerLexeme bounds how many chunks full-text search reads per query lexeme, those
	// where the lexeme weighs most (default DefaultPostingsPerLexeme).
	PostingsPerLexeme int
}

// DefaultPostingsPerLexeme is SearchQuery.PostingsPerLexeme's default.
const DefaultPostingsPerLexeme = 1000

// Search runs a hybrid search over a tenant's chunks and fuses its two rankings by reciprocal
// rank fusion (RRFK):
//
//   - full-text: the query's lexemes (to_tsvector('english')) are looked up in knowledge_terms,
//     reading each lexeme's chunks in descending BM25 impact, at most PostingsPerLexeme of them
//     (a rare lexeme is read whole; a lexeme in most chunks adds only its best ones, which is
//     what BM25's low IDF would make of the rest anyway), summed with the lexemes' IDF; chunks
//     that match the whole websearch_to_tsquery query (its AND, phrases and negations) come
//     first, ranked by ts_rank_cd, then the others by BM25. This bounds the work by the query,
//     not the tenant's size (ts_rank_cd ranks the bounded candidates only);
//   - vector: pgvector cosine distance over the HNSW index (iterative index scans, pgvector 0.8,
//     so the tenant filter cannot starve the results), with the full-text candidates added and
//     everything ranked by exact distance, so that a chunk the approximate index missed keeps
//     its place in this ranking when full-text search found it.
//
// Row-level security limits both to the tenant.
func (k *Knowledge) Search(ctx context.Context, tenantID string, q SearchQuery) ([]ChunkHit, error) {
	if q.K <= 0 {
		return nil, nil
	}
	if q.Candidates <= 0 {
		q.Candidates = max(4*q.K, 40)
	}
	if q.EfSearch <= 0 {
		q.EfSearch = 100
	}
	if q.PostingsPerLexeme <= 0 {
		q.PostingsPerLexeme = DefaultPostingsPerLexeme
	}
	hits := map[string]*ChunkHit{}
	err := WithTenant(ctx, k.db, tenantID, func(tx pgx.Tx) error {
		// BM25 over knowledge_terms (see KnowledgeProjection): each query lexeme's chunks in
		// descending impact, at most PostingsPerLexeme of them, summed with the lexemes' IDF.
		rows, err := tx.Query(ctx, `WITH words AS (
				SELECT l.lexeme, ln(1 + (s.chunks - l.df + 0.5) / (l.df + 0.5)) AS idf
				FROM public.knowledge_lexemes l JOIN public.knowledge_stats s ON s.tenant_id = $1
				WHERE l.tenant_id = $1 AND l.df > 0
					AND l.lexeme = ANY (tsvector_to_array(to_tsvector('english', $2)))),
			scored AS (
				SELECT p.chunk_id, sum(w.idf * p.impact) AS score
				FROM words w CROSS JOIN LATERAL (
					SELECT t.chunk_id, t.impact FROM public.knowledge_terms t
					WHERE t.tenant_id = $1 AND t.lexeme = w.lexeme
					ORDER BY t.impact DESC, t.chunk_id LIMIT $4) AS p
				GROUP BY p.chunk_id
				ORDER BY score DESC, p.chunk_id LIMIT $3)
			SELECT c.document_id::text, c.chunk_id::text, c.title, c.heading, c.text
			FROM scored JOIN public.knowledge_chunks c ON c.tenant_id = $1 AND c.chunk_id = scored.chunk_id,
				websearch_to_tsquery('english', $2) AS query
			ORDER BY c.tsv @@ query DESC, ts_rank_cd(c.tsv, query) DESC, scored.score DESC, c.chunk_id`, tenantID, q.Text, q.Candidates, q.PostingsPerLexeme)
		if err != nil {
			return fmt.Errorf("full-text search: %w", err)
		}
		rank := 0
		for rows.Next() {
			var h ChunkHit
			if err := rows.Scan(&h.DocumentID, &h.ChunkID, &h.Title, &h.Heading, &h.Text); err != nil {
				rows.Close()
				return err
			}
			rank++
			h.LexicalRank = rank
			hits[h.ChunkID] = &h
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("full-text search: %w", err)
		}
		if len(q.Vector) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),
			set_config('hnsw.ef_search', $1, true)`, fmt.Sprint(q.EfSearch)); err != nil {
			return fmt.Errorf("configure vector search: %w", err)
		}
		// The HNSW index's nearest chunks and the full-text candidates, ranked together by their
		// exact distance: HNSW is approximate, and a chunk it missed (an outlier in the vector
		// space, such as a short passage among long ones, can be hard to reach in its graph) still
		// gets its true place in the vector ranking when full-text search found it. relaxed_order
		// may return rows slightly out of order: the outer ORDER BY sorts them.
		lexical := make([]string, 0, len(hits))
		for id := range hits {
			lexical = append(lexical, id)
		}
		rows, err = tx.Query(ctx, `WITH nearest AS MATERIALIZED (
				SELECT chunk_id FROM public.knowledge_chunks
				WHERE tenant_id = $1 AND embedder = $3
				ORDER BY embedding <=> $2::public.vector LIMIT $4),
			pool AS (SELECT chunk_id FROM nearest UNION SELECT unnest($5::uuid[]))
			SELECT c.document_id::text, c.chunk_id::text, c.title, c.heading, c.text, c.embedding <=> $2::public.vector AS distance
			FROM pool JOIN public.knowledge_chunks c ON c.tenant_id = $1 AND c.chunk_id = pool.chunk_id
			WHERE c.embedder = $3
			ORDER BY distance, c.chunk_id LIMIT $4`,
			tenantID, VectorLiteral(q.Vector), q.Embedder, q.Candidates, lexical)
		if err != nil {
			return fmt.Errorf("vector search: %w", err)
		}
		defer rows.Close()
		rank = 0
		for rows.Next() {
			var h ChunkHit
			if err := rows.Scan(&h.DocumentID, &h.ChunkID, &h.Title, &h.Heading, &h.Text, &h.Distance); err != nil {
				return err
			}
			rank++
			if prev, ok := hits[h.ChunkID]; ok {
				prev.VectorRank, prev.Distance = rank, h.Distance
				continue
			}
			h.VectorRank = rank
			hits[h.ChunkID] = &h
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("search knowledge of %s: %w", tenantID, err)
	}
	out := make([]ChunkHit, 0, len(hits))
	for _, h := range hits {
		if h.LexicalRank > 0 {
			h.Score += 1 / float64(RRFK+h.LexicalRank)
		}
		if h.VectorRank > 0 {
			h.Score += 1 / float64(RRFK+h.VectorRank)
		}
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].ChunkID < out[j].ChunkID
	})
	if len(out) > q.K {
		out = out[:q.K]
	}
	return out, nil
}
