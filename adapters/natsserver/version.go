package natsserver

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// MinServerVersion is the oldest nats-server Metachat works with: it needs atomic batch publish.
const MinServerVersion = "2.12.0"

// VersionError reports a NATS server older than Metachat needs.
type VersionError struct {
	// Version is the server's version.
	Version string
	// URL is the (redacted) URL of the server.
	URL string
	// Min is the minimum version required.
	Min string
}

// Error implements error.
func (e *VersionError) Error() string {
	return fmt.Sprintf("NATS server %s at %s: Metachat needs nats-server %s or newer for atomic batch publish; "+
		"upgrade it or unset NATS_URL to use the embedded server", e.Version, e.URL, e.Min)
}

// CheckServerVersion returns a *VersionError when the server nc is connected to is older than
// min, a semantic version such as "2.12" or "2.12.0".
func CheckServerVersion(nc *nats.Conn, min string) error {
	want, err := parseVersion(min)
	if err != nil {
		return fmt.Errorf("check NATS server version: minimum: %w", err)
	}
	got := nc.ConnectedServerVersion()
	if got == "" {
		return fmt.Errorf("check NATS server version: not connected")
	}
	have, err := parseVersion(got)
	if err != nil {
		return fmt.Errorf("check NATS server version at %s: %w", nc.ConnectedUrlRedacted(), err)
	}
	if have.compare(want) < 0 {
		return &VersionError{Version: got, URL: nc.ConnectedUrlRedacted(), Min: min}
	}
	return nil
}

// version is a parsed semantic version; build metadata is ignored.
type version struct {
	core [3]int
	pre  []string // pre-release identifiers; empty for a release
}

func parseVersion(s string) (version, error) {
	var v version
	rest := strings.TrimPrefix(strings.TrimSpace(s), "v")
	rest, _, _ = strings.Cut(rest, "+")
	rest, pre, hasPre := strings.Cut(rest, "-")
	parts := strings.Split(rest, ".")
	if len(parts) > 3 {
		return v, fmt.Errorf("malformed version %q", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, fmt.Errorf("malformed version %q", s)
		}
		v.core[i] = n
	}
	if hasPre {
		if pre == "" {
			return v, fmt.Errorf("malformed version %q", s)
		}
		v.pre = strings.Split(pre, ".")
	}
	return v, nil
}

// compare returns -1, 0 or +1 following semantic versioning precedence.
func (v version) compare(w version) int {
	for i := range v.core {
		if v.core[i] != w.core[i] {
			return cmp.Compare(v.core[i], w.core[i])
		}
	}
	switch {
	case len(v.pre) == 0 && len(w.pre) == 0:
		return 0
	case len(v.pre) == 0:
		return 1
	case len(w.pre) == 0:
		return -1
	}
	for i := 0; i < len(v.pre) && i < len(w.pre); i++ {
		a, b := v.pre[i], w.pre[i]
		an, aErr := strconv.Atoi(a)
		bn, bErr := strconv.Atoi(b)
		switch {
		case aErr == nil && bErr == nil:
			if an != bn {
				return cmp.Compare(an, bn)
			}
		case aErr == nil:
			return -1 // numeric identifiers sort before alphanumeric ones
		case bErr == nil:
			return 1
		case a != b:
			return strings.Compare(a, b)
		}
	}
	return cmp.Compare(len(v.pre), len(w.pre))
}
