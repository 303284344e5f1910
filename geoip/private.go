package geoip

import (
	"net/netip"

	"github.com/peba-go/peba"
)

// IsPrivate reports whether ip is private by Python 3.11's
// ipaddress.is_private, the rule PEBA uses for "PIR" (peba.md §6, B-45). The
// table lives in the domain package (peba.IsPrivate), shared with the API's
// bad-IP lists.
func IsPrivate(ip netip.Addr) bool { return peba.IsPrivate(ip) }
