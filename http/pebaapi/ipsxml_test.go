package pebaapi

import (
	"strconv"
	"testing"
)

// TestIPsXML checks that ipsXML writes what xmlDoc writes for the same
// answer: empty, one address, several, and text that needs escaping.
func TestIPsXML(t *testing.T) {
	for _, list := range [][]ipCount{
		nil,
		{{Count: 1, IP: "203.0.113.7"}},
		{{Count: 12345, IP: "1.0.0.0"}, {Count: 2, IP: "2001:db8::1"}, {Count: 1, IP: "a<b&c>"}, {Count: -1, IP: ""}},
	} {
		src := elem("Sources")
		for _, e := range list {
			src.kids = append(src.kids, elem("Source", leaf("Address", e.IP), leaf("Count", strconv.FormatInt(e.Count, 10))))
		}
		want := string(xmlDoc(elem("EWSSimpleIPInfo", src)))
		if got := string(ipsXML(list)); got != want {
			t.Errorf("ipsXML(%v) =\n%s\nwant\n%s", list, got, want)
		}
	}
}

// BenchmarkIPsXML writes an answer of retrieveIPs' size on 10M events.
func BenchmarkIPsXML(b *testing.B) {
	list := make([]ipCount, 12000)
	for i := range list {
		list[i] = ipCount{Count: int64(1 + i%3), IP: "185." + strconv.Itoa(i%256) + "." + strconv.Itoa(i/256) + ".17"}
	}
	b.ReportAllocs()
	for b.Loop() {
		ipsXML(list)
	}
}
