package storetest

import (
	"context"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// SourcesStore is a store that also lists source addresses (blocklists).
type SourcesStore interface {
	peba.Store
	peba.SourceLister
}

// RunSources runs the peba.SourceLister contract suite against a store
// filled with sourceEvents. open must return a new, empty store and arrange
// (with t.Cleanup) for it to be closed.
//
// Beyond the peba.SourceLister doc comment, the suite pins down:
//   - addresses tie-break numerically, not in text order: 9.0.0.1 before
//     11.0.0.1, and every IPv4 address before any IPv6 one;
//   - a Limit that cuts through a group of equal counts keeps the
//     numerically smallest addresses of the group;
//   - events without a valid source address are never listed;
//   - GlobalOnly drops private and shared (100.64.0.0/10) addresses before
//     Limit applies;
//   - First and Last are on the window's time field, in UTC.
func RunSources(t *testing.T, open func(testing.TB) SourcesStore) {
	s := open(t)
	mustAppend(t, s, sourceEvents()...)
	ctx := context.Background()
	h := time.Hour
	day1 := peba.Window{Domains: onlyComm, From: statsDay, To: statsAt(24 * h)}
	src := func(ip string, n int64, first, last time.Duration) peba.Source {
		return peba.Source{Addr: netip.MustParseAddr(ip), Count: n, First: statsAt(first), Last: statsAt(last)}
	}
	// The community sources of day 1, in contract order.
	ip1234 := src("1.2.3.4", 2, 1*h, 2*h)
	ip9 := src("9.0.0.1", 2, 3*h, 4*h)
	ip11 := src("11.0.0.1", 2, 5*h, 6*h)
	ip6 := src("2a00:1450::1", 2, 7*h, 8*h)
	ip5678 := src("5.6.7.8", 1, 11*h, 11*h)
	ipShared := src("100.64.0.1", 1, 10*h, 10*h)
	ipLAN := src("192.168.1.5", 1, 9*h, 9*h)

	for _, c := range []struct {
		name string
		w    peba.Window
		q    peba.SourceQuery
		want []peba.Source
	}{
		{"day 1 community", day1, peba.SourceQuery{},
			[]peba.Source{ip1234, ip9, ip11, ip6, ip5678, ipShared, ipLAN}},
		{"global only", day1, peba.SourceQuery{GlobalOnly: true},
			[]peba.Source{ip1234, ip9, ip11, ip6, ip5678}},
		{"min count", day1, peba.SourceQuery{MinCount: 2},
			[]peba.Source{ip1234, ip9, ip11, ip6}},
		{"min count above all", day1, peba.SourceQuery{MinCount: 3}, nil},
		// 11.0.0.1 sorts before 9.0.0.1 as text; the limit must not keep it.
		{"limit cuts a tie numerically", day1, peba.SourceQuery{Limit: 2},
			[]peba.Source{ip1234, ip9}},
		{"limit past the count group", day1, peba.SourceQuery{Limit: 6},
			[]peba.Source{ip1234, ip9, ip11, ip6, ip5678, ipShared}},
		{"global only before limit", day1, peba.SourceQuery{GlobalOnly: true, Limit: 5},
			[]peba.Source{ip1234, ip9, ip11, ip6, ip5678}},
		{"peer type", peba.Window{Domains: onlyComm, PeerType: cowrie}, peba.SourceQuery{},
			[]peba.Source{ip1234, ip11}},
		{"private", peba.Window{Domains: onlyPriv}, peba.SourceQuery{},
			[]peba.Source{src("8.8.4.4", 5, 1*h, 5*h), src("1.2.3.4", 1, 12*h, 12*h)}},
		{"both domains, all time", peba.Window{Domains: bothDomains}, peba.SourceQuery{MinCount: 3},
			[]peba.Source{src("8.8.4.4", 5, 1*h, 5*h), src("1.2.3.4", 4, 1*h, 30*h)}},
		// The day-2 event of 1.2.3.4 was created on day 1.
		{"created time", peba.Window{Domains: onlyComm, Field: peba.Created, From: statsDay, To: statsAt(24 * h)}, peba.SourceQuery{MinCount: 3},
			[]peba.Source{{Addr: netip.MustParseAddr("1.2.3.4"), Count: 3, First: statsAt(1*h - time.Minute), Last: statsAt(24*h - time.Minute)}}},
		{"no domains", peba.Window{}, peba.SourceQuery{}, nil},
		{"empty window", peba.Window{Domains: onlyComm, From: statsAt(h), To: statsAt(h)}, peba.SourceQuery{}, nil},
	} {
		got, err := s.Sources(ctx, c.w, c.q)
		if err != nil {
			t.Fatalf("%s: Sources: %v", c.name, err)
		}
		if (len(got) != 0 || len(c.want) != 0) && !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Sources =\n  %v\nwant\n  %v", c.name, got, c.want)
		}
		for _, g := range got {
			if g.First.Location() != time.UTC || g.Last.Location() != time.UTC {
				t.Errorf("%s: %s: times not in UTC", c.name, g.Addr)
			}
		}
	}
}

// sourceEvents is the data set of RunSources. Each event is created one
// minute before it is received, except the day-2 event of 1.2.3.4.
func sourceEvents() []peba.Event {
	h := time.Hour
	ev := func(id string, d peba.Domain, recv time.Duration, ptype, src string) peba.Event {
		return sev(id, d, statsAt(recv), statsAt(recv-time.Minute), ptype, "ident-"+id, "host", "172.20.0.2", 22, "", src, geoDE, geoDst)
	}
	C, P := peba.DomainCommunity, peba.DomainPrivate
	evs := []peba.Event{
		ev("s01", C, 1*h, cowrie, "1.2.3.4"),
		ev("s02", C, 2*h, cowrie, "1.2.3.4"),
		ev("s03", C, 30*h, web, "1.2.3.4"),
		ev("s04", C, 3*h, dionaea, "9.0.0.1"),
		ev("s05", C, 4*h, dionaea, "9.0.0.1"),
		ev("s06", C, 5*h, cowrie, "11.0.0.1"),
		ev("s07", C, 6*h, cowrie, "11.0.0.1"),
		ev("s08", C, 7*h, web, "2a00:1450::1"),
		ev("s09", C, 8*h, web, "2a00:1450::1"),
		ev("s10", C, 9*h, web, "192.168.1.5"),
		ev("s11", C, 10*h, web, "100.64.0.1"),
		ev("s12", C, 11*h, web, "5.6.7.8"),
		ev("s13", P, 12*h, web, "1.2.3.4"),
		ev("s14", C, 13*h, web, "1.2.3.4"), // without an address, below
	}
	evs[2].CreateTime = statsAt(24*h - time.Minute)
	evs[13].SrcIP = netip.Addr{}
	for i := range 5 {
		evs = append(evs, ev("p0"+string(rune('1'+i)), P, time.Duration(i+1)*h, dionaea, "8.8.4.4"))
	}
	return evs
}
