package peba

import "net/netip"

// privateNets is Python's ipaddress "is_private" table as of Python 3.11,
// which PEBA ran on: it decides PEBA's "PIR" GeoIP answer (peba.md §6 step 3)
// and which addresses bad-IP lists show (§3.3, B-45). It is spelled out
// rather than taken from net/netip, which follows RFC 6890 differently:
// 100.64.0.0/10 (CGNAT) is NOT private here, 240.0.0.0/4 and the
// documentation ranges are. Python 3.12 changed the table; we keep PEBA's.
// Python's ::ffff:0:0/96 entry is left out because IsPrivate unmaps those
// addresses and classifies them as IPv4, as PEBA's callers see them.
var privateNets = [...]netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/29"),
	netip.MustParsePrefix("192.0.0.170/31"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("255.255.255.255/32"),

	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001::/23"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2001:10::/28"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// sharedNet (RFC 6598 CGNAT) is neither private nor global in Python 3.11.
var sharedNet = netip.MustParsePrefix("100.64.0.0/10")

// IsPrivate reports Python 3.11's ipaddress.is_private, PEBA's rule.
// IPv4-mapped IPv6 addresses are unmapped first and IPv6 zones are ignored.
// An invalid Addr is not private.
func IsPrivate(ip netip.Addr) bool {
	// Prefix.Contains is false for any zoned address, so drop the zone.
	ip = ip.Unmap().WithZone("")
	for _, p := range privateNets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// IsGlobal reports Python 3.11's ipaddress.is_global for the addresses
// PEBA's bad-IP lists and querySingleIP accept: valid, not private and not
// in 100.64.0.0/10. Multicast counts as global, as in Python.
func IsGlobal(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return isGlobal4(ip.As4())
	}
	return ip.IsValid() && !IsPrivate(ip) && !sharedNet.Contains(ip)
}

// isGlobal4 is IsGlobal of an IPv4 address: privateNets' IPv4 part and
// sharedNet as a switch on the first bytes. retrieveIPs asks for each of
// its ~12,000 addresses, and going through the table (14 Prefix.Contains)
// was a fifth of the handler's CPU. TestIsGlobal4MatchesTable compares the
// two.
func isGlobal4(a [4]byte) bool {
	switch a[0] {
	case 0, 10, 127: // 0.0.0.0/8, 10.0.0.0/8, 127.0.0.0/8
		return false
	case 100: // 100.64.0.0/10 (shared)
		return a[1]&0xc0 != 64
	case 169: // 169.254.0.0/16
		return a[1] != 254
	case 172: // 172.16.0.0/12
		return a[1]&0xf0 != 16
	case 192:
		switch {
		case a[1] == 168: // 192.168.0.0/16
			return false
		case a[1] == 0 && a[2] == 0: // 192.0.0.0/29, 192.0.0.170/31
			return a[3] >= 8 && a[3]&^1 != 170
		case a[1] == 0 && a[2] == 2: // 192.0.2.0/24
			return false
		}
		return true
	case 198: // 198.18.0.0/15, 198.51.100.0/24
		return a[1]&^1 != 18 && (a[1] != 51 || a[2] != 100)
	case 203: // 203.0.113.0/24
		return a[1] != 0 || a[2] != 113
	}
	return a[0] < 240 // 240.0.0.0/4 and 255.255.255.255/32
}
