package domain

import (
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// WidgetAggregate is the aggregate type name of web chat widgets: one aggregate per widget, under
// its tenant.
const WidgetAggregate = "widget"

// Stored event type names of the widget aggregate. Never change them.
const (
	EventWidgetCreated = "widget.created"
	EventWidgetUpdated = "widget.updated"
)

// Widget positions on the host page.
const (
	WidgetBottomRight = "bottom-right"
	WidgetBottomLeft  = "bottom-left"
)

// Limits and defaults of widget settings.
const (
	MaxWidgetNameLen     = 100
	MaxWidgetGreetingLen = 500
	MaxWidgetOrigins     = 20
	maxWidgetOriginLen   = 255
	// DefaultWidgetPrimary, DefaultWidgetBackground and DefaultWidgetText are the colours of a
	// widget that sets none.
	DefaultWidgetPrimary    = "#2563eb"
	DefaultWidgetBackground = "#ffffff"
	DefaultWidgetText       = "#111827"
)

// WidgetColors are a widget's theme colours, each "#rrggbb".
type WidgetColors struct {
	Primary    string `json:"primary"`
	Background string `json:"background"`
	Text       string `json:"text"`
}

// WidgetSettings are everything a tenant configures about a widget. Every value that reaches a
// page is validated on the way in (see WidgetSettings.Normalize).
type WidgetSettings struct {
	Name           string       `json:"name"`
	AllowedOrigins []string     `json:"allowed_origins"`
	Colors         WidgetColors `json:"colors"`
	Greeting       string       `json:"greeting"`
	Position       string       `json:"position"`
	// IdentityVerification makes visitor sessions prove the visitor's user id with an HMAC from
	// the tenant's server.
	IdentityVerification bool `json:"identity_verification"`
	// AssistantEnabled is whether the widget's new conversations start with the assistant on.
	AssistantEnabled bool `json:"assistant_enabled"`
}

// WidgetCreated records a new widget with its settings.
type WidgetCreated struct {
	WidgetID  string         `json:"widget_id"`
	Settings  WidgetSettings `json:"settings"`
	CreatedAt time.Time      `json:"created_at"`
}

// EventType implements Event.
func (*WidgetCreated) EventType() string { return EventWidgetCreated }

// WidgetUpdated records a widget's new settings, in full.
type WidgetUpdated struct {
	Settings  WidgetSettings `json:"settings"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// EventType implements Event.
func (*WidgetUpdated) EventType() string { return EventWidgetUpdated }

// WidgetEventDefs returns the registry definitions of the widget aggregate's events.
func WidgetEventDefs() []EventDef {
	return []EventDef{
		{Type: EventWidgetCreated, Version: 1, New: func() Event { return new(WidgetCreated) }},
		{Type: EventWidgetUpdated, Version: 1, New: func() Event { return new(WidgetUpdated) }},
	}
}

// WidgetRef returns the aggregate of a widget.
func WidgetRef(tenantID, widgetID string) AggregateRef {
	return AggregateRef{TenantID: tenantID, Type: WidgetAggregate, ID: widgetID}
}

// Widget is the decided state of one widget.
type Widget struct {
	ID        string
	Settings  WidgetSettings
	CreatedAt time.Time
	UpdatedAt time.Time
	Exists    bool
}

// WidgetCommand is a command addressed to the widget aggregate.
type WidgetCommand interface{ widgetCommand() }

// CreateWidget creates a widget. Creating one that exists is ECONFLICT, unless Idempotent (a
// retried create with the same Idempotency-Key), which then changes nothing.
type CreateWidget struct {
	WidgetID   string
	Settings   WidgetSettings
	Idempotent bool
	At         time.Time
}

// UpdateWidget replaces a widget's settings; settings equal to the current ones change nothing.
type UpdateWidget struct {
	Settings WidgetSettings
	At       time.Time
}

func (CreateWidget) widgetCommand() {}
func (UpdateWidget) widgetCommand() {}

// WidgetDecider is the widget aggregate's behaviour.
func WidgetDecider() Decider[Widget, WidgetCommand] {
	return Decider[Widget, WidgetCommand]{
		AggregateType: WidgetAggregate,
		Initial:       func() Widget { return Widget{} },
		Evolve:        evolveWidget,
		Decide:        decideWidget,
	}
}

func evolveWidget(s Widget, e Event) Widget {
	switch e := e.(type) {
	case *WidgetCreated:
		s = Widget{ID: e.WidgetID, Settings: e.Settings, CreatedAt: e.CreatedAt, UpdatedAt: e.CreatedAt, Exists: true}
	case *WidgetUpdated:
		s.Settings, s.UpdatedAt = e.Settings, e.UpdatedAt
	}
	return s
}

func decideWidget(s Widget, c WidgetCommand) ([]Event, error) {
	switch c := c.(type) {
	case CreateWidget:
		if s.Exists {
			if c.Idempotent {
				return nil, nil
			}
			return nil, Errorf(ECONFLICT, "The widget already exists.")
		}
		if !IsUUID(c.WidgetID) {
			return nil, Invalid("Invalid widget.", FieldError{Field: "id", Message: "must be a UUID"})
		}
		settings, err := c.Settings.Normalize()
		if err != nil {
			return nil, err
		}
		return []Event{&WidgetCreated{WidgetID: c.WidgetID, Settings: settings, CreatedAt: convTime(c.At)}}, nil
	case UpdateWidget:
		if !s.Exists {
			return nil, Errorf(ENOTFOUND, "Widget not found.")
		}
		settings, err := c.Settings.Normalize()
		if err != nil {
			return nil, err
		}
		if settings.Equal(s.Settings) {
			return nil, nil
		}
		return []Event{&WidgetUpdated{Settings: settings, UpdatedAt: convTime(c.At)}}, nil
	default:
		return nil, Errorf(EINVALID, "Unknown widget command.")
	}
}

// Equal reports whether two normalised settings are the same.
func (w WidgetSettings) Equal(o WidgetSettings) bool {
	return w.Name == o.Name && slices.Equal(w.AllowedOrigins, o.AllowedOrigins) && w.Colors == o.Colors &&
		w.Greeting == o.Greeting && w.Position == o.Position &&
		w.IdentityVerification == o.IdentityVerification && w.AssistantEnabled == o.AssistantEnabled
}

// AllowsOrigin reports whether origin (as a browser sends it) is one of the widget's allowed
// origins.
func (w WidgetSettings) AllowsOrigin(origin string) bool {
	o, ok := NormalizeOrigin(origin)
	return ok && slices.Contains(w.AllowedOrigins, o)
}

var hexColor = regexp.MustCompile(`^#[0-9a-f]{6}$`)

// Normalize checks every setting and returns them in canonical form: the name and greeting
// trimmed, origins lower-case without default ports, duplicates dropped and sorted, colours
// lower-case with defaults for empty ones, and the default position. Every problem is reported
// as a field error (EINVALID).
func (w WidgetSettings) Normalize() (WidgetSettings, error) {
	var fields []FieldError
	bad := func(field, msg string) { fields = append(fields, FieldError{Field: field, Message: msg}) }
	w.Name = strings.TrimSpace(w.Name)
	if msg := convLineProblem(w.Name, MaxWidgetNameLen, false); msg != "" {
		bad("name", msg)
	}
	w.Greeting = strings.TrimSpace(w.Greeting)
	if msg := convTextProblem(w.Greeting, MaxWidgetGreetingLen, true, true); msg != "" {
		bad("greeting", msg)
	}
	switch w.Position {
	case "":
		w.Position = WidgetBottomRight
	case WidgetBottomRight, WidgetBottomLeft:
	default:
		bad("position", "must be bottom-right or bottom-left")
	}
	colors := []struct {
		field string
		v     *string
		def   string
	}{
		{"colors.primary", &w.Colors.Primary, DefaultWidgetPrimary},
		{"colors.background", &w.Colors.Background, DefaultWidgetBackground},
		{"colors.text", &w.Colors.Text, DefaultWidgetText},
	}
	for _, c := range colors {
		*c.v = strings.ToLower(strings.TrimSpace(*c.v))
		if *c.v == "" {
			*c.v = c.def
		} else if !hexColor.MatchString(*c.v) {
			bad(c.field, "must be a hex colour like #1a2b3c")
		}
	}
	switch n := len(w.AllowedOrigins); {
	case n == 0:
		bad("allowed_origins", "must list at least one origin")
	case n > MaxWidgetOrigins:
		bad("allowed_origins", "must list at most "+strconv.Itoa(MaxWidgetOrigins)+" origins")
	}
	origins := make([]string, 0, len(w.AllowedOrigins))
	for i, o := range w.AllowedOrigins {
		n, ok := NormalizeOrigin(o)
		if !ok {
			bad("allowed_origins["+strconv.Itoa(i)+"]", "must be an origin: http(s)://host[:port], without path, query or credentials")
			continue
		}
		origins = append(origins, n)
	}
	slices.Sort(origins)
	w.AllowedOrigins = slices.Compact(origins)
	if len(fields) > 0 {
		return WidgetSettings{}, Invalid("Invalid widget settings.", fields...)
	}
	return w, nil
}

// NormalizeOrigin returns an origin in canonical form ("scheme://host[:port]", lower-case, the
// default port dropped) and whether s is one: http or https, a host, an optional port, and
// nothing else (no path beyond "/", query, fragment or credentials).
func NormalizeOrigin(s string) (string, bool) {
	if s == "" || len(s) > maxWidgetOriginLen || !utf8.ValidString(s) || strings.ContainsAny(s, " \t\r\n\\") {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" ||
		(u.Path != "" && u.Path != "/") {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || strings.HasSuffix(host, ".") {
		return "", false
	}
	if ip := net.ParseIP(host); ip == nil && !validHostname(host) {
		return "", false
	}
	port := u.Port()
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return "", false
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "", false
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port, true
	}
	return scheme + "://" + host, true
}

// validHostname reports whether h is a DNS name of letters, digits, hyphens and dots (IDNs in
// their ASCII form).
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}
