package peba

import (
	"net/netip"
	"testing"
)

// TestIsGlobal4MatchesTable checks isGlobal4's switch against the tables
// it spells out (privateNets, sharedNet) on every first two bytes, with
// the third and fourth bytes at and around every edge of those tables.
func TestIsGlobal4MatchesTable(t *testing.T) {
	thirds := []byte{0, 1, 2, 3, 99, 100, 101, 112, 113, 114, 255}
	fourths := []byte{0, 1, 7, 8, 9, 169, 170, 171, 172, 254, 255}
	for ab := 0; ab < 1<<16; ab++ {
		for _, c := range thirds {
			for _, d := range fourths {
				a := [4]byte{byte(ab >> 8), byte(ab), c, d}
				ip := netip.AddrFrom4(a)
				want := !IsPrivate(ip) && !sharedNet.Contains(ip)
				if got := isGlobal4(a); got != want {
					t.Fatalf("isGlobal4(%v) = %v, table says %v", ip, got, want)
				}
			}
		}
	}
}

func BenchmarkIsGlobal(b *testing.B) {
	ips := make([]netip.Addr, 4096)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{byte(i * 7), byte(i * 13), byte(i), byte(i * 3)})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		IsGlobal(ips[i%len(ips)])
	}
}
