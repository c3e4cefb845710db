package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
)

// TenantsProjection is the name of the tenant read model.
const TenantsProjection = "tenants"

// TenantProjection keeps the table tenants (tenant_id, name, plan, created_at, updated_at,
// version) from tenant.created and tenant.renamed events. Tenant ids are UUIDs; version is the
// stream sequence of the tenant's last event, and the times come from the events, so a rebuild
// produces the same rows.
type TenantProjection struct {
	reg *domain.Registry
}

var _ Projection = (*TenantProjection)(nil)

// NewTenantProjection returns the tenant projection, decoding (and upcasting) payloads with reg.
func NewTenantProjection(reg *domain.Registry) *TenantProjection {
	return &TenantProjection{reg: reg}
}

// Name implements Projection.
func (*TenantProjection) Name() string { return TenantsProjection }

// Setup implements Projection.
func (*TenantProjection) Setup(ctx context.Context, tx pgx.Tx, schema string) error {
	t := pgx.Identifier{schema, "tenants"}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE TABLE `+t+` (
		tenant_id  uuid        PRIMARY KEY,
		name       text        NOT NULL,
		plan       text        NOT NULL,
		created_at timestamptz NOT NULL,
		updated_at timestamptz NOT NULL,
		version    bigint      NOT NULL
	)`); err != nil {
		return fmt.Errorf("create tenants: %w", err)
	}
	return EnableTenantRLS(ctx, tx, schema, "tenants")
}

// Apply implements Projection. A tenant.renamed for a tenant the table lacks, or a tenant.created
// for one it has, means the stream and the read model disagree, and is an error.
func (p *TenantProjection) Apply(ctx context.Context, tx pgx.Tx, schema string, env domain.Envelope) error {
	if env.AggregateType != domain.TenantAggregate ||
		(env.Type != domain.EventTenantCreated && env.Type != domain.EventTenantRenamed) {
		return nil
	}
	ev, err := p.reg.Decode(env)
	if err != nil {
		return fmt.Errorf("decode %s: %w", env.Type, err)
	}
	t := pgx.Identifier{schema, "tenants"}.Sanitize()
	switch e := ev.(type) {
	case *domain.TenantCreated:
		if e.TenantID != "" && e.TenantID != env.TenantID {
			return fmt.Errorf("tenant.created for %q stored under tenant %q", e.TenantID, env.TenantID)
		}
		at := eventTime(e.CreatedAt, env)
		if _, err := tx.Exec(ctx, `INSERT INTO `+t+` (tenant_id, name, plan, created_at, updated_at, version)
			VALUES ($1, $2, $3, $4, $4, $5)`, env.TenantID, e.Name, e.Plan, at, int64(env.Sequence)); err != nil {
			return fmt.Errorf("insert tenant %s: %w", env.TenantID, err)
		}
	case *domain.TenantRenamed:
		tag, err := tx.Exec(ctx, `UPDATE `+t+` SET name = $2, updated_at = $3, version = $4 WHERE tenant_id = $1`,
			env.TenantID, e.Name, eventTime(e.RenamedAt, env), int64(env.Sequence))
		if err != nil {
			return fmt.Errorf("rename tenant %s: %w", env.TenantID, err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("tenant.renamed for unknown tenant %s", env.TenantID)
		}
	}
	return nil
}

// eventTime is at, or the envelope's time when the payload has none.
func eventTime(at time.Time, env domain.Envelope) time.Time {
	if at.IsZero() {
		return env.OccurredAt.UTC()
	}
	return at.UTC()
}

// Tenant is one row of the tenants read model.
type Tenant struct {
	// ID is the tenant's id, a UUID.
	ID string
	// Name and Plan are the tenant's current name and plan.
	Name string
	Plan string
	// CreatedAt is when the tenant was created, UpdatedAt when its last event happened.
	CreatedAt time.Time
	UpdatedAt time.Time
	// Version is the stream sequence of the tenant's last event.
	Version uint64
}

// Tenants reads the tenants read model.
type Tenants struct {
	db Beginner
}

// NewTenants returns the tenant reader on db, the app pool (metachat_app).
func NewTenants(db Beginner) *Tenants { return &Tenants{db: db} }

// Get returns a tenant, read through WithTenant so that row-level security shows only that
// tenant's row. A tenant that does not exist, or an id that is not a UUID, is ENOTFOUND.
func (t *Tenants) Get(ctx context.Context, tenantID string) (Tenant, error) {
	return getOne(ctx, t.db, tenantID, tenantID, "Tenant not found.", func(row pgx.Row) (Tenant, error) {
		var (
			out     Tenant
			version int64
		)
		err := row.Scan(&out.ID, &out.Name, &out.Plan, &out.CreatedAt, &out.UpdatedAt, &version)
		out.Version = uint64(version)
		return out, err
	}, `SELECT tenant_id::text, name, plan, created_at, updated_at, version FROM public.tenants WHERE tenant_id = $1`, tenantID)
}
