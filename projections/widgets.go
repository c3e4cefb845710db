package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/migrations"
)

// WidgetsProjection is the name of the widgets read model.
const WidgetsProjection = "widgets"

// widgetIDSetting is the transaction setting that opens one widget's row to metachat_app (see
// WidgetProjection).
const widgetIDSetting = "app.widget_id"

// WidgetProjection keeps the table widgets (tenant_id, widget_id, name, settings, created_at,
// updated_at, version) from widget.created and widget.updated events; settings is the
// widget's normalised domain.WidgetSettings as JSON.
//
// A visitor's browser names a widget before anyone knows its tenant, so besides the tenant policy
// the table has one narrow read-only policy for metachat_app: a transaction that sets
// app.widget_id sees that one widget's row and nothing else. Widget ids are public (they are in
// the host page's script tag); a widget's settings hold nothing secret.
type WidgetProjection struct {
	reg *domain.Registry
}

var _ Projection = (*WidgetProjection)(nil)

// NewWidgetProjection returns the widgets projection, decoding payloads with reg.
func NewWidgetProjection(reg *domain.Registry) *WidgetProjection { return &WidgetProjection{reg: reg} }

// Name implements Projection.
func (*WidgetProjection) Name() string { return WidgetsProjection }

// Setup implements Projection.
func (*WidgetProjection) Setup(ctx context.Context, tx pgx.Tx, schema string) error {
	t := pgx.Identifier{schema, "widgets"}.Sanitize()
	app := pgx.Identifier{migrations.AppRole}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE TABLE `+t+` (
		tenant_id  uuid        NOT NULL,
		widget_id  uuid        NOT NULL UNIQUE,
		name       text        NOT NULL,
		settings   jsonb       NOT NULL,
		created_at timestamptz NOT NULL,
		updated_at timestamptz NOT NULL,
		version    bigint      NOT NULL,
		PRIMARY KEY (tenant_id, widget_id)
	);
	CREATE INDEX widgets_page ON `+t+` (tenant_id, created_at, widget_id)`); err != nil {
		return fmt.Errorf("create widgets: %w", err)
	}
	if err := EnableTenantRLS(ctx, tx, schema, "widgets"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE POLICY widget_lookup ON `+t+` AS PERMISSIVE FOR SELECT TO `+app+
		` USING (widget_id::text = nullif(current_setting('`+widgetIDSetting+`', true), ''))`); err != nil {
		return fmt.Errorf("create widget lookup policy: %w", err)
	}
	return nil
}

