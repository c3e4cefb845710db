package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"

	appsvc "github.com/metachat/metachat/app"
	"github.com/metachat/metachat/eventstore"
)

// services are the application services behind the API.
type services struct {
	identity      *appsvc.Identity
	conversations *appsvc.Conversations
	widgets       *appsvc.Widgets
	live          *appsvc.Live
	knowledge     *appsvc.Knowledge
	// assistant answers customers (started by the worker role).
	assistant *appsvc.Assistant
}

// secrets are the server secrets, loaded before anything starts so a missing one fails fast.
type secrets struct {
	signingKey []byte
	pepper     []byte
}

// loadSecrets reads (or, in development, creates) the JWT signing key and the API key pepper.
func loadSecrets(cfg Config) (secrets, error) {
	cfg.resolvePaths()
	// The data directory must stay traversable (the managed Postgres runs as another user when
	// Metachat runs as root); only the secrets directory inside it is private. Creating it here,
	// before MkdirAll makes the secrets' parents, keeps it from being created 0700.
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return secrets{}, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}
	signingKey, err := loadSecret(cfg, cfg.SigningKeyFile, "METACHAT_JWT_SIGNING_KEY_FILE", appsvc.GenerateSigningKey)
	if err != nil {
		return secrets{}, err
	}
	pepper, err := loadSecret(cfg, cfg.APIKeyPepperFile, "METACHAT_API_KEY_PEPPER_FILE", appsvc.GenerateAPIKeyPepper)
	if err != nil {
		return secrets{}, err
	}
	return secrets{signingKey: signingKey, pepper: []byte(strings.TrimSpace(string(pepper)))}, nil
}

// newServices builds the application services on the opened application; nc carries the live
// hub's typing signals.
func newServices(ctx context.Context, sec secrets, a *app, nc *nats.Conn, logger *slog.Logger) (*services, error) {
	s := &services{}
	var err error
	s.identity, err = appsvc.NewIdentity(appsvc.IdentityConfig{
		Store: a.store, Registry: a.registry, DB: a.pools.App, Waiter: a.waiter,
		SigningKey: sec.signingKey, APIKeyPepper: sec.pepper,
		Logger: logger.With("component", "identity"),
	})
	if err != nil {
		return nil, fmt.Errorf("identity service: %w", err)
	}
	s.conversations, err = appsvc.NewConversations(appsvc.ConversationsConfig{
		Store: a.store, Registry: a.registry, DB: a.pools.App, Waiter: a.waiter,
		Logger: logger.With("component", "conversations"),
	})
	if err != nil {
		return nil, fmt.Errorf("conversations service: %w", err)
	}
	nonces, err := a.store.NewOnce(ctx, "metachat_widget_nonces", appsvc.WidgetNonceTTL)
	if err != nil {
		return nil, fmt.Errorf("widget session nonces: %w", err)
	}
	s.widgets, err = appsvc.NewWidgets(appsvc.WidgetsConfig{
		Store: a.store, Registry: a.registry, DB: a.pools.App, Waiter: a.waiter,
		Conversations: s.conversations, Secret: sec.pepper, Nonces: nonces,
		Logger: logger.With("component", "widgets"),
	})
	if err != nil {
		return nil, fmt.Errorf("widgets service: %w", err)
	}
	s.live, err = appsvc.NewLive(appsvc.LiveConfig{
		Store: a.store, Registry: a.registry, Signals: eventstore.NewNATSSignals(nc, "metachat.sig"),
		Logger: logger.With("component", "live"),
	})
	if err != nil {
		return nil, fmt.Errorf("live hub: %w", err)
	}
	objects, err := a.store.NewObjects(ctx, "metachat_documents", 0)
	if err != nil {
		return nil, fmt.Errorf("document object store: %w", err)
	}
	s.knowledge, err = appsvc.NewKnowledge(appsvc.KnowledgeConfig{
		Store: a.store, Registry: a.registry, DB: a.pools.App, Waiter: a.waiter, Objects: objects, Worker: a.store,
		Embedder: a.embedder, Logger: logger.With("component", "knowledge"),
	})
	if err != nil {
		return nil, fmt.Errorf("knowledge service: %w", err)
	}
	s.assistant, err = appsvc.NewAssistant(appsvc.AssistantConfig{
		Store: a.store, Registry: a.registry, Worker: a.store, Knowledge: s.knowledge, Answerer: a.answerer,
		AnswerTimeout: a.answerTimeout, Metrics: a.assistantMetrics, Logger: logger.With("component", "assistant"),
	})
	if err != nil {
		return nil, fmt.Errorf("assistant: %w", err)
	}
	return s, nil
}

// loadSecret reads a secret file. In development a missing file is generated once (mode 0600)
// under the data directory; in production a missing secret refuses to start.
func loadSecret(cfg Config, path, envName string, generate func() ([]byte, error)) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(strings.TrimSpace(string(b))) == 0 {
			return nil, fmt.Errorf("%s: %s is empty", envName, path)
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: read %s: %w", envName, path, err)
	}
	if cfg.Env == "production" {
		return nil, fmt.Errorf("%s: %s does not exist; in production every secret must be provided (generate it once and keep it safe)", envName, path)
	}
	b, err = generate()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%s: %w", envName, err)
	}
	// O_EXCL: two processes starting at once never overwrite each other's secret.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadSecret(cfg, path, envName, generate)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: create %s: %w", envName, path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: write %s: %w", envName, path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("%s: write %s: %w", envName, path, err)
	}
	return b, nil
}
