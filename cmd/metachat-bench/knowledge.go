package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

//go:embed testdata/knowledge_eval.json
var knowledgeEvalJSON []byte

// knowledgeEval is the retrieval evaluation: documents, and questions with the document that
// answers each.
type knowledgeEval struct {
	Documents []struct {
		File string `json:"file"`
		Text string `json:"text"`
	} `json:"documents"`
	Questions []struct {
		Q      string `json:"q"`
		Expect string `json:"expect"`
	} `json:"questions"`
}

// benchKnowledge measures the knowledge base with the local embedder: recall@5 and MRR of the
// evaluation in testdata, search latency at o.knowledgeChunks chunks (the evaluation's documents
// among generated distractors, knowledge_corpus.go, all in one tenant), and the indexing
// throughput, through upload, pipeline and projection, of the first step; later steps are loaded
// in bulk (bulkLoad).
func benchKnowledge(ctx context.Context, t *table, o options, logger *slog.Logger) error {
	var eval knowledgeEval
	if err := json.Unmarshal(knowledgeEvalJSON, &eval); err != nil {
		return fmt.Errorf("evaluation data: %w", err)
	}
	w, err := startKnowledgeWorld(ctx, logger)
	if err != nil {
		return err
	}
	defer w.close()
	p := domain.Principal{TenantID: uuid.NewString(), UserID: uuid.NewString(), Role: domain.RoleOwner}
	ids := map[string]string{}
	for _, d := range eval.Documents {
		doc, _, err := w.k.Upload(ctx, p, app.UploadInput{Filename: d.File, Data: []byte(d.Text)})
		if err != nil {
			return fmt.Errorf("upload %s: %w", d.File, err)
		}
		ids[doc.ID] = d.File
	}
	if _, err := w.waitReady(ctx, p, len(eval.Documents)); err != nil {
		return err
	}
	t.header("Knowledge: retrieval (local lexical embedder, hybrid search, RRF k=60)")
	t.row("chunks in tenant", "recall@5", "MRR", "search P50", "search P95", "queries")
	measure := func(chunks int) error {
		recall, mrr, err := w.evaluate(ctx, p, eval, ids)
		if err != nil {
			return err
		}
		// Fresh statistics and visibility maps, as autovacuum keeps them in production (it also
		// vacuums tables that only grow): without them the planner takes a tenant that grew from 20
		// to 100,000 chunks for a small one, and index-only scans visit the heap.
		if _, err := w.owner.Exec(ctx, "VACUUM ANALYZE"); err != nil {
			return err
		}
		lat, err := w.latency(ctx, p, eval, 300)
		if err != nil {
			return err
		}
		t.row(fmt.Sprint(chunks), fmt.Sprintf("%.2f", recall), fmt.Sprintf("%.2f", mrr), ms(lat.pct(50)), ms(lat.pct(95)), fmt.Sprint(len(lat)))
		return nil
	}
	total, err := w.chunkCount(ctx, p)
	if err != nil {
		return err
	}
	if err := measure(total); err != nil {
		return err
	}
	var rates []string
	corpus := newDistractorCorpus(1)
	docs := len(eval.Documents)
	for i, target := range o.knowledgeChunks {
		if target <= total {
			continue
		}
		before := total
		start := time.Now()
		if i == 0 {
			// The first step goes the way documents go: upload, pipeline (extract, chunk), projection
			// (embed, insert with HNSW, GIN and the BM25 tables). Its rate is the indexing throughput.
			n := 0
			for total+n*syntheticChunksPerDoc < target {
				title, text := corpus.document()
				if _, _, err := w.k.Upload(ctx, p, app.UploadInput{Filename: fmt.Sprintf("distractor-%d.md", n), Title: title,
					Data: []byte(text)}); err != nil {
					return fmt.Errorf("upload distractor document: %w", err)
				}
				n++
			}
			docs += n
			if total, err = w.waitReady(ctx, p, docs); err != nil {
				return err
			}
			d := time.Since(start)
			rates = append(rates, fmt.Sprintf("%d chunks in %s: %.0f chunks/s (upload, extract, chunk, embed, insert with HNSW, GIN and BM25 terms)",
				total-before, d.Round(time.Millisecond), rate(total-before, d)))
		} else {
			// Later steps only make the tenant bigger: the projection's Apply inserts the documents
			// straight into its tables, with the indexes built again once they are all in (see
			// bulkLoad); this is not an indexing rate.
			added, err := w.bulkLoad(ctx, p.TenantID, corpus, target-total)
			if err != nil {
				return err
			}
			if total, err = w.chunkCount(ctx, p); err != nil {
				return err
			}
			d := time.Since(start)
			rates = append(rates, fmt.Sprintf("bulk load of %d chunks in %s: %.0f chunks/s (the projection's Apply without the pipeline, indexes built afterwards; not the indexing rate)",
				added, d.Round(time.Millisecond), rate(added, d)))
		}
		if err := measure(total); err != nil {
			return err
		}
	}
	for _, r := range rates {
		t.row("indexing: " + r)
	}
	return nil
}

