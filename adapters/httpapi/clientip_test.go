package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,::ffff:172.16.0.0/108,")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "172.16.0.0/12"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("%d: %v, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.example.com", "10.0.0.0/8;rm", "*"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if p, err := ParseTrustedProxies(""); err != nil || len(p) != 0 {
		t.Errorf("empty: %v %v", p, err)
	}
}

func TestClientKeyGroupsIPv6By64(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                "192.0.2.1",
		"::ffff:192.0.2.1":         "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":     "2001:db8:1:2::/64",
		"2001:db8:1:3::1":          "2001:db8:1:3::/64",
		"fe80::1%eth0":             "fe80::/64",
		"2001:db8:1:2::1%anything": "2001:db8:1:2::/64",
	} {
		a, err := netip.ParseAddr(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := ClientKey(a); got != want {
			t.Errorf("ClientKey(%s) = %s, want %s", in, got, want)
		}
	}
	if got := ClientKey(netip.Addr{}); got != "unknown" {
		t.Errorf("invalid address: %s", got)
	}
}

func TestResolveClient(t *testing.T) {
	trusted, _ := ParseTrustedProxies("10.0.0.0/8, 2001:db8:ffff::/48")
	for _, c := range []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"no proxy: the peer", "198.51.100.7:5555", nil, "198.51.100.7"},
		{"untrusted peer: X-Forwarded-For ignored", "198.51.100.7:5555", []string{"203.0.113.9"}, "198.51.100.7"},
		{"trusted proxy: the hop it appended", "10.1.2.3:443", []string{"203.0.113.9"}, "203.0.113.9"},
		{"trusted proxy: a client-written prefix is ignored", "10.1.2.3:443", []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"chain of trusted proxies", "10.1.2.3:443", []string{"1.2.3.4, 203.0.113.9, 10.9.9.9", "10.8.8.8"}, "203.0.113.9"},
		{"only trusted hops: the leftmost", "10.1.2.3:443", []string{"10.0.0.5, 10.0.0.6"}, "10.0.0.5"},
		{"garbage from the proxy: the last good hop", "10.1.2.3:443", []string{"203.0.113.9, not-an-ip"}, "10.1.2.3"},
		{"IPv6 behind a trusted IPv6 proxy", "[2001:db8:ffff::1]:443", []string{"2001:db8:1:2::99"}, "2001:db8:1:2::99"},
		{"hop with a port", "10.1.2.3:443", []string{"[2001:db8::5]:1234"}, "2001:db8::5"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:443", []string{"203.0.113.9"}, "203.0.113.9"},
		{"empty header", "10.1.2.3:443", []string{""}, "10.1.2.3"},
	} {
		if got := resolveClient(c.remote, c.xff, trusted); got.String() != c.want {
			t.Errorf("%s: %v, want %s", c.name, got, c.want)
		}
	}
	if got := resolveClient("not an address", nil, trusted); got.IsValid() {
		t.Errorf("bad RemoteAddr gave %v", got)
	}
}

// TestForwardedProtoOnlyFromTrustedProxies: X-Forwarded-Proto: https turns HSTS on only when a
// trusted proxy sends it; our own TLS always does.
func TestForwardedProtoOnlyFromTrustedProxies(t *testing.T) {
	trusted, _ := ParseTrustedProxies("10.0.0.0/8")
	var got client
	h := clientMiddleware(trusted)(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = clientOf(r) }))
	for _, c := range []struct {
		remote, proto string
		want          bool
	}{
		{"10.1.1.1:1", "https", true},
		{"10.1.1.1:1", "HTTPS, http", true},
		{"10.1.1.1:1", "http", false},
		{"198.51.100.1:1", "https", false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		r.Header.Set("X-Forwarded-Proto", c.proto)
		h.ServeHTTP(httptest.NewRecorder(), r)
		if got.secure != c.want {
			t.Errorf("%s with %q: secure %v", c.remote, c.proto, got.secure)
		}
	}
}
