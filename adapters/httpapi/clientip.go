package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// client is what the server knows of a request's sender, from the connection and, only when the
// connection comes from a trusted proxy, from that proxy's X-Forwarded-For and X-Forwarded-Proto.
type client struct {
	// addr is the client's address: the TCP peer, or behind trusted proxies the first address of
	// X-Forwarded-For, read from the right, that is not a trusted proxy. Invalid when unknown.
	addr netip.Addr
	// secure reports that the client reached us over TLS: this server's own, or a trusted
	// TLS-terminating proxy's (X-Forwarded-Proto: https).
	secure bool
}

const clientKey ctxKey = iota + 300

// clientOf returns the request's client (set by the client middleware).
func clientOf(r *http.Request) client {
	c, _ := r.Context().Value(clientKey).(client)
	return c
}

// ClientKey returns the key that identifies a client address for rate limits and sign-in backoff:
// an IPv4 address itself, an IPv6 address as its /64 network (one subscriber usually holds a
// whole /64, so its addresses must share a budget), "unknown" for an invalid address.
func ClientKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// ParseTrustedProxies parses a comma-separated list of networks in CIDR notation (a single
// address stands for itself: /32 or /128). Empty input is no trusted proxy.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: not an address or a CIDR network", part)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not an address or a CIDR network", part)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// maxForwardedHops bounds how many X-Forwarded-For entries are read (from the right).
const maxForwardedHops = 32

// resolveClient finds the client of a connection from remoteAddr (the TCP peer, "ip:port") and
// the X-Forwarded-For values, which count only when the peer is a trusted proxy. The entries are
// read from the right, the one the nearest proxy appended first: the first address that is not a
// trusted proxy is the client. Anything to its left was written by the client itself and is
// ignored, so nobody can choose their address by sending the header. An entry that is not an
// address ends the walk at the last trusted hop read.
func resolveClient(remoteAddr string, forwardedFor []string, trusted []netip.Prefix) netip.Addr {
	peer, ok := parseHop(remoteAddr)
	if !ok || !isTrusted(peer, trusted) {
		return peer
	}
	var hops []string
	for _, v := range forwardedFor {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0 && i >= len(hops)-maxForwardedHops; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		client = a
		if !isTrusted(a, trusted) {
			break
		}
	}
	return client
}

// parseHop parses an address as X-Forwarded-For and RemoteAddr write it: "192.0.2.1",
// "2001:db8::1", "192.0.2.1:443" or "[2001:db8::1]:443". IPv4-mapped IPv6 addresses become IPv4;
// zones are dropped.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedHTTPS reports whether a trusted proxy says the client used HTTPS: the first value of
// X-Forwarded-Proto (the scheme the first proxy was reached with) is https.
func forwardedHTTPS(values []string) bool {
	if len(values) == 0 {
		return false
	}
	first, _, _ := strings.Cut(values[0], ",")
	return strings.EqualFold(strings.TrimSpace(first), "https")
}

// clientMiddleware resolves every request's client (clientOf) before anything else runs.
func clientMiddleware(trusted []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := client{addr: resolveClient(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), trusted), secure: r.TLS != nil}
			if !c.secure && len(trusted) > 0 {
				if peer, ok := parseHop(r.RemoteAddr); ok && isTrusted(peer, trusted) {
					c.secure = forwardedHTTPS(r.Header.Values("X-Forwarded-Proto"))
				}
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey, c)))
		})
	}
}