// syntheticChunksPerDoc is about how many chunks a synthetic document makes.
const syntheticChunksPerDoc = 50

type knowledgeWorld struct {
	*benchStack
	k         *app.Knowledge
	db        projections.Beginner
	owner     *pgxpool.Pool
	projector *pgxpool.Pool
	reg       *domain.Registry
	proj      *projections.KnowledgeProjection
}

func startKnowledgeWorld(ctx context.Context, logger *slog.Logger) (_ *knowledgeWorld, err error) {
	reg := domain.NewDefaultRegistry()
	emb := projections.NewLocalEmbedder()
	proj := projections.NewKnowledgeProjection(reg, emb)
	s, err := startBenchStack(ctx, logger, []projections.Projection{proj}, 0)
	if err != nil {
		return nil, err
	}
	w := &knowledgeWorld{benchStack: s, db: s.pools.App, owner: s.pools.Owner, projector: s.pools.Projector, reg: reg, proj: proj}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	waiter, err := projections.NewWaiter(projections.WaiterConfig{Pool: s.pools.App, Logger: logger})
	if err != nil {
		return nil, err
	}
	objects, err := s.store.NewObjects(ctx, "bench_documents", 0)
	if err != nil {
		return nil, err
	}
	if w.k, err = app.NewKnowledge(app.KnowledgeConfig{Store: s.store, Registry: reg, DB: s.pools.App, Waiter: waiter,
		Objects: objects, Worker: s.store, Embedder: emb, Logger: logger}); err != nil {
		return nil, err
	}
	s.runInBackground(s.mgr.Run, waiter.Run, w.k.RunPipeline)
	return w, nil
}

