package eventstore

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Open to zero-valued Config fields.
const (
	DefaultStream           = "METACHAT_EVENTS"
	DefaultReplicas         = 1
	DefaultDuplicateWindow  = 2 * time.Minute
	DefaultMinServerVersion = "2.12.0"
)

// maxReplicas is JetStream's highest replica count.
const maxReplicas = 5

// Config configures the JetStream event store.
type Config struct {
	// Stream is the name of the JetStream stream holding every event. Default DefaultStream.
	Stream string
	// SubjectPrefix is the first token(s) of every event subject. Default DefaultSubjectPrefix.
	SubjectPrefix string
	// Replicas is the stream's replica count, 1 to 5. Default DefaultReplicas.
	Replicas int
	// DuplicateWindow is how long the server remembers event ids to drop re-sent events.
	// Default DefaultDuplicateWindow.
	DuplicateWindow time.Duration
	// MinServerVersion is the oldest nats-server Open accepts (atomic batch publish needs 2.12).
	// Default DefaultMinServerVersion.
	MinServerVersion string
	// Logger receives the store's diagnostics. Nil discards them.
	Logger *slog.Logger
	// Now is the clock stamping events appended without an OccurredAt. Default time.Now.
	Now func() time.Time
	// Metrics, when set (NewMetrics), receive the append latency, conflicts, duplicates and
	// errors. Nil records no metrics.
	Metrics *Metrics
}

func (c *Config) setDefaults() {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.MinServerVersion == "" {
		c.MinServerVersion = DefaultMinServerVersion
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration, with defaults applied to zero values.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if strings.ContainsAny(c.Stream, ".*>/\\ \t\r\n") {
		errs = append(errs, fmt.Errorf("stream name %q must not contain '.', '*', '>', slashes or whitespace", c.Stream))
	}
	if err := validPrefix(c.SubjectPrefix); err != nil {
		errs = append(errs, err)
	}
	if c.Replicas < 1 || c.Replicas > maxReplicas {
		errs = append(errs, fmt.Errorf("replicas %d out of range 1-%d", c.Replicas, maxReplicas))
	}
	if c.DuplicateWindow < 0 {
		errs = append(errs, fmt.Errorf("duplicate window %v is negative", c.DuplicateWindow))
	}
	if _, err := parseVersion(c.MinServerVersion); err != nil {
		errs = append(errs, fmt.Errorf("minimum server version: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid eventstore config: %w", err)
	}
	return nil
}

// semver is a parsed "major.minor.patch[-pre][+build]" version.
type semver struct {
	major, minor, patch int
	pre                 string
}

// parseVersion parses a server version such as "2.12.0", "v2.10.4" or "2.12.0-RC.1".
func parseVersion(s string) (semver, error) {
	v := strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexByte(v, '+'); i >= 0 {
		v = v[:i]
	}
	var out semver
	if i := strings.IndexByte(v, '-'); i >= 0 {
		out.pre, v = v[i+1:], v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return semver{}, fmt.Errorf("version %q is not major.minor.patch", s)
	}
	nums := [3]*int{&out.major, &out.minor, &out.patch}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return semver{}, fmt.Errorf("version %q is not major.minor.patch", s)
		}
		*nums[i] = n
	}
	return out, nil
}

// less reports whether v is an older version than w. A pre-release is older than its release.
func (v semver) less(w semver) bool {
	switch {
	case v.major != w.major:
		return v.major < w.major
	case v.minor != w.minor:
		return v.minor < w.minor
	case v.patch != w.patch:
		return v.patch < w.patch
	case v.pre == w.pre:
		return false
	case v.pre == "":
		return false
	case w.pre == "":
		return true
	}
	return v.pre < w.pre
}

// short returns "major.minor" when the patch is 0, else "major.minor.patch".
func (v semver) short() string {
	if v.patch == 0 && v.pre == "" {
		return fmt.Sprintf("%d.%d", v.major, v.minor)
	}
	s := fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch)
	if v.pre != "" {
		s += "-" + v.pre
	}
	return s
}
