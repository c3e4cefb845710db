package app_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

func TestUserManagementRules(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	ctx := t.Context()
	res := h.signup(t, "owner@acme.example")
	owner := h.principal(t, res.Token.Token)
	admin := h.invite(t, owner, "admin@acme.example", domain.RoleAdmin)
	adminP := h.login(t, "admin@acme.example")
	agent := h.invite(t, adminP, "agent@acme.example", domain.RoleAgent)
	agentP := h.login(t, "agent@acme.example")
	if admin.Role != domain.RoleAdmin || admin.Status != domain.UserStatusActive || agent.Email != "agent@acme.example" || agent.CreatedAt.IsZero() {
		t.Fatalf("invited %+v and %+v", admin, agent)
	}
	other := h.signup(t, "owner@globex.example")
	otherOwner := h.principal(t, other.Token.Token)

	code := func(err error) string { return domain.ErrorCode(err) }
	invite := func(p domain.Principal, email, role string) error {
		_, _, err := h.id.InviteUser(ctx, p, app.InviteUserInput{Email: email, Role: role, Password: identityTestPassword})
		return err
	}
	setRole := func(p domain.Principal, userID, role string) error {
		_, _, err := h.id.UpdateUserRole(ctx, p, userID, role)
		return err
	}
	deactivate := func(p domain.Principal, userID string) error {
		_, err := h.id.DeactivateUser(ctx, p, userID)
		return err
	}
	checks := []struct {
		name string
		err  error
		want string
	}{
		{"nobody is invited as an owner", invite(owner, "o2@acme.example", domain.RoleOwner), domain.EFORBIDDEN},
		{"an agent cannot invite", invite(agentP, "x@acme.example", domain.RoleAgent), domain.EFORBIDDEN},
		{"an API key cannot invite", invite(domain.Principal{TenantID: res.TenantID, APIKeyID: uuid.NewString(), Role: domain.RoleAPIKey}, "y@acme.example", domain.RoleAgent), domain.EFORBIDDEN},
		{"an invalid role", invite(owner, "z@acme.example", "root"), domain.EINVALID},
		{"an admin cannot demote an owner", setRole(adminP, res.UserID, domain.RoleAgent), domain.EFORBIDDEN},
		{"an admin cannot make an owner", setRole(adminP, agent.ID, domain.RoleOwner), domain.EFORBIDDEN},
		{"an admin cannot deactivate an owner", deactivate(adminP, res.UserID), domain.EFORBIDDEN},
		{"the last owner cannot be demoted", setRole(owner, res.UserID, domain.RoleAdmin), domain.ECONFLICT},
		{"the last owner cannot be deactivated", deactivate(owner, res.UserID), domain.ECONFLICT},
		{"another tenant's user is not found (role)", setRole(otherOwner, agent.ID, domain.RoleAdmin), domain.ENOTFOUND},
		{"another tenant's user is not found (deactivate)", deactivate(otherOwner, agent.ID), domain.ENOTFOUND},
		{"a missing user is not found", setRole(owner, uuid.NewString(), domain.RoleAdmin), domain.ENOTFOUND},
		{"a malformed id is not found", deactivate(owner, "nope"), domain.ENOTFOUND},
	}
	for _, c := range checks {
		if got := code(c.err); got != c.want {
			t.Errorf("%s: %q (%v), want %q", c.name, got, c.err, c.want)
		}
	}
	// A refused invitation leaves no claim: the address stays free.
	if err := invite(owner, "o2@acme.example", domain.RoleAdmin); err != nil {
		t.Errorf("invite after a refused invitation of the same address: %v", err)
	}

	// A role change applies to the user's next request, with the same token.
	agentToken, err := h.id.Login(ctx, app.LoginInput{Email: "agent@acme.example", Password: identityTestPassword})
	if err != nil {
		t.Fatal(err)
	}
	u, seq, err := h.id.UpdateUserRole(ctx, adminP, agent.ID, domain.RoleAdmin)
	if err != nil || u.Role != domain.RoleAdmin || seq == 0 {
		t.Fatalf("promote agent: %+v %d %v", u, seq, err)
	}
	if p := h.principal(t, agentToken.Token); p.Role != domain.RoleAdmin {
		t.Errorf("after promotion the token's principal is %s", p.Role)
	}

	// Two owners: now one may step down.
	if err := setRole(owner, admin.ID, domain.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if err := setRole(owner, res.UserID, domain.RoleAdmin); err != nil {
		t.Errorf("demote one of two owners: %v", err)
	}

	// Deactivation: the token fails on the next request, login fails, repeating succeeds.
	if err := deactivate(adminP, agent.ID); err != nil {
		t.Fatal(err)
	}
	h.refused(t, agentToken.Token, "a deactivated user's token")
	if _, err := h.id.Login(ctx, app.LoginInput{Email: "agent@acme.example", Password: identityTestPassword}); code(err) != domain.EUNAUTHORIZED {
		t.Errorf("deactivated login: %v", err)
	}
	if err := deactivate(adminP, agent.ID); err != nil {
		t.Errorf("deactivate twice: %v", err)
	}
	if err := setRole(owner, agent.ID, domain.RoleAgent); code(err) != domain.ECONFLICT {
		t.Errorf("role of a deactivated user: %v, want conflict", err)
	}
}

func TestListUsersPages(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	ctx := t.Context()
	res := h.signup(t, "owner@pages.example")
	owner := h.principal(t, res.Token.Token)
	want := []string{res.UserID}
	for _, e := range []string{"a@pages.example", "b@pages.example", "c@pages.example", "d@pages.example"} {
		want = append(want, h.invite(t, owner, e, domain.RoleAgent).ID)
	}
	h.signup(t, "owner@elsewhere.example") // another tenant's user is never listed

	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := h.id.ListUsers(ctx, owner, app.ListUsersInput{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > 2 || pages > 3 {
			t.Fatalf("page %d has %d items", pages, len(page.Items))
		}
		for _, u := range page.Items {
			got = append(got, u.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(got) != len(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for n := range want {
		if got[n] != want[n] {
			t.Fatalf("listed %v, want %v (oldest first)", got, want)
		}
	}
	if _, err := h.id.ListUsers(ctx, owner, app.ListUsersInput{Cursor: "garbage"}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("bad cursor: %v", err)
	}
	if _, err := h.id.ListUsers(ctx, owner, app.ListUsersInput{Limit: 201}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("limit 201: %v", err)
	}
	agent := h.login(t, "a@pages.example")
	if _, err := h.id.ListUsers(ctx, agent, app.ListUsersInput{}); domain.ErrorCode(err) != domain.EFORBIDDEN {
		t.Errorf("agent lists users: %v", err)
	}
}

func TestInviteIdempotency(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	ctx := t.Context()
	res := h.signup(t, "owner@idem.example")
	owner := h.principal(t, res.Token.Token)
	in := app.InviteUserInput{Email: "new@idem.example", Role: domain.RoleAgent, Password: identityTestPassword, IdempotencyKey: "invite-1"}
	first, seq1, err := h.id.InviteUser(ctx, owner, in)
	if err != nil {
		t.Fatal(err)
	}
	again, seq2, err := h.id.InviteUser(ctx, owner, in)
	if err != nil || again != first || seq2 < seq1 {
		t.Fatalf("retry: %+v %d %v, want %+v", again, seq2, err, first)
	}
	in.Email = "other@idem.example"
	if _, _, err := h.id.InviteUser(ctx, owner, in); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Errorf("same key, other email: %v, want conflict", err)
	}
	// The same key in another tenant is another invitation.
	other := h.principal(t, h.signup(t, "owner@idem2.example").Token.Token)
	in.Email = "third@idem.example"
	u, _, err := h.id.InviteUser(ctx, other, in)
	if err != nil || u.ID == first.ID {
		t.Errorf("same key in another tenant: %+v %v", u, err)
	}
	page, err := h.id.ListUsers(ctx, owner, app.ListUsersInput{})
	if err != nil || len(page.Items) != 2 {
		t.Errorf("users after retries: %+v %v, want the owner and one invitee", page.Items, err)
	}
}

// TestTwoOwnersCannotBothStepDown: two owners stepping down at the same moment cannot leave
// the tenant without an owner, because every user change of a tenant is decided on one aggregate.
func TestTwoOwnersCannotBothStepDown(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	ctx := t.Context()
	res := h.signup(t, "first@owners.example")
	first := h.principal(t, res.Token.Token)
	second := h.invite(t, first, "second@owners.example", domain.RoleAdmin)
	if _, _, err := h.id.UpdateUserRole(ctx, first, second.ID, domain.RoleOwner); err != nil {
		t.Fatal(err)
	}
	secondP := h.login(t, "second@owners.example")
	errs := make(chan error, 2)
	// Each steps down at once: one of them must stay.
	go func() { _, _, err := h.id.UpdateUserRole(ctx, first, res.UserID, domain.RoleAdmin); errs <- err }()
	go func() { _, _, err := h.id.UpdateUserRole(ctx, secondP, second.ID, domain.RoleAgent); errs <- err }()
	var ok, conflict int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case domain.ErrorCode(err) == domain.ECONFLICT:
			conflict++
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 || conflict != 1 {
		t.Errorf("%d succeeded, %d refused; want exactly one of each", ok, conflict)
	}
	events, _, err := h.Store.Load(ctx, domain.UserDirectoryRef(res.TenantID), 0)
	if err != nil {
		t.Fatal(err)
	}
	d := domain.UserDirectoryDecider()
	state := d.Initial()
	for _, env := range events {
		ev, err := h.Registry.Decode(env)
		if err != nil {
			t.Fatal(err)
		}
		state = d.Evolve(state, ev)
	}
	if n := state.ActiveOwners(); n != 1 {
		t.Errorf("%d active owners after the race, want 1", n)
	}
}
