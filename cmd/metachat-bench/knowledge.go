package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/adapters/natsserver"
	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
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
// among synthetic ones, all in one tenant), and the pipeline's indexing throughput.
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
		// Fresh statistics, as autovacuum's analyze keeps them in production: without them the
		// planner takes a tenant that grew from 20 to 100,000 chunks for a small one.
		if _, err := w.owner.Exec(ctx, "ANALYZE"); err != nil {
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
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := syntheticVocabulary(rng, 5000)
	docs := len(eval.Documents)
	for _, target := range o.knowledgeChunks {
		if target <= total {
			continue
		}
		start := time.Now()
		before := total
		n := 0
		for total+n*syntheticChunksPerDoc < target {
			text := syntheticDocument(rng, vocab)
			if _, _, err := w.k.Upload(ctx, p, app.UploadInput{Filename: fmt.Sprintf("synthetic-%d.md", n), Data: []byte(text)}); err != nil {
				return fmt.Errorf("upload synthetic document: %w", err)
			}
			n++
		}
		docs += n
		if total, err = w.waitReady(ctx, p, docs); err != nil {
			return err
		}
		d := time.Since(start)
		rates = append(rates, fmt.Sprintf("%d chunks in %s: %.0f chunks/s (upload, extract, chunk, embed, insert with HNSW and GIN)",
			total-before, d.Round(time.Millisecond), rate(total-before, d)))
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

// syntheticVocabulary returns n made-up words.
func syntheticVocabulary(rng *rand.Rand, n int) []string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	out := make([]string, n)
	for i := range out {
		b := make([]byte, 4+rng.IntN(6))
		for j := range b {
			b[j] = letters[rng.IntN(len(letters))]
		}
		out[i] = string(b)
	}
	return out
}

// syntheticDocument is a Markdown document of about syntheticChunksPerDoc chunks of made-up
// words: distractors for the evaluation.
func syntheticDocument(rng *rand.Rand, vocab []string) string {
	var b strings.Builder
	for s := 0; s < syntheticChunksPerDoc/2; s++ {
		fmt.Fprintf(&b, "## %s %s\n\n", vocab[rng.IntN(len(vocab))], vocab[rng.IntN(len(vocab))])
		for p := 0; p < 2; p++ {
			for w := 0; w < 90; w++ {
				b.WriteString(vocab[rng.IntN(len(vocab))])
				b.WriteByte(' ')
			}
			b.WriteString("\n\n")
		}
	}
	return b.String()
}

type knowledgeWorld struct {
	k       *app.Knowledge
	db      projections.Beginner
	owner   *pgxpool.Pool
	closers []func()
}

func (w *knowledgeWorld) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
}

func startKnowledgeWorld(ctx context.Context, logger *slog.Logger) (_ *knowledgeWorld, err error) {
	w := &knowledgeWorld{}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	reg := domain.NewDefaultRegistry()
	dir, err := os.MkdirTemp("", "metachat-bench-knowledge-")
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, func() { _ = os.RemoveAll(dir) })
	srv, err := natsserver.Start(ctx, natsserver.Config{StoreDir: dir, Logger: logger})
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, nc.Close)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{Logger: logger})
	if err != nil {
		return nil, err
	}
	dbURL, drop, err := benchDatabase(ctx)
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, drop)
	pools, err := projections.OpenPools(ctx, projections.PoolsConfig{DatabaseURL: dbURL})
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, pools.Close)
	w.db, w.owner = pools.App, pools.Owner
	emb := projections.NewLocalEmbedder()
	mgr, err := projections.NewManager(projections.ManagerConfig{
		Projections: []projections.Projection{projections.NewKnowledgeProjection(reg, emb)},
		Store:       store, Owner: pools.Owner, Projector: pools.Projector, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	if err := mgr.Ensure(ctx); err != nil {
		return nil, err
	}
	waiter, err := projections.NewWaiter(projections.WaiterConfig{Pool: pools.App, Logger: logger})
	if err != nil {
		return nil, err
	}
	objects, err := store.NewObjects(ctx, "bench_documents", 0)
	if err != nil {
		return nil, err
	}
	if w.k, err = app.NewKnowledge(app.KnowledgeConfig{Store: store, Registry: reg, DB: pools.App, Waiter: waiter,
		Objects: objects, Worker: store, Embedder: emb, Logger: logger}); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{mgr.Run, waiter.Run, w.k.RunPipeline} {
		wg.Go(func() { _ = run(runCtx) })
	}
	w.closers = append(w.closers, func() { cancel(); wg.Wait() })
	return w, nil
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
