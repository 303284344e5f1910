package geoip

import (
	"net/netip"
	"testing"

	"github.com/peba-go/peba"
)

func TestCache(t *testing.T) {
	if newCache(0) != nil || newCache(-1) != nil {
		t.Error("size <= 0 must disable the cache")
	}
	var off *cache
	off.put(netip.MustParseAddr("1.2.3.4"), peba.UnknownGeo)
	if _, ok := off.get(netip.MustParseAddr("1.2.3.4")); ok {
		t.Error("nil cache returned a hit")
	}
	c := newCache(5)
	if len(c.slots) != 8 {
		t.Errorf("5 slots rounded to %d, want 8", len(c.slots))
	}
	// Fill far beyond capacity: every hit must be the value stored for
	// that very address (a slot collision must never return another
	// address's data), and the most recent insert is always a hit.
	for i := range 1000 {
		ip := netip.AddrFrom4([4]byte{1, 0, byte(i >> 8), byte(i)})
		g := peba.Geo{Country: "C", Lat: float64(i)}
		c.put(ip, g)
		if got, ok := c.get(ip); !ok || got != g {
			t.Fatalf("just stored %v: got %+v, %v", ip, got, ok)
		}
	}
	hits := 0
	for i := range 1000 {
		ip := netip.AddrFrom4([4]byte{1, 0, byte(i >> 8), byte(i)})
		if got, ok := c.get(ip); ok {
			hits++
			if got.Lat != float64(i) {
				t.Errorf("%v: got data of another address %+v", ip, got)
			}
		}
	}
	if hits == 0 || hits > 8 {
		t.Errorf("%d hits in an 8-slot cache", hits)
	}
}
