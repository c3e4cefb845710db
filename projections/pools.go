package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/metachat/metachat/migrations"
)

// Default pool sizes: modest, for a small machine; each runner also holds one dedicated connection
// for its lock, outside the pools.
const (
	DefaultOwnerMaxConns     = 2
	DefaultAppMaxConns       = 6
	DefaultProjectorMaxConns = 4
)

// PoolsConfig configures OpenPools.
type PoolsConfig struct {
	// DatabaseURL is the owner's connection string (the user that runs migrations and owns every
	// table). It must be a member of metachat_app and metachat_projector (the base migration grants
	// that when it can; a superuser is a member of every role).
	DatabaseURL string
	// OwnerMaxConns, AppMaxConns and ProjectorMaxConns size the pools. Defaults
	// DefaultOwnerMaxConns, DefaultAppMaxConns and DefaultProjectorMaxConns.
	OwnerMaxConns     int32
	AppMaxConns       int32
	ProjectorMaxConns int32
	// SkipMigrations leaves the schema alone (an instance that must not run DDL).
	SkipMigrations bool
}

func (c *PoolsConfig) setDefaults() {
	if c.OwnerMaxConns == 0 {
		c.OwnerMaxConns = DefaultOwnerMaxConns
	}
	if c.AppMaxConns == 0 {
		c.AppMaxConns = DefaultAppMaxConns
	}
	if c.ProjectorMaxConns == 0 {
		c.ProjectorMaxConns = DefaultProjectorMaxConns
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c PoolsConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("database URL is empty"))
	} else if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		errs = append(errs, fmt.Errorf("database URL: %w", err))
	}
	for _, n := range []struct {
		name string
		v    int32
	}{{"owner", c.OwnerMaxConns}, {"app", c.AppMaxConns}, {"projector", c.ProjectorMaxConns}} {
		if n.v < 1 {
			errs = append(errs, fmt.Errorf("%s pool size %d must be at least 1", n.name, n.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid pools config: %w", err)
	}
	return nil
}

// Pools are the three connection pools of the read-model database.
type Pools struct {
	// Owner connects as the owner: migrations and projection DDL only (Manager).
	Owner *pgxpool.Pool
	// App is permanently metachat_app: API reads, through WithTenant.
	App *pgxpool.Pool
	// Projector is permanently metachat_projector: the runners' writes.
	Projector *pgxpool.Pool
}

// OpenPools applies the migrations with the owner's connection (unless SkipMigrations), then opens
// the app and projector pools, each of whose connections runs SET ROLE once in AfterConnect and so
// is permanently that role. Nothing may RESET ROLE on them. Close the pools with Close.
func OpenPools(ctx context.Context, cfg PoolsConfig) (*Pools, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	owner, err := newPool(ctx, cfg.DatabaseURL, cfg.OwnerMaxConns, "")
	if err != nil {
		return nil, err
	}
	if !cfg.SkipMigrations {
		if err := migrations.Apply(ctx, owner); err != nil {
			owner.Close()
			return nil, fmt.Errorf("open pools: %w", err)
		}
	}
	app, err := newPool(ctx, cfg.DatabaseURL, cfg.AppMaxConns, migrations.AppRole)
	if err != nil {
		owner.Close()
		return nil, err
	}
	projector, err := newPool(ctx, cfg.DatabaseURL, cfg.ProjectorMaxConns, migrations.ProjectorRole)
	if err != nil {
		owner.Close()
		app.Close()
		return nil, err
	}
	return &Pools{Owner: owner, App: app, Projector: projector}, nil
}

// Close closes the three pools.
func (p *Pools) Close() {
	p.Projector.Close()
	p.App.Close()
	p.Owner.Close()
}

// newPool opens a pool of at most maxConns connections that switch to role when role is not empty,
// and checks that it can connect.
func newPool(ctx context.Context, url string, maxConns int32, role string) (*pgxpool.Pool, error) {
	what := "owner"
	if role != "" {
		what = role
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open %s pool: %w", what, err)
	}
	pc.MaxConns = maxConns
	setRole := ""
	if role != "" {
		setRole = "SET ROLE " + pgx.Identifier{role}.Sanitize()
	}
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		registerStringUUIDs(c.TypeMap())
		if setRole == "" {
			return nil
		}
		if _, err := c.Exec(ctx, setRole); err != nil {
			return fmt.Errorf("set role %s: %w", role, err)
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open %s pool: %w", what, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open %s pool: %w", what, err)
	}
	return pool, nil
}
