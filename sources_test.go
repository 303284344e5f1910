package peba

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

// SortSourcesByAddr gives exactly the stable netip.Addr.Compare order.
func TestSortSourcesByAddr(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var srcs []Source
	for i := range 5000 {
		var a netip.Addr
		switch r.IntN(10) {
		case 0:
			a = netip.AddrFrom16([16]byte{0x2a, 0x00, byte(r.IntN(4)), 15: byte(r.IntN(256))})
		case 1:
			a = netip.Addr{} // invalid: first in Compare order
		default:
			a = netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(3)), 7, byte(r.IntN(256))})
		}
		srcs = append(srcs, Source{Addr: a, Count: int64(i)}) // Count tells equal addresses apart
	}
	want := slices.Clone(srcs)
	slices.SortStableFunc(want, func(a, b Source) int { return a.Addr.Compare(b.Addr) })
	SortSourcesByAddr(srcs)
	if !reflect.DeepEqual(srcs, want) {
		t.Fatal("order differs from stable netip.Addr.Compare")
	}
	SortSourcesByAddr(nil)
}
