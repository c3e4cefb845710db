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

// UsersProjection is the name of the users read model.
const UsersProjection = "users"

// loginEmailSetting is the transaction setting that opens exactly one row of user_logins to
// metachat_app: the row of that email address (see UserProjection).
const loginEmailSetting = "app.login_email"

// UserProjection keeps two tables from the user directory events (user.registered,
// user.role_changed, user.deactivated):
//
//   - users (tenant_id, user_id, email, role, status, created_at, updated_at, version): the
//     tenant's users, read through WithTenant like every tenant table.
//   - user_logins (email, tenant_id, user_id, password_hash, status): what sign-in needs, keyed by
//     the canonical email. Sign-in does not know the tenant yet, so besides the usual tenant policy
//     this table has one more, narrow, read-only policy for metachat_app: a transaction that sets
//     app.login_email sees the one row of that address and nothing else. Row-level security stays
//     forced: without the setting, or with another tenant set, the app sees no foreign row, and
//     nobody can list the table without knowing every address. The email is unique here because
//     the email claim aggregate makes it unique across tenants; a second registration of one
//     address (which the claims prevent) would keep the first row.
type UserProjection struct {
	reg *domain.Registry
}

var _ Projection = (*UserProjection)(nil)

// NewUserProjection returns the users projection, decoding payloads with reg.
func NewUserProjection(reg *domain.Registry) *UserProjection { return &UserProjection{reg: reg} }

// Name implements Projection.
func (*UserProjection) Name() string { return UsersProjection }

// Setup implements Projection.
func (*UserProjection) Setup(ctx context.Context, tx pgx.Tx, schema string) error {
	users := pgx.Identifier{schema, "users"}.Sanitize()
	logins := pgx.Identifier{schema, "user_logins"}.Sanitize()
	app := pgx.Identifier{migrations.AppRole}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE TABLE `+users+` (
		tenant_id  uuid        NOT NULL,
		user_id    uuid        NOT NULL,
		email      text        NOT NULL,
		role       text        NOT NULL,
		status     text        NOT NULL,
		created_at timestamptz NOT NULL,
		updated_at timestamptz NOT NULL,
		version    bigint      NOT NULL,
		PRIMARY KEY (tenant_id, user_id)
	);
	CREATE INDEX users_page ON `+users+` (tenant_id, created_at, user_id);
	CREATE TABLE `+logins+` (
		email         text PRIMARY KEY,
		tenant_id     uuid NOT NULL,
		user_id       uuid NOT NULL,
		password_hash text NOT NULL,
		status        text NOT NULL
	)`); err != nil {
		return fmt.Errorf("create users tables: %w", err)
	}
	for _, t := range []string{"users", "user_logins"} {
		if err := EnableTenantRLS(ctx, tx, schema, t); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `CREATE POLICY login_lookup ON `+logins+` AS PERMISSIVE FOR SELECT TO `+app+
		` USING (email = nullif(current_setting('`+loginEmailSetting+`', true), ''))`); err != nil {
		return fmt.Errorf("create login policy: %w", err)
	}
	return nil
}

// Apply implements Projection. A role change or deactivation of a user the table lacks means the
// stream and the read model disagree, and is an error.
func (p *UserProjection) Apply(ctx context.Context, tx pgx.Tx, schema string, env domain.Envelope) error {
	if env.AggregateType != domain.UserDirectoryAggregate {
		return nil
	}
	switch env.Type {
	case domain.EventUserRegistered, domain.EventUserRoleChanged, domain.EventUserDeactivated:
	default:
		return nil
	}
	ev, err := p.reg.Decode(env)
	if err != nil {
		return fmt.Errorf("decode %s: %w", env.Type, err)
	}
	users := pgx.Identifier{schema, "users"}.Sanitize()
	logins := pgx.Identifier{schema, "user_logins"}.Sanitize()
	seq := int64(env.Sequence)
	switch e := ev.(type) {
	case *domain.UserRegistered:
		at := eventTime(e.RegisteredAt, env)
		if _, err := tx.Exec(ctx, `INSERT INTO `+users+` (tenant_id, user_id, email, role, status, created_at, updated_at, version)
			VALUES ($1, $2, $3, $4, $5, $6, $6, $7)`,
			env.TenantID, e.UserID, e.Email, e.Role, domain.UserStatusActive, at, seq); err != nil {
			return fmt.Errorf("insert user %s: %w", e.UserID, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+logins+` (email, tenant_id, user_id, password_hash, status)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email) DO NOTHING`,
			e.Email, env.TenantID, e.UserID, e.PasswordHash, domain.UserStatusActive); err != nil {
			return fmt.Errorf("insert login of user %s: %w", e.UserID, err)
		}
	case *domain.UserRoleChanged:
		return updateUser(ctx, tx, users, `role = $3`, env.TenantID, e.UserID, e.Role, eventTime(e.ChangedAt, env), seq)
	case *domain.UserDeactivated:
		if err := updateUser(ctx, tx, users, `status = $3`, env.TenantID, e.UserID, domain.UserStatusDeactivated,
			eventTime(e.DeactivatedAt, env), seq); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE `+logins+` SET status = $3 WHERE tenant_id = $1 AND user_id = $2`,
			env.TenantID, e.UserID, domain.UserStatusDeactivated); err != nil {
			return fmt.Errorf("deactivate login of user %s: %w", e.UserID, err)
		}
	}
	return nil
}

