// Package clientip decides which address a request came from. Behind a TLS
// reverse proxy every request arrives from the proxy; the proxy's
// X-Forwarded-For names the client, but any client can send that header
// too, so it is believed only from configured proxies (TRUSTEDPROXIES,
// never trusted by default; docs/deployment.md "Reverse proxy").
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds the client address of a request. The zero value trusts no
// proxy and returns the peer address.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a resolver that believes X-Forwarded-For from peers inside
// the trusted prefixes.
func New(trusted []netip.Prefix) *Resolver { return &Resolver{trusted: trusted} }

// ParsePrefixes parses comma-separated CIDRs or single addresses (a single
// address is its /32 or /128).
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("cannot parse %q: want a CIDR such as 10.0.0.0/8 or an address", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Contains reports whether a is inside one of prefixes.
func Contains(prefixes []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// maxHops bounds how much of an attacker-supplied X-Forwarded-For is read.
const maxHops = 16

// Addr returns the client address of r: the peer address, or, when the
// peer is a trusted proxy, the rightmost X-Forwarded-For entry that is not
// itself a trusted proxy (entries left of it were written by the client and
// prove nothing). It returns the zero Addr if the peer address is not an IP
// (a unix socket).
func (rv *Resolver) Addr(r *http.Request) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if rv == nil || len(rv.trusted) == 0 || !Contains(rv.trusted, peer) {
		return peer
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i, n := len(hops)-1, 0; i >= 0 && n < maxHops; i, n = i-1, n+1 {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// A garbled entry ends what can be believed: the last address
			// vouched for by a trusted hop is the client.
			break
		}
		client = a.Unmap()
		if !Contains(rv.trusted, client) {
			break
		}
	}
	return client
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}

// Key is the rate-limit key of a: the address itself for IPv4, the /64 for
// IPv6 (one host usually holds a whole /64 and could otherwise rotate
// through fresh buckets).
func Key(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
