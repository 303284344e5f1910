package duckdb

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// TestSortKey checks that cmpSortKey orders as Top does (count descending,
// then key in byte order) on address texts of every kind, including keys
// that share their first 16 bytes.
func TestSortKey(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	key := func() string {
		switch r.IntN(5) {
		case 0:
			return ""
		case 1:
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(r.IntN(3)), 15: byte(r.IntN(300))}).String()
		case 2:
			return "2001:db8:1234:5678::" + strings.Repeat("1", r.IntN(4))
		}
		return netip.AddrFrom4([4]byte{byte(r.IntN(3)), byte(r.IntN(12)), 1, byte(r.IntN(256))}).String()
	}
	for range 20000 {
		a, b := newSortKey(int64(r.IntN(3)), key()), newSortKey(int64(r.IntN(3)), key())
		want := cmp.Compare(b.n, a.n)
		if want == 0 {
			want = strings.Compare(a.key, b.key)
		}
		if got := cmpSortKey(a, b); got != want {
			t.Fatalf("cmpSortKey(%d %q, %d %q) = %d, want %d", a.n, a.key, b.n, b.key, got, want)
		}
	}
}