// bulkLoad adds about n chunks of distractor documents to the tenant straight through the
// knowledge projection's Apply (as a rebuild replays document.uploaded, document.chunked and
// document.indexed), chunked by the pipeline's ChunkText, without the event store or the
// pipeline. The indexes that inserting maintains row by row (HNSW, GIN, lexeme impacts) are
// dropped while they go in and built again afterwards, which is much faster; the tables end up as
// the projection makes them (the indexes more compactly packed). It returns the number of chunks
// added.
func (w *knowledgeWorld) bulkLoad(ctx context.Context, tenantID string, corpus *distractorCorpus, n int) (int, error) {
	schema, err := w.activeSchema(ctx)
	if err != nil {
		return 0, err
	}
	// The indexes that inserting keeps up to date row by row: the HNSW index, the GIN index and
	// the lexemes' impact index. They are built again once the rows are in.
	rows, err := w.owner.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1
		AND indexname IN ('knowledge_chunks_embedding', 'knowledge_chunks_tsv', 'knowledge_terms_impact')`, schema)
	if err != nil {
		return 0, fmt.Errorf("read index definitions: %w", err)
	}
	var names, defs []string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			rows.Close()
			return 0, err
		}
		names, defs = append(names, name), append(defs, def)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, name := range names {
		if _, err := w.owner.Exec(ctx, "DROP INDEX "+pgx.Identifier{schema, name}.Sanitize()); err != nil {
			return 0, fmt.Errorf("drop index %s: %w", name, err)
		}
	}
	// The sequence numbers of the bulk documents' envelopes: only the rows' version column keeps them.
	var seq uint64 = 1 << 40
	added := 0
	for added < n {
		err := pgx.BeginFunc(ctx, w.projector, func(tx pgx.Tx) error {
			for i := 0; i < 20 && added < n; i++ {
				title, text := corpus.document()
				docID, upload := uuid.NewString(), uuid.NewString()
				parts := app.ChunkText(text)
				chunks := make([]domain.Chunk, len(parts))
				for j, part := range parts {
					chunks[j] = domain.Chunk{ChunkID: uuid.NewString(), Ordinal: j, Heading: part.Heading, Text: part.Text}
				}
				now := time.Now()
				for _, e := range []domain.Event{
					&domain.DocumentUploaded{DocumentID: docID, UploadID: upload, Title: title, Filename: title + ".md",
						ContentType: "text/markdown", Format: "markdown", Size: int64(len(text)), SHA256: "bulk", Object: "bulk", UploadedAt: now},
					&domain.DocumentChunked{UploadID: upload, Chunks: chunks},
					&domain.DocumentIndexed{UploadID: upload, ChunkCount: len(chunks), Extractor: app.ExtractorName, IndexedAt: now},
				} {
					typ, ver, payload, err := w.reg.Encode(e)
					if err != nil {
						return err
					}
					seq++
					env := domain.Envelope{ID: uuid.NewString(), Type: typ, SchemaVersion: ver, TenantID: tenantID,
						AggregateType: domain.DocumentAggregate, AggregateID: docID, OccurredAt: now, Payload: payload, Sequence: seq}
					if err := w.proj.Apply(ctx, tx, schema, env); err != nil {
						return err
					}
				}
				added += len(chunks)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("bulk load: %w", err)
		}
	}
	conn, err := w.owner.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET maintenance_work_mem = '1GB'"); err != nil {
		return 0, err
	}
	for _, def := range defs {
		if _, err := conn.Exec(ctx, def); err != nil {
			return 0, fmt.Errorf("build index: %w", err)
		}
	}
	if _, err := conn.Exec(ctx, "RESET maintenance_work_mem"); err != nil {
		return 0, err
	}
	return added, nil
}

// activeSchema is the schema of the knowledge projection's active generation.
func (w *knowledgeWorld) activeSchema(ctx context.Context) (string, error) {
	var gen int
	if err := w.owner.QueryRow(ctx, `SELECT generation FROM public.projection_generations WHERE projection = $1 AND state = 'active'`,
		projections.KnowledgeReadModel).Scan(&gen); err != nil {
		return "", fmt.Errorf("active knowledge generation: %w", err)
	}
	return projections.SchemaName(projections.KnowledgeReadModel, gen), nil
}

// waitReady waits until the tenant has n documents, none processing, and returns the chunk count.
func (w *knowledgeWorld) waitReady(ctx context.Context, p domain.Principal, n int) (int, error) {
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		var ready, processing, chunks int
		cursor := ""
		for {
			page, err := w.k.ListDocuments(ctx, p, 200, cursor)
			if err != nil {
				return 0, err
			}
			for _, d := range page.Items {
				switch d.Status {
				case domain.DocumentStatusReady:
					ready++
					chunks += d.ChunkCount
				case domain.DocumentStatusProcessing:
					processing++
				default:
					return 0, fmt.Errorf("document %s: %s %s", d.Filename, d.Status, d.Error)
				}
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		if ready >= n && processing == 0 {
			return chunks, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, fmt.Errorf("documents not ready after 30 minutes")
}

func (w *knowledgeWorld) chunkCount(ctx context.Context, p domain.Principal) (int, error) {
	return w.waitReady(ctx, p, 0)
}

// evaluate returns recall@5 (the expected document among the top 5 results' documents) and the
// mean reciprocal rank of the expected document (0 when absent from the top 5).
func (w *knowledgeWorld) evaluate(ctx context.Context, p domain.Principal, eval knowledgeEval, ids map[string]string) (float64, float64, error) {
	var hits, rr float64
	for _, q := range eval.Questions {
		res, err := w.k.Search(ctx, p, q.Q, 5)
		if err != nil {
			return 0, 0, err
		}
		for i, h := range res {
			if ids[h.DocumentID] == q.Expect {
				hits++
				rr += 1 / float64(i+1)
				break
			}
		}
	}
	n := float64(len(eval.Questions))
	return hits / n, rr / n, nil
}

// latency runs n searches (the evaluation's questions in turn) one at a time.
func (w *knowledgeWorld) latency(ctx context.Context, p domain.Principal, eval knowledgeEval, n int) (latencies, error) {
	out := make(latencies, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := w.k.Search(ctx, p, eval.Questions[i%len(eval.Questions)].Q, 5); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}
