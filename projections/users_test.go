package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/projections"
)

const testPasswordHash = "$argon2id$v=19$m=32768,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"

// userDirectory runs user commands against tenants' directories.
type userDirectory struct {
	h *eventstore.Handler[domain.UserDirectory, domain.UserCommand]
}

func (d userDirectory) do(t *testing.T, tenantID string, cmd domain.UserCommand) uint64 {
	t.Helper()
	res, err := d.h.Handle(context.Background(), domain.UserDirectoryRef(tenantID), cmd, eventstore.Metadata{})
	if err != nil {
		t.Fatalf("%T: %v", cmd, err)
	}
	return res.Version
}

func TestUserProjection(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	m := h.manager(t, projections.NewUserProjection(h.reg))
	start(t, m.Run)
	w := newWaiter(t, h, 10*time.Second)
	dir := userDirectory{eventstore.NewHandler(h.store, h.reg, domain.UserDirectoryDecider())}
	users := projections.NewUsers(h.pools.App)

	tenantA, tenantB := uuid.NewString(), uuid.NewString()
	ownerA, agentA, ownerB := uuid.NewString(), uuid.NewString(), uuid.NewString()
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	dir.do(t, tenantA, domain.RegisterUser{UserID: ownerA, Email: "owner@a.example", Role: domain.RoleOwner, PasswordHash: testPasswordHash, At: at})
	dir.do(t, tenantA, domain.RegisterUser{UserID: agentA, Email: "agent@a.example", Role: domain.RoleAgent, PasswordHash: testPasswordHash, ActorUserID: ownerA, At: at.Add(time.Second)})
	dir.do(t, tenantB, domain.RegisterUser{UserID: ownerB, Email: "owner@b.example", Role: domain.RoleOwner, PasswordHash: testPasswordHash, At: at})
	dir.do(t, tenantA, domain.ChangeUserRole{UserID: agentA, Role: domain.RoleAdmin, ActorUserID: ownerA, At: at.Add(time.Minute)})
	seq := dir.do(t, tenantA, domain.DeactivateUser{UserID: agentA, ActorUserID: ownerA, At: at.Add(time.Hour)})
	if err := w.WaitFor(ctx, projections.UsersProjection, seq); err != nil {
		t.Fatal(err)
	}

	t.Run("get", func(t *testing.T) {
		u, err := users.Get(ctx, tenantA, agentA)
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != "agent@a.example" || u.Role != domain.RoleAdmin || u.Status != domain.UserStatusDeactivated ||
			!u.CreatedAt.Equal(at.Add(time.Second)) || !u.UpdatedAt.Equal(at.Add(time.Hour)) || u.Version != seq {
			t.Errorf("user %+v", u)
		}
		if _, err := users.Get(ctx, tenantB, agentA); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("another tenant's user: %v, want not found", err)
		}
		if _, err := users.Get(ctx, tenantA, "nope"); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("bad id: %v, want not found", err)
		}
	})

	t.Run("list pages", func(t *testing.T) {
		page, err := users.List(ctx, tenantA, time.Time{}, "", 1)
		if err != nil || len(page) != 1 || page[0].ID != ownerA {
			t.Fatalf("first page %+v, %v", page, err)
		}
		page, err = users.List(ctx, tenantA, page[0].CreatedAt, page[0].ID, 10)
		if err != nil || len(page) != 1 || page[0].ID != agentA {
			t.Fatalf("second page %+v, %v", page, err)
		}
		page, err = users.List(ctx, tenantA, page[0].CreatedAt, page[0].ID, 10)
		if err != nil || len(page) != 0 {
			t.Fatalf("third page %+v, %v", page, err)
		}
	})

	t.Run("login lookup opens one row", func(t *testing.T) {
		l, err := users.Login(ctx, "owner@b.example")
		if err != nil || l.TenantID != tenantB || l.UserID != ownerB || l.PasswordHash != testPasswordHash || l.Status != domain.UserStatusActive {
			t.Fatalf("login %+v, %v", l, err)
		}
		l, err = users.Login(ctx, "agent@a.example")
		if err != nil || l.Status != domain.UserStatusDeactivated {
			t.Fatalf("deactivated login %+v, %v", l, err)
		}
		if _, err := users.Login(ctx, "nobody@a.example"); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("unknown email: %v", err)
		}
		if _, err := users.Login(ctx, ""); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("empty email: %v", err)
		}
	})

	t.Run("row-level security", func(t *testing.T) {
		app := h.pools.App
		if c := queryInt(t, app, "SELECT count(*) FROM user_logins"); c != 0 {
			t.Errorf("app without settings sees %d logins", c)
		}
		if c := queryInt(t, app, "SELECT count(*) FROM users"); c != 0 {
			t.Errorf("app without settings sees %d users", c)
		}
		err := projections.WithTenant(ctx, app, tenantA, func(tx pgx.Tx) error {
			if c := queryInt(t, tx, "SELECT count(*) FROM users"); c != 2 {
				t.Errorf("tenant A sees %d users, want 2", c)
			}
			if c := queryInt(t, tx, "SELECT count(*) FROM user_logins WHERE tenant_id <> $1", tenantA); c != 0 {
				t.Errorf("tenant A sees %d foreign logins", c)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := app.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, "SELECT set_config('app.login_email', 'owner@b.example', true)"); err != nil {
			t.Fatal(err)
		}
		if c := queryInt(t, tx, "SELECT count(*) FROM user_logins"); c != 1 {
			t.Errorf("a login lookup sees %d rows, want exactly 1", c)
		}
		if c := queryInt(t, tx, "SELECT count(*) FROM users"); c != 0 {
			t.Errorf("a login lookup sees %d users rows", c)
		}
		if _, err := tx.Exec(ctx, "UPDATE user_logins SET status = 'active'"); err == nil {
			t.Error("the app could update user_logins")
		}
	})
}
