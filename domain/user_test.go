package domain_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

func TestUserDirectoryDecider(t *testing.T) {
	d := domain.UserDirectoryDecider()
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	const (
		owner  = "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5a01"
		owner2 = "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5a02"
		admin  = "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5a03"
		agent  = "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5a04"
		newID  = "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5a05"
		hash   = "$argon2id$v=19$m=32768,t=2,p=1$c2FsdA$aGFzaA"
	)
	reg := func(id, email, role string) *domain.UserRegistered {
		return &domain.UserRegistered{UserID: id, Email: email, Role: role, PasswordHash: hash, RegisteredAt: at}
	}
	base := []domain.Event{
		reg(owner, "owner@example.com", domain.RoleOwner),
		reg(admin, "admin@example.com", domain.RoleAdmin),
		reg(agent, "agent@example.com", domain.RoleAgent),
	}
	twoOwners := append(append([]domain.Event{}, base...), reg(owner2, "owner2@example.com", domain.RoleAdmin),
		&domain.UserRoleChanged{UserID: owner2, Role: domain.RoleOwner, ChangedAt: at})
	deactivatedAgent := append(append([]domain.Event{}, base...), &domain.UserDeactivated{UserID: agent, DeactivatedAt: at})
	invite := func(actor, email, role string) domain.RegisterUser {
		return domain.RegisterUser{UserID: newID, Email: email, Role: role, PasswordHash: hash, ActorUserID: actor, At: at}
	}
	role := func(actor, target, r string) domain.ChangeUserRole {
		return domain.ChangeUserRole{UserID: target, Role: r, ActorUserID: actor, At: at}
	}
	deactivate := func(actor, target string) domain.DeactivateUser {
		return domain.DeactivateUser{UserID: target, ActorUserID: actor, At: at}
	}
	tests := []struct {
		name     string
		history  []domain.Event
		cmd      domain.UserCommand
		want     []domain.Event
		wantCode string
	}{
		{"sign-up registers the first owner", nil,
			domain.RegisterUser{UserID: owner, Email: " Owner@Example.com", Role: domain.RoleOwner, PasswordHash: hash, At: at},
			[]domain.Event{reg(owner, "owner@example.com", domain.RoleOwner)}, ""},
		{"sign-up as an agent", nil,
			domain.RegisterUser{UserID: owner, Email: "o@example.com", Role: domain.RoleAgent, PasswordHash: hash, At: at}, nil, domain.EFORBIDDEN},
		{"no actor once the tenant has users", base,
			domain.RegisterUser{UserID: newID, Email: "x@example.com", Role: domain.RoleOwner, PasswordHash: hash, At: at}, nil, domain.EFORBIDDEN},
		{"owner invites an admin", base, invite(owner, "new@example.com", domain.RoleAdmin), []domain.Event{reg(newID, "new@example.com", domain.RoleAdmin)}, ""},
		{"admin invites an agent", base, invite(admin, "new@example.com", domain.RoleAgent), []domain.Event{reg(newID, "new@example.com", domain.RoleAgent)}, ""},
		{"admin invites an admin", base, invite(admin, "new@example.com", domain.RoleAdmin), []domain.Event{reg(newID, "new@example.com", domain.RoleAdmin)}, ""},
		{"nobody invites an owner", base, invite(owner, "new@example.com", domain.RoleOwner), nil, domain.EFORBIDDEN},
		{"agent cannot invite", base, invite(agent, "new@example.com", domain.RoleAgent), nil, domain.EFORBIDDEN},
		{"unknown actor cannot invite", base, invite(newID, "new@example.com", domain.RoleAgent), nil, domain.EFORBIDDEN},
		{"deactivated admin cannot invite", append(append([]domain.Event{}, base...), &domain.UserDeactivated{UserID: admin, DeactivatedAt: at}),
			invite(admin, "new@example.com", domain.RoleAgent), nil, domain.EFORBIDDEN},
		{"invite an existing id", base, domain.RegisterUser{UserID: agent, Email: "agent@example.com", Role: domain.RoleAgent, PasswordHash: hash, ActorUserID: owner, At: at}, nil, domain.ECONFLICT},
		{"invite an existing email", base, invite(owner, "Agent@example.com", domain.RoleAgent), nil, domain.ECONFLICT},
		{"invite with a bad role", base, invite(owner, "new@example.com", "root"), nil, domain.EINVALID},
		{"invite with a bad email", base, invite(owner, "new", domain.RoleAgent), nil, domain.EINVALID},
		{"invite with a clear-text password", base,
			domain.RegisterUser{UserID: newID, Email: "n@example.com", Role: domain.RoleAgent, PasswordHash: "hunter2hunter2", ActorUserID: owner, At: at}, nil, domain.EINVALID},

		{"owner promotes an agent", base, role(owner, agent, domain.RoleAdmin), []domain.Event{&domain.UserRoleChanged{UserID: agent, Role: domain.RoleAdmin, ChangedAt: at}}, ""},
		{"owner makes an admin an owner", base, role(owner, admin, domain.RoleOwner), []domain.Event{&domain.UserRoleChanged{UserID: admin, Role: domain.RoleOwner, ChangedAt: at}}, ""},
		{"admin promotes an agent to admin", base, role(admin, agent, domain.RoleAdmin), []domain.Event{&domain.UserRoleChanged{UserID: agent, Role: domain.RoleAdmin, ChangedAt: at}}, ""},
		{"admin cannot change an owner", base, role(admin, owner, domain.RoleAgent), nil, domain.EFORBIDDEN},
		{"admin cannot make an owner", base, role(admin, agent, domain.RoleOwner), nil, domain.EFORBIDDEN},
		{"agent cannot change roles", base, role(agent, agent, domain.RoleAdmin), nil, domain.EFORBIDDEN},
		{"the last owner cannot be demoted", base, role(owner, owner, domain.RoleAdmin), nil, domain.ECONFLICT},
		{"one of two owners can be demoted", twoOwners, role(owner, owner2, domain.RoleAdmin), []domain.Event{&domain.UserRoleChanged{UserID: owner2, Role: domain.RoleAdmin, ChangedAt: at}}, ""},
		{"same role changes nothing", base, role(owner, agent, domain.RoleAgent), nil, ""},
		{"role of a missing user", base, role(owner, newID, domain.RoleAgent), nil, domain.ENOTFOUND},
		{"role of a deactivated user", deactivatedAgent, role(owner, agent, domain.RoleAdmin), nil, domain.ECONFLICT},
		{"bad role", base, role(owner, agent, "root"), nil, domain.EINVALID},

		{"owner deactivates an agent", base, deactivate(owner, agent), []domain.Event{&domain.UserDeactivated{UserID: agent, DeactivatedAt: at}}, ""},
		{"admin deactivates an agent", base, deactivate(admin, agent), []domain.Event{&domain.UserDeactivated{UserID: agent, DeactivatedAt: at}}, ""},
		{"admin cannot deactivate an owner", base, deactivate(admin, owner), nil, domain.EFORBIDDEN},
		{"the last owner cannot be deactivated", base, deactivate(owner, owner), nil, domain.ECONFLICT},
		{"one of two owners can be deactivated", twoOwners, deactivate(owner2, owner), []domain.Event{&domain.UserDeactivated{UserID: owner, DeactivatedAt: at}}, ""},
		{"deactivating twice changes nothing", deactivatedAgent, deactivate(owner, agent), nil, ""},
		{"deactivate a missing user", base, deactivate(owner, newID), nil, domain.ENOTFOUND},
		{"agent cannot deactivate", base, deactivate(agent, admin), nil, domain.EFORBIDDEN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Decide(d.Fold(tt.history), tt.cmd)
			if code := domain.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("error code %q (%v), want %q", code, err, tt.wantCode)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("events %#v, want %#v", got, tt.want)
			}
		})
	}
	s := d.Fold(twoOwners)
	if s.ActiveOwners() != 2 || s.Users[owner2].Role != domain.RoleOwner || s.Users[agent].Status != domain.UserStatusActive {
		t.Errorf("folded state %+v", s)
	}
	s = d.Fold(deactivatedAgent)
	if s.Users[agent].Status != domain.UserStatusDeactivated || s.ActiveOwners() != 1 {
		t.Errorf("folded state %+v", s)
	}
}
