package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// Defaults and limits of KnowledgeConfig.
const (
	// DefaultMaxUploadBytes is the largest document accepted.
	DefaultMaxUploadBytes = 10 << 20
	// DefaultMaxSearchResults bounds k of a search.
	DefaultMaxSearchResults = 50
	// PipelineConsumer is the durable consumer the document pipeline works through.
	PipelineConsumer = "work_document_pipeline"
)

// ObjectStore keeps documents' originals (eventstore.Objects).
type ObjectStore interface {
	Put(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	Delete(ctx context.Context, name string) error
}

// Worker hands out events to reactors at least once (eventstore.JetStream.Work).
type Worker interface {
	Work(ctx context.Context, cfg eventstore.WorkConfig, fn func(context.Context, domain.Envelope) error) error
}

// KnowledgeConfig configures a Knowledge service.
type KnowledgeConfig struct {
	// Store is the event store; Registry encodes and decodes events (default
	// domain.NewDefaultRegistry()).
	Store    domain.EventStore
	Registry *domain.Registry
	// DB is the app pool (metachat_app): every read goes through row-level security.
	DB projections.Beginner
	// Waiter gives writes their reads.
	Waiter *projections.Waiter
	// Objects keeps the uploaded originals.
	Objects ObjectStore
	// Worker delivers document events to the pipeline (RunPipeline); nil when this process runs
	// no pipeline.
	Worker Worker
	// Embedder embeds search queries: the same embedder as the knowledge projection's.
	Embedder projections.Embedder
	// MaxUploadBytes bounds an upload. Default DefaultMaxUploadBytes.
	MaxUploadBytes int64
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *KnowledgeConfig) setDefaults() {
	if c.Registry == nil {
		c.Registry = domain.NewDefaultRegistry()
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.Embedder == nil {
		c.Embedder = projections.NewLocalEmbedder()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c KnowledgeConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("no event store"))
	}
	if c.DB == nil {
		errs = append(errs, errors.New("no database pool"))
	}
	if c.Waiter == nil {
		errs = append(errs, errors.New("no read-your-writes waiter"))
	}
	if c.Objects == nil {
		errs = append(errs, errors.New("no object store"))
	}
	if c.MaxUploadBytes < 0 || c.MaxUploadBytes > 256<<20 {
		errs = append(errs, fmt.Errorf("max upload of %d bytes must be between 1 and 256 MiB", c.MaxUploadBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid knowledge config: %w", err)
	}
	return nil
}

// Knowledge is the knowledge base: documents uploaded by the tenant's staff, the pipeline that
// turns them into retrievable chunks, and hybrid search over them. It is safe for concurrent use.
type Knowledge struct {
	cfg     KnowledgeConfig
	log     *slog.Logger
	handler *eventstore.Handler[domain.Document, domain.DocumentCommand]
	reader  *projections.Knowledge
}

// NewKnowledge returns the service for cfg.
func NewKnowledge(cfg KnowledgeConfig) (*Knowledge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	log := cfg.Logger.With("component", "app.knowledge")
	return &Knowledge{
		cfg: cfg,
		log: log,
		handler: eventstore.NewHandler(cfg.Store, cfg.Registry, domain.DocumentDecider(),
			eventstore.WithClock(cfg.Now), eventstore.WithLogger(log)),
		reader: projections.NewKnowledge(cfg.DB),
	}, nil
}

// MaxUploadBytes is the largest document the service accepts.
func (k *Knowledge) MaxUploadBytes() int64 { return k.cfg.MaxUploadBytes }

// Embedder is the embedder of search queries.
func (k *Knowledge) Embedder() projections.Embedder { return k.cfg.Embedder }

func (k *Knowledge) now() time.Time { return k.cfg.Now().UTC() }

// requireKnowledgeEditor checks that p may add and remove documents: owners, admins and API keys.
func requireKnowledgeEditor(p domain.Principal) error {
	if !p.Authenticated() {
		return domain.Errorf(domain.EUNAUTHORIZED, "Authentication required.")
	}
	switch p.Role {
	case domain.RoleOwner, domain.RoleAdmin, domain.RoleAPIKey:
		return nil
	}
	return domain.Errorf(domain.EFORBIDDEN, "Only an owner, an admin or an API key may change the knowledge base.")
}

// requireKnowledgeReader checks that p may read documents and search: the tenant's staff and API
// keys, not visitors.
func requireKnowledgeReader(p domain.Principal) error {
	if !p.Authenticated() {
		return domain.Errorf(domain.EUNAUTHORIZED, "Authentication required.")
	}
	if p.Role == domain.RoleVisitor {
		return domain.Errorf(domain.EFORBIDDEN, "Visitors may not read the knowledge base.")
	}
	return nil
}
