package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/migrations"
)

// APIKeysProjection is the name of the API keys read model.
const APIKeysProjection = "api_keys"

// apiKeyPrefixSetting is the transaction setting that opens the live rows of one key prefix to
// metachat_app (see APIKeyProjection).
const apiKeyPrefixSetting = "app.api_key_prefix"

// APIKeyProjection keeps the table api_keys (tenant_id, key_id, name, prefix, key_hash,
// created_at, revoked_at, last_used_at, version) from api_key.created, api_key.revoked and
// api_key.used events. It holds the keyed hash of each key, never the key.
//
// Authenticating a key does not know its tenant yet, so besides the tenant policy the table has
// one narrow read-only policy for metachat_app: a transaction that sets app.api_key_prefix sees
// the unrevoked rows with that public prefix and nothing else. The prefix is part of the key the
// caller presents; the hash comparison then decides.
type APIKeyProjection struct {
	reg *domain.Registry
}

var _ Projection = (*APIKeyProjection)(nil)

// NewAPIKeyProjection returns the API keys projection, decoding payloads with reg.
func NewAPIKeyProjection(reg *domain.Registry) *APIKeyProjection { return &APIKeyProjection{reg: reg} }

// Name implements Projection.
func (*APIKeyProjection) Name() string { return APIKeysProjection }

// Setup implements Projection.
func (*APIKeyProjection) Setup(ctx context.Context, tx pgx.Tx, schema string) error {
	t := pgx.Identifier{schema, "api_keys"}.Sanitize()
	app := pgx.Identifier{migrations.AppRole}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE TABLE `+t+` (
		tenant_id    uuid        NOT NULL,
		key_id       uuid        NOT NULL,
		name         text        NOT NULL,
		prefix       text        NOT NULL,
		key_hash     text        NOT NULL,
		created_at   timestamptz NOT NULL,
		revoked_at   timestamptz,
		last_used_at timestamptz,
		version      bigint      NOT NULL,
		PRIMARY KEY (tenant_id, key_id)
	);
	CREATE INDEX api_keys_prefix ON `+t+` (prefix) WHERE revoked_at IS NULL;
	CREATE INDEX api_keys_page ON `+t+` (tenant_id, created_at, key_id) WHERE revoked_at IS NULL`); err != nil {
		return fmt.Errorf("create api_keys: %w", err)
	}
	if err := EnableTenantRLS(ctx, tx, schema, "api_keys"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE POLICY key_lookup ON `+t+` AS PERMISSIVE FOR SELECT TO `+app+
		` USING (revoked_at IS NULL AND prefix = nullif(current_setting('`+apiKeyPrefixSetting+`', true), ''))`); err != nil {
		return fmt.Errorf("create key lookup policy: %w", err)
	}
	return nil
}

