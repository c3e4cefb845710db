package projections_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// knowledgeWorld is the knowledge projection's generation 1 in a fresh database, fed by applying
// document events directly (the runner is tested elsewhere).
type knowledgeWorld struct {
	h      *harness
	proj   *projections.KnowledgeProjection
	emb    projections.Embedder
	reader *projections.Knowledge
	schema string
	seq    uint64
}

func newKnowledgeWorld(t *testing.T) *knowledgeWorld {
	t.Helper()
	h := newHarness(t)
	emb := projections.NewLocalEmbedder()
	w := &knowledgeWorld{h: h, proj: projections.NewKnowledgeProjection(h.reg, emb), emb: emb,
		reader: projections.NewKnowledge(h.pools.App), schema: projections.SchemaName(projections.KnowledgeReadModel, 1)}
	if err := h.manager(t, w.proj).Ensure(t.Context()); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	return w
}

// apply applies events of one document of tenant in one transaction, as the runner would.
func (w *knowledgeWorld) apply(t *testing.T, tenantID, documentID string, events ...domain.Event) {
	t.Helper()
	err := pgx.BeginFunc(t.Context(), w.h.pools.Projector, func(tx pgx.Tx) error {
		for _, e := range events {
			typ, ver, payload, err := w.h.reg.Encode(e)
			if err != nil {
				return err
			}
			w.seq++
			env := domain.Envelope{ID: uuid.NewString(), Type: typ, SchemaVersion: ver, TenantID: tenantID,
				AggregateType: domain.DocumentAggregate, AggregateID: documentID, OccurredAt: time.Now(), Payload: payload,
				Sequence: w.seq}
			if err := w.proj.Apply(t.Context(), tx, w.schema, env); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// upload records a document whose chunks are texts, ready.
func (w *knowledgeWorld) upload(t *testing.T, tenantID, title string, texts ...string) string {
	t.Helper()
	docID, upload := uuid.NewString(), uuid.NewString()
	chunks := make([]domain.Chunk, len(texts))
	for i, text := range texts {
		chunks[i] = domain.Chunk{ChunkID: uuid.NewString(), Ordinal: i, Text: text}
	}
	now := time.Now()
	w.apply(t, tenantID, docID,
		&domain.DocumentUploaded{DocumentID: docID, UploadID: upload, Title: title, Filename: title + ".md",
			ContentType: "text/markdown", Format: "markdown", Size: 1, SHA256: "x", Object: "x", UploadedAt: now},
		&domain.DocumentChunked{UploadID: upload, Chunks: chunks},
		&domain.DocumentIndexed{UploadID: upload, ChunkCount: len(chunks), Extractor: "test", IndexedAt: now})
	return docID
}

func (w *knowledgeWorld) search(t *testing.T, tenantID, q string, k, postings int) []projections.ChunkHit {
	t.Helper()
	vecs, err := w.emb.Embed(t.Context(), []string{q})
	if err != nil {
		t.Fatal(err)
	}
	hits, err := w.reader.Search(t.Context(), tenantID, projections.SearchQuery{Text: q, Vector: vecs[0],
		Embedder: w.emb.Name(), K: k, PostingsPerLexeme: postings})
	if err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	return hits
}

// counts returns how many rows of knowledge_terms, knowledge_lexemes with df > 0 and the chunk
// count of knowledge_stats the app role sees for tenantID.
func (w *knowledgeWorld) counts(t *testing.T, tenantID string) (terms, lexemes, chunks int) {
	t.Helper()
	err := projections.WithTenant(t.Context(), w.h.pools.App, tenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM public.knowledge_terms),
			(SELECT count(*) FROM public.knowledge_lexemes WHERE df > 0),
			(SELECT coalesce(sum(chunks), 0) FROM public.knowledge_stats)`).Scan(&terms, &lexemes, &chunks)
	})
	if err != nil {
		t.Fatalf("count terms: %v", err)
	}
	return terms, lexemes, chunks
}

// commonText is a passage of words every filler chunk shares.
func commonText(i int) string {
	return fmt.Sprintf("Orders are delivered by courier within days; the delivery status and the order number "+
		"are shown on the order page, and support answers questions about delivery and orders (note %d).", i)
}

// TestKnowledgeSearchPrunedPostingsStillFindRareTerms: full-text search reads at most
// PostingsPerLexeme chunks per query lexeme, those where it weighs most; a lexeme rarer than that
// is read whole, so the one chunk that has it is found among many that share the query's common
// words, and a query of common words alone still answers with at most K chunks.
func TestKnowledgeSearchPrunedPostingsStillFindRareTerms(t *testing.T) {
	w := newKnowledgeWorld(t)
	tenant := uuid.NewString()
	fillers := make([]string, 40)
	for i := range fillers {
		fillers[i] = commonText(i)
	}
	w.upload(t, tenant, "logistics", fillers...)
	needle := w.upload(t, tenant, "archive", "An order delivered to Zanzibar by courier takes longer: allow ten more days.")

	for _, postings := range []int{3, 1000} {
		hits := w.search(t, tenant, "order delivery courier Zanzibar", 5, postings)
		if len(hits) == 0 || hits[0].DocumentID != needle {
			t.Fatalf("postings %d: search found %+v first, want the Zanzibar chunk of %s", postings, hits, needle)
		}
		if hits[0].LexicalRank != 1 {
			t.Errorf("postings %d: the Zanzibar chunk has lexical rank %d, want 1", postings, hits[0].LexicalRank)
		}
	}
	hits := w.search(t, tenant, "order delivery", 5, 3)
	if len(hits) == 0 || len(hits) > 5 {
		t.Fatalf("common words: %d hits, want 1-5", len(hits))
	}
	// Lexical candidates come only from the posting lists read: 3 per lexeme, 2 lexemes.
	lexical := 0
	for _, h := range w.search(t, tenant, "order delivery", 50, 3) {
		if h.LexicalRank > 0 {
			lexical++
		}
	}
	if lexical == 0 || lexical > 6 {
		t.Errorf("common words with 3 postings per lexeme: %d lexical candidates, want 1-6", lexical)
	}
}

// TestKnowledgeSearchRanksByBM25: a chunk whose title has the query's word outranks one that
// mentions it once in passing, and a word that occurs in one chunk weighs more than one in all.
func TestKnowledgeSearchRanksByBM25(t *testing.T) {
	w := newKnowledgeWorld(t)
	tenant := uuid.NewString()
	passing := w.upload(t, tenant, "general", "Our shop sells many things; there is also a warranty, see below. "+
		strings.Repeat("Shoes, jackets and lamps are in stock in every store. ", 5))
	titled := w.upload(t, tenant, "warranty", "Every device is covered for two years against manufacturing defects.")
	if first := lexicalFirst(w.search(t, tenant, "warranty", 5, 0)); first != titled {
		t.Errorf("warranty: full-text ranks %s first, want %s (titled), not %s (in passing)", first, titled, passing)
	}
	rare := w.upload(t, tenant, "notes", "The stock of lamps is counted weekly by the inventory robot.")
	if first := lexicalFirst(w.search(t, tenant, "lamps stock robot", 5, 0)); first != rare {
		t.Errorf("lamps stock robot: full-text ranks %s first, want %s (the only chunk with robot)", first, rare)
	}
}

// lexicalFirst returns the document of the hit full-text search ranked first.
func lexicalFirst(hits []projections.ChunkHit) string {
	for _, h := range hits {
		if h.LexicalRank == 1 {
			return h.DocumentID
		}
	}
	return ""
}

// TestKnowledgeTermsFollowDocumentsAndTenants: the BM25 tables follow uploads, re-uploads and
// deletes, and row-level security confines them (and search) to their tenant.
func TestKnowledgeTermsFollowDocumentsAndTenants(t *testing.T) {
	w := newKnowledgeWorld(t)
	a, b := uuid.NewString(), uuid.NewString()
	doc := w.upload(t, a, "refunds", "We refund purchases within thirty days.", "Gift cards cannot be refunded.")
	terms, lexemes, chunks := w.counts(t, a)
	if terms == 0 || lexemes == 0 || chunks != 2 {
		t.Fatalf("tenant A after upload: %d terms, %d lexemes, %d chunks; want some, some, 2", terms, lexemes, chunks)
	}
	if bt, bl, bc := w.counts(t, b); bt != 0 || bl != 0 || bc != 0 {
		t.Errorf("tenant B sees %d terms, %d lexemes, %d chunks of A; want none", bt, bl, bc)
	}
	if hits := w.search(t, b, "refund purchases", 5, 0); len(hits) != 0 {
		t.Errorf("tenant B's search found A's %+v", hits)
	}
	w.upload(t, b, "refunds", "Refunds take thirty days.")
	if hits := w.search(t, a, "refund purchases", 5, 0); len(hits) == 0 || hits[0].DocumentID != doc {
		t.Errorf("tenant A's search: got %+v, want its own document %s first", hits, doc)
	}
	for _, h := range w.search(t, b, "refund", 5, 0) {
		if h.DocumentID == doc {
			t.Errorf("tenant B's search found A's chunk %s", h.ChunkID)
		}
	}

	// A new upload of the same document replaces its chunks and their terms.
	upload := uuid.NewString()
	now := time.Now()
	w.apply(t, a, doc,
		&domain.DocumentUploaded{DocumentID: doc, UploadID: upload, Title: "refunds", Filename: "refunds.md",
			ContentType: "text/markdown", Format: "markdown", Size: 1, SHA256: "y", Object: "y", UploadedAt: now},
		&domain.DocumentChunked{UploadID: upload, Chunks: []domain.Chunk{{ChunkID: uuid.NewString(), Text: "Refunds within fourteen days."}}},
		&domain.DocumentIndexed{UploadID: upload, ChunkCount: 1, Extractor: "test", IndexedAt: now})
	if _, _, chunks := w.counts(t, a); chunks != 1 {
		t.Errorf("tenant A after re-upload: %d chunks counted, want 1", chunks)
	}
	for _, h := range w.search(t, a, "gift cards", 5, 0) {
		if strings.Contains(h.Text, "Gift") || h.LexicalRank > 0 {
			t.Errorf("after re-upload, search found %+v; want no old chunk and no full-text match", h)
		}
	}

	w.apply(t, a, doc, &domain.DocumentDeleted{DeletedAt: time.Now()})
	if terms, lexemes, chunks := w.counts(t, a); terms != 0 || lexemes != 0 || chunks != 0 {
		t.Errorf("tenant A after delete: %d terms, %d lexemes, %d chunks; want none", terms, lexemes, chunks)
	}
	if bt, _, bc := w.counts(t, b); bt == 0 || bc != 1 {
		t.Errorf("tenant B after A's delete: %d terms, %d chunks; want its own", bt, bc)
	}
}

// TestKnowledgeVectorRankingIncludesFullTextCandidates: the vector ranking holds the HNSW
// neighbours and the full-text candidates, by exact cosine distance, best first, so a chunk that
// full-text search found and that is nearest to the query is its first, whatever the index
// returned.
func TestKnowledgeVectorRankingIncludesFullTextCandidates(t *testing.T) {
	w := newKnowledgeWorld(t)
	tenant := uuid.NewString()
	texts := make([]string, 30)
	for i := range texts {
		texts[i] = commonText(i)
	}
	w.upload(t, tenant, "logistics", texts...)
	needle := w.upload(t, tenant, "archive", "Parcels to Zanzibar travel by boat.")
	const q = "parcels to Zanzibar"
	qv := projections.LocalEmbed(q)
	cosine := func(text string) float64 {
		v := projections.LocalEmbed(text)
		var dot float64
		for i := range v {
			dot += float64(v[i]) * float64(qv[i])
		}
		return 1 - dot
	}
	hits, err := w.reader.Search(t.Context(), tenant, projections.SearchQuery{Text: q, Vector: qv, Embedder: w.emb.Name(),
		K: 50, Candidates: 10})
	if err != nil {
		t.Fatal(err)
	}
	byRank := map[int]projections.ChunkHit{}
	for _, h := range hits {
		if h.VectorRank == 0 {
			continue
		}
		byRank[h.VectorRank] = h
		want := cosine(projections.EmbeddingText(h.Title, h.Heading, h.Text))
		if diff := h.Distance - want; diff > 1e-4 || diff < -1e-4 {
			t.Errorf("chunk %s: distance %f, want the exact cosine distance %f", h.ChunkID, h.Distance, want)
		}
		if h.DocumentID == needle && h.VectorRank != 1 {
			t.Errorf("the Zanzibar chunk has vector rank %d, want 1", h.VectorRank)
		}
	}
	if len(byRank) != 10 {
		t.Fatalf("%d chunks in the vector ranking, want 10 (the candidates)", len(byRank))
	}
	for r := 2; r <= len(byRank); r++ {
		if byRank[r].Distance < byRank[r-1].Distance {
			t.Errorf("vector rank %d has distance %f, below rank %d's %f", r, byRank[r].Distance, r-1, byRank[r-1].Distance)
		}
	}
}
