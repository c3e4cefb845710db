package projections

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/migrations"
)

// Notification channels the projections runtime sends on.
const (
	// CheckpointChannel carries "<projection>:<generation>:<checkpoint>" after every batch commit.
	CheckpointChannel = "metachat_checkpoint"
	// SwitchChannel carries "<projection>:<generation>" when a generation becomes the active one.
	SwitchChannel = "metachat_projection_switch"
)

// Generation states, as stored in projection_generations.state.
const (
	StateBuilding = "building"
	StateActive   = "active"
	StateRetired  = "retired"
)

// maxNameLen keeps rm_<name>_g<generation> within Postgres' 63-byte identifiers.
const maxNameLen = 40

// Projection is one read model: the tables it keeps and how each event changes them. The runtime
// calls Setup once per generation and Apply for every event of the stream, in order, exactly once
// per generation; Apply ignores the event types it does not care about. Both run in a transaction
// the runtime commits; schema is the Postgres schema of the generation, and every statement must
// name its tables qualified with it (pgx.Identifier{schema, table}.Sanitize()).
type Projection interface {
	// Name is the projection's stable name: lower-case letters, digits and '_', starting with a
	// letter, at most 40 characters.
	Name() string
	// Setup creates the projection's tables, indexes and row-level security (EnableTenantRLS) in
	// schema, which exists and is empty. It runs as the owner. Every table must have a tenant_id
	// uuid NOT NULL column; the runtime grants the roles their access and publishes each table as
	// a view public.<table>.
	Setup(ctx context.Context, tx pgx.Tx, schema string) error
	// Apply folds one event into the read model. It runs as metachat_projector. An error that is
	// not a transient database or context failure makes the event a poison event that stops the
	// projection until it is fixed.
	Apply(ctx context.Context, tx pgx.Tx, schema string, env domain.Envelope) error
}

// validName reports whether name can be a projection name.
func validName(name string) error {
	re := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	if len(name) > maxNameLen || !re.MatchString(name) {
		return fmt.Errorf("projection name %q: must be 1-%d lower-case letters, digits or '_', starting with a letter",
			name, maxNameLen)
	}
	return nil
}

// SchemaName returns the Postgres schema of a projection generation: rm_<name>_g<generation>.
func SchemaName(projection string, generation int) string {
	return "rm_" + projection + "_g" + strconv.Itoa(generation)
}

// ConsumerName returns the durable JetStream consumer of a projection generation:
// proj_<name>_g<generation>.
func ConsumerName(projection string, generation int) string {
	return "proj_" + projection + "_g" + strconv.Itoa(generation)
}

// tenantPredicate is the row filter of metachat_app: the tenant set in the current transaction,
// none at all when it is unset or empty.
const tenantPredicate = `tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid`

// EnableTenantRLS turns row-level security on for schema.table, forces it on the owner too, and
// adds the two policies every read-model table has: metachat_app sees and writes only the rows of
// the transaction's tenant, metachat_projector every row (projectors write for all tenants). The
// table must have a tenant_id uuid column. Projections call it from Setup for each table.
func EnableTenantRLS(ctx context.Context, tx pgx.Tx, schema, table string) error {
	t := pgx.Identifier{schema, table}.Sanitize()
	app := pgx.Identifier{migrations.AppRole}.Sanitize()
	projector := pgx.Identifier{migrations.ProjectorRole}.Sanitize()
	sql := "ALTER TABLE " + t + " ENABLE ROW LEVEL SECURITY;\n" +
		"ALTER TABLE " + t + " FORCE ROW LEVEL SECURITY;\n" +
		"CREATE POLICY tenant_isolation ON " + t + " AS PERMISSIVE FOR ALL TO " + app +
		" USING (" + tenantPredicate + ") WITH CHECK (" + tenantPredicate + ");\n" +
		"CREATE POLICY projector_all ON " + t + " AS PERMISSIVE FOR ALL TO " + projector +
		" USING (true) WITH CHECK (true);"
	if _, err := tx.Exec(ctx, sql); err != nil {
		return fmt.Errorf("enable row-level security on %s: %w", t, err)
	}
	return nil
}

// All returns every read model Metachat keeps, decoding payloads with reg, with the local
// embedder for knowledge: what `metachat serve` runs unless another embedder is configured.
func All(reg *domain.Registry) []Projection {
	return AllWith(reg, NewLocalEmbedder())
}

// AllWith is All with the knowledge read model embedding with emb.
func AllWith(reg *domain.Registry, emb Embedder) []Projection {
	return []Projection{
		NewTenantProjection(reg),
		NewUserProjection(reg),
		NewAPIKeyProjection(reg),
		NewConversationProjection(reg),
		NewWidgetProjection(reg),
		NewKnowledgeProjection(reg, emb),
	}
}