// Apply implements Projection. An update of a widget the table lacks means the stream and the
// read model disagree, and is an error.
func (p *WidgetProjection) Apply(ctx context.Context, tx pgx.Tx, schema string, env domain.Envelope) error {
	if env.AggregateType != domain.WidgetAggregate ||
		(env.Type != domain.EventWidgetCreated && env.Type != domain.EventWidgetUpdated) {
		return nil
	}
	ev, err := p.reg.Decode(env)
	if err != nil {
		return fmt.Errorf("decode %s: %w", env.Type, err)
	}
	t := pgx.Identifier{schema, "widgets"}.Sanitize()
	seq := int64(env.Sequence)
	switch e := ev.(type) {
	case *domain.WidgetCreated:
		if e.WidgetID != env.AggregateID {
			return fmt.Errorf("widget.created for %q stored under widget %q", e.WidgetID, env.AggregateID)
		}
		settings, err := json.Marshal(e.Settings)
		if err != nil {
			return fmt.Errorf("encode widget settings: %w", err)
		}
		at := eventTime(e.CreatedAt, env)
		if _, err := tx.Exec(ctx, `INSERT INTO `+t+` (tenant_id, widget_id, name, settings, created_at, updated_at, version)
			VALUES ($1, $2, $3, $4, $5, $5, $6)`, env.TenantID, e.WidgetID, e.Settings.Name, settings, at, seq); err != nil {
			return fmt.Errorf("insert widget %s: %w", e.WidgetID, err)
		}
	case *domain.WidgetUpdated:
		settings, err := json.Marshal(e.Settings)
		if err != nil {
			return fmt.Errorf("encode widget settings: %w", err)
		}
		tag, err := tx.Exec(ctx, `UPDATE `+t+` SET name = $3, settings = $4, updated_at = $5, version = $6
			WHERE tenant_id = $1 AND widget_id = $2`,
			env.TenantID, env.AggregateID, e.Settings.Name, settings, eventTime(e.UpdatedAt, env), seq)
		if err != nil {
			return fmt.Errorf("update widget %s: %w", env.AggregateID, err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("widget.updated for unknown widget %s of tenant %s", env.AggregateID, env.TenantID)
		}
	}
	return nil
}

// Widget is one row of the widgets read model.
type Widget struct {
	TenantID  string
	ID        string
	Settings  domain.WidgetSettings
	CreatedAt time.Time
	UpdatedAt time.Time
	// Version is the stream sequence of the widget's last event.
	Version uint64
}

// Widgets reads the widgets read model through the app pool.
type Widgets struct {
	db Beginner
}

// NewWidgets returns the widgets reader on db (the app pool).
func NewWidgets(db Beginner) *Widgets { return &Widgets{db: db} }

const widgetColumns = `tenant_id::text, widget_id::text, settings, created_at, updated_at, version`

func scanWidget(row pgx.Row) (Widget, error) {
	var w Widget
	var settings []byte
	if err := row.Scan(&w.TenantID, &w.ID, &settings, &w.CreatedAt, &w.UpdatedAt, &w.Version); err != nil {
		return Widget{}, err
	}
	if err := json.Unmarshal(settings, &w.Settings); err != nil {
		return Widget{}, fmt.Errorf("decode settings of widget %s: %w", w.ID, err)
	}
	return w, nil
}

// Get returns one widget of a tenant. A widget that does not exist, belongs to another tenant, or
// an id that is not a UUID, is ENOTFOUND.
func (r *Widgets) Get(ctx context.Context, tenantID, widgetID string) (Widget, error) {
	return getOne(ctx, r.db, tenantID, widgetID, "Widget not found.", scanWidget,
		`SELECT `+widgetColumns+` FROM public.widgets WHERE tenant_id = $1 AND widget_id = $2`, tenantID, widgetID)
}

// List returns at most limit widgets of a tenant in the order of (created_at, widget_id), after
// the given position when afterID is not empty.
func (r *Widgets) List(ctx context.Context, tenantID string, afterCreatedAt time.Time, afterID string, limit int) ([]Widget, error) {
	var out []Widget
	err := WithTenant(ctx, r.db, tenantID, func(tx pgx.Tx) error {
		var rows pgx.Rows
		var err error
		if afterID == "" {
			rows, err = tx.Query(ctx, `SELECT `+widgetColumns+` FROM public.widgets
				WHERE tenant_id = $1 ORDER BY created_at, widget_id LIMIT $2`, tenantID, limit)
		} else {
			rows, err = tx.Query(ctx, `SELECT `+widgetColumns+` FROM public.widgets
				WHERE tenant_id = $1 AND (created_at, widget_id) > ($2, $3::uuid)
				ORDER BY created_at, widget_id LIMIT $4`, tenantID, afterCreatedAt, afterID, limit)
		}
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Widget, error) { return scanWidget(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list widgets of %s: %w", tenantID, err)
	}
	return out, nil
}

// Lookup returns a widget by id alone, whatever its tenant: the public widget routes know only the
// id. It is one indexed read in a transaction that sets app.widget_id; a missing widget, or an id
// that is not a UUID, is ENOTFOUND.
func (r *Widgets) Lookup(ctx context.Context, widgetID string) (Widget, error) {
	id, err := uuid.Parse(widgetID)
	if err != nil || !domain.IsUUID(widgetID) {
		return Widget{}, domain.Errorf(domain.ENOTFOUND, "Widget not found.")
	}
	var w Widget
	err = withLookupSetting(ctx, r.db, widgetIDSetting, id.String(), func(tx pgx.Tx) error {
		var err error
		w, err = scanWidget(tx.QueryRow(ctx, `SELECT `+widgetColumns+` FROM public.widgets WHERE widget_id = $1`, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Widget{}, domain.Errorf(domain.ENOTFOUND, "Widget not found.")
	}
	if err != nil {
		return Widget{}, fmt.Errorf("look up widget %s: %w", widgetID, err)
	}
	return w, nil
}
