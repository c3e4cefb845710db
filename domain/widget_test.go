package domain_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

func TestNormalizeOrigin(t *testing.T) {
	good := map[string]string{
		"https://Example.COM":        "https://example.com",
		"https://example.com/":       "https://example.com",
		"https://example.com:443":    "https://example.com",
		"http://example.com:80":      "http://example.com",
		"http://127.0.0.1:8080":      "http://127.0.0.1:8080",
		"http://[::1]:3000":          "http://[::1]:3000",
		"https://shop.example.co.uk": "https://shop.example.co.uk",
		"https://xn--bcher-kva.ch":   "https://xn--bcher-kva.ch",
	}
	for in, want := range good {
		got, ok := domain.NormalizeOrigin(in)
		if !ok || got != want {
			t.Errorf("NormalizeOrigin(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	bad := []string{
		"", "*", "null", "example.com", "ftp://example.com", "javascript:alert(1)", "https://example.com/path",
		"https://example.com?x=1", "https://example.com#f", "https://user:pw@example.com", "https://",
		"https://exa mple.com", "https://example.com:0", "https://example.com:99999", "https://example.com:",
		"https://-bad.example.com", "https://example..com", "https://example.com.", "https://ex_ample.com",
		"https://example.com:08080", "data:text/html,hi", "https://" + strings.Repeat("a", 260) + ".com",
	}
	for _, in := range bad {
		if got, ok := domain.NormalizeOrigin(in); ok {
			t.Errorf("NormalizeOrigin(%q) = %q, accepted", in, got)
		}
	}
}

func FuzzNormalizeOrigin(f *testing.F) {
	for _, s := range []string{"https://example.com", "http://[::1]:80", "https://a.b:443/", "x", "https://ü.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := domain.NormalizeOrigin(s)
		if !ok {
			return
		}
		// A normalised origin is a fixed point and has the documented shape.
		again, ok2 := domain.NormalizeOrigin(got)
		if !ok2 || again != got {
			t.Fatalf("NormalizeOrigin(%q) = %q, which normalises to %q, %v", s, got, again, ok2)
		}
		_, rest, found := strings.Cut(got, "://")
		if !found || !strings.HasPrefix(got, "http") || strings.ContainsAny(rest, "/?#@ ") {
			t.Fatalf("NormalizeOrigin(%q) = %q: not an origin", s, got)
		}
	})
}

func TestWidgetSettingsNormalize(t *testing.T) {
	s, err := domain.WidgetSettings{
		Name: "  Support ", AllowedOrigins: []string{"https://B.example.com", "https://a.example.com:443", "https://b.example.com"},
		Colors: domain.WidgetColors{Primary: "#ABCDEF"}, Greeting: " Hi ",
	}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "Support" || s.Greeting != "Hi" || s.Position != domain.WidgetBottomRight {
		t.Errorf("normalised to %+v", s)
	}
	if !slices.Equal(s.AllowedOrigins, []string{"https://a.example.com", "https://b.example.com"}) {
		t.Errorf("origins %v", s.AllowedOrigins)
	}
	if s.Colors != (domain.WidgetColors{Primary: "#abcdef", Background: domain.DefaultWidgetBackground, Text: domain.DefaultWidgetText}) {
		t.Errorf("colors %+v", s.Colors)
	}
	if !s.AllowsOrigin("https://A.example.com") || s.AllowsOrigin("https://c.example.com") || s.AllowsOrigin("") {
		t.Error("AllowsOrigin is wrong")
	}

	_, err = domain.WidgetSettings{
		Name: "", AllowedOrigins: []string{"https://ok.example.com", "*"},
		Colors:   domain.WidgetColors{Primary: "red", Background: "#12345", Text: "#1234567"},
		Greeting: strings.Repeat("x", domain.MaxWidgetGreetingLen+1), Position: "top",
	}.Normalize()
	var e *domain.Error
	if !errors.As(err, &e) || e.Code != domain.EINVALID {
		t.Fatalf("got %v, want EINVALID", err)
	}
	var got []string
	for _, f := range e.Fields {
		got = append(got, f.Field)
	}
	want := []string{"name", "greeting", "position", "colors.primary", "colors.background", "colors.text", "allowed_origins[1]"}
	if !slices.Equal(got, want) {
		t.Errorf("fields %v, want %v", got, want)
	}
	if _, err := (domain.WidgetSettings{Name: "x"}).Normalize(); err == nil {
		t.Error("no origins accepted")
	}
}

func TestWidgetDecider(t *testing.T) {
	d := domain.WidgetDecider()
	at := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	id := "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5c20"
	settings := domain.WidgetSettings{Name: "Site", AllowedOrigins: []string{"https://example.com"}}
	evs, err := d.Decide(d.Initial(), domain.CreateWidget{WidgetID: id, Settings: settings, At: at})
	if err != nil || len(evs) != 1 {
		t.Fatalf("create: %v %v", evs, err)
	}
	s := d.Fold(evs)
	if !s.Exists || s.Settings.Position != domain.WidgetBottomRight {
		t.Fatalf("state %+v", s)
	}
	if _, err := d.Decide(s, domain.CreateWidget{WidgetID: id, Settings: settings, At: at}); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Errorf("second create: %v", err)
	}
	if evs, err := d.Decide(s, domain.CreateWidget{WidgetID: id, Settings: settings, At: at, Idempotent: true}); err != nil || len(evs) != 0 {
		t.Errorf("idempotent create: %v %v", evs, err)
	}
	if evs, err := d.Decide(s, domain.UpdateWidget{Settings: settings, At: at}); err != nil || len(evs) != 0 {
		t.Errorf("unchanged update decided %v %v", evs, err)
	}
	changed := settings
	changed.Position = domain.WidgetBottomLeft
	evs, err = d.Decide(s, domain.UpdateWidget{Settings: changed, At: at.Add(time.Hour)})
	if err != nil || len(evs) != 1 {
		t.Fatalf("update: %v %v", evs, err)
	}
	if s = d.Evolve(s, evs[0]); s.Settings.Position != domain.WidgetBottomLeft || !s.UpdatedAt.Equal(at.Add(time.Hour)) {
		t.Errorf("after update %+v", s)
	}
	if _, err := d.Decide(d.Initial(), domain.UpdateWidget{Settings: settings, At: at}); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("update of missing widget: %v", err)
	}
	if _, err := d.Decide(d.Initial(), domain.CreateWidget{WidgetID: "nope", Settings: settings, At: at}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("bad id: %v", err)
	}
}

func TestContactWritesOnlyInOwnConversation(t *testing.T) {
	d := domain.ConversationDecider()
	at := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	evs, err := d.Decide(d.Initial(), domain.StartConversation{
		ConversationID: "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5c30", Channel: domain.ChannelWeb,
		Contact: domain.Contact{ExternalID: "visitor-a"}, At: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := d.Fold(evs)
	send := func(author string, cmid string) error {
		_, err := d.Decide(s, domain.SendMessage{
			MessageID: "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5c31", Text: "hi", ClientMessageID: cmid,
			Author: domain.Author{Type: domain.AuthorContact, ID: author}, At: at,
		})
		return err
	}
	if err := send("visitor-a", "m1"); err != nil {
		t.Errorf("own contact refused: %v", err)
	}
	if err := send("visitor-b", "m1"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("other contact: %v, want ENOTFOUND", err)
	}
}
