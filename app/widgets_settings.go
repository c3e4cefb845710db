package app

import (
	"context"
	"strings"
	"time"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// idempotentWidget is the kind of idempotent widget creates (see identityEntityID).
const idempotentWidget = "widget"

// Widget is a widget as the API shows it to the tenant's staff.
type Widget struct {
	ID       string
	Settings domain.WidgetSettings
	// IdentitySecret is the key the tenant's server signs visitors' user ids with (UserHash).
	IdentitySecret string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// WidgetPage is one page of widgets and the cursor of the next ("" on the last page).
type WidgetPage struct {
	Items      []Widget
	NextCursor string
}

// ListWidgetsInput selects a page of widgets.
type ListWidgetsInput struct {
	Limit  int
	Cursor string
}

// CreateWidget creates a widget for p's tenant (owners and admins) and returns it with the
// stream sequence of its event. With an idempotency key a retry answers the widget the first
// request created (as it is now).
func (w *Widgets) CreateWidget(ctx context.Context, p domain.Principal, settings domain.WidgetSettings, idempotencyKey string) (Widget, uint64, error) {
	if err := requireManager(p); err != nil {
		return Widget{}, 0, err
	}
	id, err := identityEntityID(p.TenantID, idempotentWidget, idempotencyKey)
	if err != nil {
		return Widget{}, 0, err
	}
	res, err := w.handler.Handle(ctx, domain.WidgetRef(p.TenantID, id), domain.CreateWidget{
		WidgetID: id, Settings: settings, Idempotent: idempotencyKey != "", At: w.now(),
	}, eventstore.Metadata{Actor: p.Actor()})
	if err != nil {
		return Widget{}, 0, err
	}
	if err := w.waitFor(ctx, res.Version); err != nil {
		return Widget{}, 0, err
	}
	return w.view(res.State.ID, res.State.Settings, res.State.CreatedAt, res.State.UpdatedAt), res.Version, nil
}

// UpdateWidget replaces the settings of a widget of p's tenant (owners and admins). Another
// tenant's widget is ENOTFOUND.
func (w *Widgets) UpdateWidget(ctx context.Context, p domain.Principal, widgetID string, settings domain.WidgetSettings) (Widget, uint64, error) {
	if err := requireManager(p); err != nil {
		return Widget{}, 0, err
	}
	id, err := canonicalWidgetID(widgetID)
	if err != nil {
		return Widget{}, 0, err
	}
	res, err := w.handler.Handle(ctx, domain.WidgetRef(p.TenantID, id), domain.UpdateWidget{Settings: settings, At: w.now()}, eventstore.Metadata{Actor: p.Actor()})
	if err != nil {
		return Widget{}, 0, err
	}
	if err := w.waitFor(ctx, res.Version); err != nil {
		return Widget{}, 0, err
	}
	return w.view(res.State.ID, res.State.Settings, res.State.CreatedAt, res.State.UpdatedAt), res.Version, nil
}

// GetWidget returns a widget of p's tenant (owners and admins).
func (w *Widgets) GetWidget(ctx context.Context, p domain.Principal, id string) (Widget, error) {
	if err := requireManager(p); err != nil {
		return Widget{}, err
	}
	row, err := w.reader.Get(ctx, p.TenantID, id)
	if err != nil {
		return Widget{}, err
	}
	return w.view(row.ID, row.Settings, row.CreatedAt, row.UpdatedAt), nil
}

// ListWidgets returns a page of p's tenant's widgets, oldest first (owners and admins).
func (w *Widgets) ListWidgets(ctx context.Context, p domain.Principal, in ListWidgetsInput) (WidgetPage, error) {
	if err := requireManager(p); err != nil {
		return WidgetPage{}, err
	}
	limit, err := identityPageLimit(in.Limit)
	if err != nil {
		return WidgetPage{}, err
	}
	after, err := decodeIdentityCursor(in.Cursor)
	if err != nil {
		return WidgetPage{}, err
	}
	rows, err := w.reader.List(ctx, p.TenantID, after.CreatedAt, after.ID, limit+1)
	if err != nil {
		return WidgetPage{}, err
	}
	page := WidgetPage{Items: make([]Widget, 0, min(len(rows), limit))}
	for n, r := range rows {
		if n == limit {
			last := rows[n-1]
			page.NextCursor = encodeIdentityCursor(identityCursor{CreatedAt: last.CreatedAt, ID: last.ID})
			break
		}
		page.Items = append(page.Items, w.view(r.ID, r.Settings, r.CreatedAt, r.UpdatedAt))
	}
	return page, nil
}

// canonicalWidgetID returns a widget id in canonical form, ENOTFOUND when it is no UUID.
func canonicalWidgetID(id string) (string, error) {
	if !domain.IsUUID(id) {
		return "", domain.Errorf(domain.ENOTFOUND, "Widget not found.")
	}
	return strings.ToLower(id), nil
}
