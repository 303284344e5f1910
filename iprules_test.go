package peba

import (
	"net/netip"
	"testing"
)

// The expectations are Python 3.11's ipaddress.ip_address(s).is_private.
func TestIsPrivate(t *testing.T) {
	for s, want := range map[string]bool{
		"0.0.0.0":            true,
		"0.255.255.255":      true,
		"10.0.0.1":           true,
		"127.0.0.1":          true,
		"169.254.1.1":        true,
		"172.16.0.1":         true,
		"172.31.255.255":     true,
		"172.32.0.1":         false,
		"192.0.0.7":          true,
		"192.0.0.8":          false,
		"192.0.0.170":        true,
		"192.0.0.171":        true,
		"192.0.0.172":        false,
		"192.0.2.1":          true,
		"192.168.0.1":        true,
		"198.18.0.1":         true,
		"198.19.255.255":     true,
		"198.20.0.1":         false,
		"198.51.100.1":       true,
		"203.0.113.1":        true,
		"240.0.0.1":          true,
		"255.255.255.255":    true,
		"100.64.0.1":         false, // CGNAT: not private in Python <= 3.11 (B-45)
		"100.127.255.255":    false,
		"224.0.0.1":          false, // multicast counts as global (B-45)
		"8.8.8.8":            false,
		"::1":                true,
		"::":                 true,
		"::2":                false,
		"100::1":             true,
		"100:0:0:1::1":       false,
		"2001::1":            true,
		"2001:1ff::1":        true,
		"2001:200::1":        false,
		"2001:db8::1":        true,
		"2001:10::1":         true,
		"fc00::1":            true,
		"fdff::1":            true,
		"fe80::1":            true,
		"fe80::1%eth0":       true,
		"febf::1":            true,
		"fec0::1":            false,
		"ff02::1":            false,
		"2a02:ff0::1":        false,
		"::ffff:10.0.0.1":    true,
		"::ffff:8.8.8.8":     false,
		"::ffff:100.64.0.1":  false,
		"::ffff:192.168.1.1": true,
	} {
		if got := IsPrivate(netip.MustParseAddr(s)); got != want {
			t.Errorf("IsPrivate(%s) = %v, want %v", s, got, want)
		}
	}
	if IsPrivate(netip.Addr{}) {
		t.Error("invalid Addr reported private")
	}
}

// The expectations are Python 3.11's ipaddress.ip_address(s).is_global.
func TestIsGlobal(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8":        true,
		"224.0.0.1":      true, // multicast counts as global in Python
		"100.64.0.1":     false,
		"10.1.2.3":       false,
		"::ffff:8.8.8.8": true,
		"2001:db8::1":    false,
		"2a00:1450::1":   true,
	} {
		if got := IsGlobal(netip.MustParseAddr(s)); got != want {
			t.Errorf("IsGlobal(%s) = %v, want %v", s, got, want)
		}
	}
	if IsGlobal(netip.Addr{}) {
		t.Error("invalid address is global")
	}
}