// Apply implements Projection. A revocation or use of a key the table lacks means the stream and
// the read model disagree, and is an error.
func (p *APIKeyProjection) Apply(ctx context.Context, tx pgx.Tx, schema string, env domain.Envelope) error {
	if env.AggregateType != domain.APIKeyAggregate {
		return nil
	}
	switch env.Type {
	case domain.EventAPIKeyCreated, domain.EventAPIKeyRevoked, domain.EventAPIKeyUsed:
	default:
		return nil
	}
	ev, err := p.reg.Decode(env)
	if err != nil {
		return fmt.Errorf("decode %s: %w", env.Type, err)
	}
	t := pgx.Identifier{schema, "api_keys"}.Sanitize()
	seq := int64(env.Sequence)
	var update string
	var at time.Time
	switch e := ev.(type) {
	case *domain.APIKeyCreated:
		if e.KeyID != env.AggregateID {
			return fmt.Errorf("api_key.created for %q stored under key %q", e.KeyID, env.AggregateID)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+t+` (tenant_id, key_id, name, prefix, key_hash, created_at, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			env.TenantID, e.KeyID, e.Name, e.Prefix, e.KeyHash, eventTime(e.CreatedAt, env), seq); err != nil {
			return fmt.Errorf("insert api key %s: %w", e.KeyID, err)
		}
		return nil
	case *domain.APIKeyRevoked:
		update, at = `revoked_at = coalesce(revoked_at, $3)`, eventTime(e.RevokedAt, env)
	case *domain.APIKeyUsed:
		update, at = `last_used_at = greatest(last_used_at, $3)`, eventTime(e.UsedAt, env)
	default:
		return nil
	}
	tag, err := tx.Exec(ctx, `UPDATE `+t+` SET `+update+`, version = $4 WHERE tenant_id = $1 AND key_id = $2`,
		env.TenantID, env.AggregateID, at, seq)
	if err != nil {
		return fmt.Errorf("update api key %s: %w", env.AggregateID, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%s for unknown api key %s of tenant %s", env.Type, env.AggregateID, env.TenantID)
	}
	return nil
}

// APIKey is one row of the api_keys read model, without its hash.
type APIKey struct {
	TenantID string
	ID       string
	Name     string
	// Prefix is the public start of the key ("mck_" and its public id).
	Prefix    string
	CreatedAt time.Time
	// LastUsedAt is when a use was last recorded (at most once a minute), nil when never.
	LastUsedAt *time.Time
	// RevokedAt is when the key was revoked, nil while it is live.
	RevokedAt *time.Time
	// Version is the stream sequence of the key's last event.
	Version uint64
}

// APIKeyCredential is what authenticating a key needs: a live key's tenant, id and hash, and the
// version of the key's aggregate the row reflects.
type APIKeyCredential struct {
	TenantID   string
	KeyID      string
	KeyHash    string
	LastUsedAt *time.Time
	Version    uint64
}

// APIKeys reads the API keys read model.
type APIKeys struct {
	db Beginner
}

// NewAPIKeys returns the API keys reader on db, the app pool (metachat_app).
func NewAPIKeys(db Beginner) *APIKeys { return &APIKeys{db: db} }

const apiKeyColumns = `tenant_id::text, key_id::text, name, prefix, created_at, last_used_at, revoked_at, version`

func scanAPIKey(row pgx.Row) (APIKey, error) {
	var (
		k       APIKey
		version int64
	)
	err := row.Scan(&k.TenantID, &k.ID, &k.Name, &k.Prefix, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt, &version)
	k.Version = uint64(version)
	return k, err
}

// Get returns one key of a tenant, revoked or not. A key that does not exist, belongs to another
// tenant, or an id that is not a UUID, is ENOTFOUND.
func (k *APIKeys) Get(ctx context.Context, tenantID, keyID string) (APIKey, error) {
	return getOne(ctx, k.db, tenantID, keyID, "API key not found.", scanAPIKey,
		`SELECT `+apiKeyColumns+` FROM public.api_keys WHERE tenant_id = $1 AND key_id = $2`, tenantID, keyID)
}

// List returns at most limit live (unrevoked) keys of a tenant in the order of (created_at,
// key_id), after the key (afterCreatedAt, afterID) when afterID is not empty.
func (k *APIKeys) List(ctx context.Context, tenantID string, afterCreatedAt time.Time, afterID string, limit int) ([]APIKey, error) {
	var out []APIKey
	err := WithTenant(ctx, k.db, tenantID, func(tx pgx.Tx) error {
		var (
			rows pgx.Rows
			err  error
		)
		if afterID == "" {
			rows, err = tx.Query(ctx, `SELECT `+apiKeyColumns+` FROM public.api_keys
				WHERE tenant_id = $1 AND revoked_at IS NULL ORDER BY created_at, key_id LIMIT $2`, tenantID, limit)
		} else {
			rows, err = tx.Query(ctx, `SELECT `+apiKeyColumns+` FROM public.api_keys
				WHERE tenant_id = $1 AND revoked_at IS NULL AND (created_at, key_id) > ($2, $3::uuid)
				ORDER BY created_at, key_id LIMIT $4`, tenantID, afterCreatedAt, afterID, limit)
		}
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) { return scanAPIKey(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list api keys of %s: %w", tenantID, err)
	}
	return out, nil
}

// Lookup returns the live keys with a public prefix, from any tenant (normally one; prefixes are
// random, so a collision is possible but rare, and the hash tells the keys apart). It is one
// indexed read in a transaction that sets app.api_key_prefix.
func (k *APIKeys) Lookup(ctx context.Context, prefix string) ([]APIKeyCredential, error) {
	var out []APIKeyCredential
	err := withLookupSetting(ctx, k.db, apiKeyPrefixSetting, prefix, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT tenant_id::text, key_id::text, key_hash, last_used_at, version
			FROM public.api_keys WHERE prefix = $1 AND revoked_at IS NULL LIMIT 8`, prefix)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKeyCredential, error) {
			var c APIKeyCredential
			err := r.Scan(&c.TenantID, &c.KeyID, &c.KeyHash, &c.LastUsedAt, &c.Version)
			return c, err
		})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up api key: %w", err)
	}
	return out, nil
}
