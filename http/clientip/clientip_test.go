package clientip

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestAddr(t *testing.T) {
	trusted, err := ParsePrefixes("10.0.0.0/8, 192.0.2.7, ::1")
	if err != nil {
		t.Fatal(err)
	}
	f := func(rv *Resolver, remote string, xff []string, want string) {
		t.Helper()
		r := httptest.NewRequest("POST", "/", nil)
		r.RemoteAddr = remote
		for _, v := range xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		got := rv.Addr(r)
		if (want == "" && got.IsValid()) || (want != "" && got.String() != want) {
			t.Errorf("%s %q: got %v, want %q", remote, xff, got, want)
		}
	}
	untrusting := New(nil)
	// Never trusted by default: the header is ignored.
	f(untrusting, "10.1.1.1:5000", []string{"198.51.100.1"}, "10.1.1.1")
	f(&Resolver{}, "203.0.113.5:1", []string{"198.51.100.1"}, "203.0.113.5")
	f(nil, "203.0.113.5:1", []string{"198.51.100.1"}, "203.0.113.5")

	rv := New(trusted)
	f(rv, "10.1.1.1:5000", []string{"198.51.100.1"}, "198.51.100.1")
	f(rv, "192.0.2.7:5000", []string{"198.51.100.1"}, "198.51.100.1")
	f(rv, "[::1]:5000", []string{"2001:db8::5"}, "2001:db8::5")
	// An untrusted peer cannot spoof the header.
	f(rv, "203.0.113.5:1", []string{"198.51.100.1"}, "203.0.113.5")
	// The client's own entries (left) are not believed: the rightmost
	// untrusted one is the client; trusted hops are skipped.
	f(rv, "10.1.1.1:5000", []string{"1.2.3.4, 198.51.100.1, 10.2.2.2"}, "198.51.100.1")
	f(rv, "10.1.1.1:5000", []string{"1.2.3.4", "198.51.100.1"}, "198.51.100.1")
	// Garbage stops the walk at the last vouched-for address.
	f(rv, "10.1.1.1:5000", []string{"198.51.100.1, garbage"}, "10.1.1.1")
	f(rv, "10.1.1.1:5000", nil, "10.1.1.1")
	f(rv, "10.1.1.1:5000", []string{"::ffff:198.51.100.9"}, "198.51.100.9")
	f(rv, "@", nil, "")
}

func TestParsePrefixes(t *testing.T) {
	if _, err := ParsePrefixes("10.0.0.0/8,nonsense"); err == nil {
		t.Error("nonsense accepted")
	}
	if _, err := ParsePrefixes("fe80::1%eth0"); err == nil {
		t.Error("zone accepted")
	}
	p, err := ParsePrefixes(" 10.1.2.3/8 ,, 2001:db8::1 ")
	if err != nil || len(p) != 2 || p[0].String() != "10.0.0.0/8" || p[1].String() != "2001:db8::1/128" {
		t.Errorf("%v %v", p, err)
	}
	if !Contains(p, netip.MustParseAddr("::ffff:10.9.9.9")) {
		t.Error("mapped address not matched")
	}
}

func TestKey(t *testing.T) {
	if k := Key(netip.MustParseAddr("2001:db8:1:2:3:4:5:6")); k != "2001:db8:1:2::/64" {
		t.Error(k)
	}
	if k := Key(netip.MustParseAddr("198.51.100.1")); k != "198.51.100.1" {
		t.Error(k)
	}
}