// updateUser sets one column (set, using $3) of a user's row with its updated_at ($4) and version
// ($5), and fails when the row does not exist.
func updateUser(ctx context.Context, tx pgx.Tx, users, set, tenantID, userID string, value any, at time.Time, seq int64) error {
	tag, err := tx.Exec(ctx, `UPDATE `+users+` SET `+set+`, updated_at = $4, version = $5
		WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID, value, at, seq)
	if err != nil {
		return fmt.Errorf("update user %s: %w", userID, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("event for unknown user %s of tenant %s", userID, tenantID)
	}
	return nil
}

// User is one row of the users read model.
type User struct {
	TenantID string
	ID       string
	// Email is the canonical (trimmed, lower-cased) address.
	Email string
	// Role is domain.RoleOwner, RoleAdmin or RoleAgent; Status domain.UserStatusActive or
	// UserStatusDeactivated.
	Role   string
	Status string
	// CreatedAt is when the user was registered, UpdatedAt when their last event happened.
	CreatedAt time.Time
	UpdatedAt time.Time
	// Version is the stream sequence of the user's last event.
	Version uint64
}

// UserLogin is one row of user_logins: what sign-in checks.
type UserLogin struct {
	Email        string
	TenantID     string
	UserID       string
	PasswordHash string
	Status       string
}

// Users reads the users read model.
type Users struct {
	db Beginner
}

// NewUsers returns the users reader on db, the app pool (metachat_app).
func NewUsers(db Beginner) *Users { return &Users{db: db} }

const userColumns = `tenant_id::text, user_id::text, email, role, status, created_at, updated_at, version`

func scanUser(row pgx.Row) (User, error) {
	var (
		u       User
		version int64
	)
	err := row.Scan(&u.TenantID, &u.ID, &u.Email, &u.Role, &u.Status, &u.CreatedAt, &u.UpdatedAt, &version)
	u.Version = uint64(version)
	return u, err
}

// Get returns one user of a tenant, read through WithTenant. A user that does not exist, belongs
// to another tenant, or an id that is not a UUID, is ENOTFOUND.
func (u *Users) Get(ctx context.Context, tenantID, userID string) (User, error) {
	return getOne(ctx, u.db, tenantID, userID, "User not found.", scanUser,
		`SELECT `+userColumns+` FROM public.users WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID)
}

// List returns at most limit users of a tenant in the order of (created_at, user_id), after the
// user (afterCreatedAt, afterID) when afterID is not empty.
func (u *Users) List(ctx context.Context, tenantID string, afterCreatedAt time.Time, afterID string, limit int) ([]User, error) {
	var out []User
	err := WithTenant(ctx, u.db, tenantID, func(tx pgx.Tx) error {
		var (
			rows pgx.Rows
			err  error
		)
		if afterID == "" {
			rows, err = tx.Query(ctx, `SELECT `+userColumns+` FROM public.users WHERE tenant_id = $1
				ORDER BY created_at, user_id LIMIT $2`, tenantID, limit)
		} else {
			rows, err = tx.Query(ctx, `SELECT `+userColumns+` FROM public.users WHERE tenant_id = $1
				AND (created_at, user_id) > ($2, $3::uuid) ORDER BY created_at, user_id LIMIT $4`,
				tenantID, afterCreatedAt, afterID, limit)
		}
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list users of %s: %w", tenantID, err)
	}
	return out, nil
}

// Login returns the sign-in row of a canonical email address, from any tenant: the transaction
// sets app.login_email, which makes that one row (and no other) visible to metachat_app. An
// unknown address is ENOTFOUND.
func (u *Users) Login(ctx context.Context, email string) (UserLogin, error) {
	var out UserLogin
	err := withLookupSetting(ctx, u.db, loginEmailSetting, email, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT email, tenant_id::text, user_id::text, password_hash, status
			FROM public.user_logins WHERE email = $1`, email).
			Scan(&out.Email, &out.TenantID, &out.UserID, &out.PasswordHash, &out.Status)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return UserLogin{}, domain.Errorf(domain.ENOTFOUND, "Unknown email address.")
	}
	if err != nil {
		return UserLogin{}, fmt.Errorf("look up login: %w", err)
	}
	return out, nil
}

// withLookupSetting runs fn in a transaction in which the setting name (one of the narrow lookup
// policies' settings) holds value for that transaction only, like WithTenant does for the tenant.
func withLookupSetting(ctx context.Context, db Beginner, name, value string, fn func(pgx.Tx) error) error {
	if value == "" {
		return pgx.ErrNoRows
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return &domain.Error{Code: domain.EUNAVAILABLE, Message: "The database is unavailable.",
			Err: fmt.Errorf("begin lookup transaction: %w", err)}
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT set_config($1, $2, true)", name, value); err != nil {
		return fmt.Errorf("set %s of transaction: %w", name, err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit lookup transaction: %w", err)
	}
	return nil
}
