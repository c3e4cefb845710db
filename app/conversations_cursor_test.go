package app_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

func TestConversationCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, k := range []projections.ConversationKey{
		{LastActivityAt: time.Date(2026, 3, 1, 9, 0, 0, 123456000, time.UTC), ID: uuid.NewString()},
		{LastActivityAt: time.Unix(0, 0).UTC(), ID: "00000000-0000-0000-0000-000000000000"},
	} {
		c := app.ConversationCursor(k)
		got, err := app.ParseConversationCursor(c)
		if err != nil || got != k {
			t.Fatalf("%+v → %q → %+v, %v", k, c, got, err)
		}
	}
	for _, bad := range []string{"", "x", "AQ", string(make([]byte, 34)), app.ConversationCursor(projections.ConversationKey{ID: uuid.NewString(), LastActivityAt: time.Now()}) + "A"} {
		if _, err := app.ParseConversationCursor(bad); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%q: %v, want EINVALID", bad, err)
		}
	}
}

// FuzzParseConversationCursor: the cursor parser never panics, refuses with EINVALID, and what it
// accepts is exactly the cursor of the key it returns (one cursor per key).
func FuzzParseConversationCursor(f *testing.F) {
	f.Add(app.ConversationCursor(projections.ConversationKey{LastActivityAt: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), ID: "019abc40-0000-7000-8000-00000000c001"}))
	f.Add("")
	f.Add("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("Af__________AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, cursor string) {
		k, err := app.ParseConversationCursor(cursor)
		if err != nil {
			if domain.ErrorCode(err) != domain.EINVALID {
				t.Fatalf("error code %q: %v", domain.ErrorCode(err), err)
			}
			return
		}
		if !domain.IsUUID(k.ID) || k.LastActivityAt.Year() > 9999 || k.LastActivityAt.Before(time.Unix(0, 0)) {
			t.Fatalf("accepted %q as %+v", cursor, k)
		}
		if again := app.ConversationCursor(k); again != cursor {
			t.Fatalf("accepted %q as %+v, whose cursor is %q", cursor, k, again)
		}
	})
}
