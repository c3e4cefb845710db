package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/metachat/metachat/adapters/httpapi"
	"github.com/metachat/metachat/adapters/openai"
	appsvc "github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

// app is the constructed application on top of the infrastructure: the event store, the Postgres
// pools, the projections manager and the read-your-writes waiter.
type app struct {
	registry *domain.Registry
	store    *eventstore.JetStream
	pools    *projections.Pools
	manager  *projections.Manager
	waiter   *projections.Waiter
	// embedder embeds the knowledge read model's chunks and the search queries: the
	// OpenAI-compatible API of METACHAT_EMBEDDINGS_*, else the local lexical embedder.
	embedder projections.Embedder
	// answerer answers for the assistant: a chat model of METACHAT_LLM_*, else the local
	// extractive answerer; answerTimeout bounds one answer.
	answerer      appsvc.Answerer
	answerTimeout time.Duration
	// assistantMetrics are the assistant's series (nil for the operator commands).
	assistantMetrics *appsvc.AssistantMetrics
}

// modelClients returns the embedder and the assistant's answerer that cfg configures.
func modelClients(cfg Config, logger *slog.Logger) (projections.Embedder, appsvc.Answerer, error) {
	var emb projections.Embedder = projections.NewLocalEmbedder()
	var ans appsvc.Answerer = appsvc.LocalAnswerer{}
	if cfg.EmbeddingsBaseURL != "" {
		c, err := openai.New(openai.Config{BaseURL: cfg.EmbeddingsBaseURL, Model: cfg.EmbeddingsModel, APIKey: cfg.EmbeddingsAPIKey,
			Dimensions: cfg.EmbeddingsDimensions, Logger: logger.With("component", "embeddings")})
		if err != nil {
			return nil, nil, fmt.Errorf("METACHAT_EMBEDDINGS_*: %w", err)
		}
		emb = c
	}
	if cfg.LLMBaseURL != "" {
		c, err := openai.NewChat(openai.ChatConfig{BaseURL: cfg.LLMBaseURL, Model: cfg.LLMModel, APIKey: cfg.LLMAPIKey,
			Timeout: cfg.LLMTimeout, Logger: logger.With("component", "llm")})
		if err != nil {
			return nil, nil, fmt.Errorf("METACHAT_LLM_*: %w", err)
		}
		ans = appsvc.NewChatAnswerer(c, 0)
	}
	return emb, ans, nil
}

// openApp opens the event store (creating or updating the stream), opens the pools (applying the
// migrations) and builds the projections manager and the waiter. It starts nothing. obs (nil for
// the operator commands) receives the store's and the runners' metrics.
func openApp(ctx context.Context, cfg Config, logger *slog.Logger, in *infra, obs *observability) (*app, error) {
	a := &app{registry: domain.NewDefaultRegistry(), answerTimeout: cfg.LLMTimeout}
	var err error
	if a.embedder, a.answerer, err = modelClients(cfg, logger); err != nil {
		return nil, err
	}
	if obs != nil {
		if a.assistantMetrics, err = appsvc.NewAssistantMetrics(obs.registry); err != nil {
			return nil, err
		}
	}
	a.store, err = eventstore.Open(ctx, in.nc, eventstore.Config{
		Replicas: cfg.NATSReplicas,
		Logger:   logger.With("component", "eventstore"),
		Metrics:  obs.storeMetrics(),
	})
	if err != nil {
		return nil, fmt.Errorf("open event store: %w", err)
	}
	a.pools, err = projections.OpenPools(ctx, projections.PoolsConfig{DatabaseURL: in.databaseURL})
	if err != nil {
		return nil, fmt.Errorf("open Postgres: %w", err)
	}
	a.manager, err = projections.NewManager(projections.ManagerConfig{
		Projections: projections.AllWith(a.registry, a.embedder),
		Store:       a.store,
		Owner:       a.pools.Owner,
		Projector:   a.pools.Projector,
		Logger:      logger.With("component", "projections"),
		Metrics:     obs.projectionMetrics(),
	})
	if err != nil {
		a.close()
		return nil, err
	}
	a.waiter, err = projections.NewWaiter(projections.WaiterConfig{
		Pool:    a.pools.App,
		Timeout: cfg.ReadYourWritesTimeout,
		Logger:  logger.With("component", "projections"),
	})
	if err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

func (a *app) close() {
	if a.pools != nil {
		a.pools.Close()
	}
}

// healthChecks are the dependencies GET /api/health reports.
func (a *app) healthChecks(nc *nats.Conn) []httpapi.HealthCheck {
	return []httpapi.HealthCheck{
		{Name: "nats", Check: func(ctx context.Context) (any, error) {
			details := map[string]any{"server_version": nc.ConnectedServerVersion(), "status": nc.Status().String()}
			if !nc.IsConnected() {
				return details, errors.New("not connected")
			}
			last, err := a.store.LastSequence(ctx)
			if err != nil {
				return details, errors.New("event stream unavailable")
			}
			details["stream_last_seq"] = last
			return details, nil
		}},
		{Name: "postgres", Check: func(ctx context.Context) (any, error) {
			var one int
			if err := a.pools.App.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
				return nil, errors.New("unreachable")
			}
			return nil, nil
		}},
		{Name: "projections", Check: func(ctx context.Context) (any, error) {
			st, err := a.manager.Status(ctx)
			if err != nil {
				return nil, errors.New("status unavailable")
			}
			type row struct {
				Generation int    `json:"generation"`
				State      string `json:"state"`
				Checkpoint uint64 `json:"checkpoint"`
				Lag        uint64 `json:"lag"`
				Running    bool   `json:"running"`
				Stopped    bool   `json:"stopped"`
				StopSeq    uint64 `json:"stop_seq,omitempty"`
			}
			out := map[string]row{}
			var stopped []string
			for _, s := range st {
				if s.State != projections.StateActive {
					continue
				}
				out[s.Projection] = row{s.Generation, s.State, s.Checkpoint, s.Lag, s.Running, s.Stopped, s.StopSeq}
				if s.Stopped {
					stopped = append(stopped, s.Projection)
				}
			}
			if len(stopped) > 0 {
				return out, fmt.Errorf("stopped on an event it cannot apply: %v", stopped)
			}
			return out, nil
		}},
	}
}

// pingPostgres checks that a database URL answers, briefly.
func pingPostgres(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}
