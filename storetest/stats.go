package storetest

import (
	"context"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// StatsStore is a store that also answers the statistics queries.
type StatsStore interface {
	peba.Store
	peba.Stats
}

// RunStats runs the peba.Stats contract suite. open must return a new, empty
// store for each call and arrange (with t.Cleanup) for it to be closed. Each
// subtest fills the store with statsEvents and checks exact results.
//
// Beyond the peba.Stats doc comments, the suite pins down:
//   - Top orders ties by key in byte order ("2222" before "445", "" first);
//   - a country Label is the name most frequent with the code in the window;
//   - Series returns points ordered by Start, then Key, and a dim with an
//     empty key set gives no points; an unsupported width is peba.EINVALID;
//   - Latest with limit <= 0 returns no events; src matches IPv6 by value;
//   - Sensors treats hostname "undefined" as "group by target address";
//     its order is not part of the contract (the suite sorts).
func RunStats(t *testing.T, open func(testing.TB) StatsStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, StatsStore)
	}{
		{"Count", testStatsCount},
		{"Top", testStatsTop},
		{"Series", testStatsSeries},
		{"Latest", testStatsLatest},
		{"Sensors", testStatsSensors},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			mustAppend(t, s, statsEvents()...)
			tt.fn(t, s)
		})
	}
}

// statsDay is the first UTC day of statsEvents.
var statsDay = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

// statsAt returns statsDay + d.
func statsAt(d time.Duration) time.Time { return statsDay.Add(d) }

const (
	cowrie  = "SSH/console(cowrie)"
	web     = "Webpage"
	dionaea = "Network(Dionaea)"
)

var (
	onlyComm    = []peba.Domain{peba.DomainCommunity}
	onlyPriv    = []peba.Domain{peba.DomainPrivate}
	bothDomains = []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}

	geoDE  = peba.Geo{Country: "DE", CountryName: "Germany", ASN: "AS3320", Lat: 51.2993, Lon: 9.491}
	geoUS  = peba.Geo{Country: "US", CountryName: "USA", ASN: "AS15169", Lat: 37.751, Lon: -97.822}
	geoFR  = peba.Geo{Country: "FR", CountryName: "France", ASN: "AS3215", Lat: 48.8582, Lon: 2.3387}
	geoDst = peba.Geo{Country: "DE", CountryName: "Germany", ASN: "AS3320", Lat: 50.1, Lon: 8.6}
	geoNL  = peba.Geo{Country: "NL", CountryName: "Netherlands", ASN: "AS1136", Lat: 52.37, Lon: 4.89}
	geoPIR = peba.Geo{Country: "PIR", CountryName: "IANA Private IP Range", ASN: "IANA"}
)

// sev builds one event of statsEvents.
func sev(id string, d peba.Domain, recv, created time.Time, ptype, ident, host, dst string, dport int32, url, src string, sg, dg peba.Geo) peba.Event {
	return peba.Event{
		ID: id, Domain: d, Submitter: "u", Origin: "ews",
		ReceivedTime: recv, CreateTime: created,
		PeerType: ptype, PeerIdent: ident, Hostname: host,
		SrcIP: netip.MustParseAddr(src), SrcPort: 40000, DstIP: netip.MustParseAddr(dst), DstPort: dport,
		Transport: "tcp", URL: url, Src: sg, Dst: dg,
	}
}

// statsEvents is the fixed data set of RunStats: 8 community events (e01-e08)
// and 3 private ones (e09-e11) over three UTC days. The comments give the
// facts the expectations below are computed from.
func statsEvents() []peba.Event {
	h, m, s := time.Hour, time.Minute, time.Second
	deDeutsch := geoDE
	deDeutsch.CountryName = "Deutschland"
	usLong := geoUS
	usLong.CountryName = "United States"
	unknown := peba.UnknownGeo // location 0/0
	return []peba.Event{
		sev("e01", peba.DomainCommunity, statsAt(10*m), statsAt(9*m), cowrie, "cowrie-a", "h1", "172.20.0.2", 22, "", "1.2.3.4", geoDE, geoDst),
		// created the day before it was received
		sev("e02", peba.DomainCommunity, statsAt(50*m), statsAt(-5*m), cowrie, "cowrie-a", "h1", "172.20.0.2", 22, "", "1.2.3.4", geoDE, geoDst),
		// last microsecond of the first 6h bucket
		sev("e03", peba.DomainCommunity, statsAt(6*h-time.Microsecond), statsAt(5*h+59*m), web, "glastopf-1", "h1", "172.20.0.2", 80, "/wp-login.php", "2001:db8::5", geoUS, geoDst),
		sev("e04", peba.DomainCommunity, statsAt(6*h), statsAt(6*h), web, "glastopf-2", "h2", "172.20.0.9", 80, "/", "5.6.7.8", unknown, geoNL),
		sev("e05", peba.DomainCommunity, statsAt(13*h+20*m), statsAt(13*h+19*m), dionaea, "dionaea-1", "undefined", "172.20.0.3", peba.NoPort, "", "1.2.3.4", geoDE, geoDst),
		// created (sensor clock) on the next day
		sev("e06", peba.DomainCommunity, statsAt(24*h-s), statsAt(24*h+30*s), dionaea, "dionaea-2", "undefined", "172.20.0.3", 445, "", "9.9.9.9", geoUS, geoDst),
		// received exactly at midnight of day 2, created on day 1
		sev("e07", peba.DomainCommunity, statsAt(24*h), statsAt(24*h-2*s), web, "glastopf-1", "h1", "172.20.0.2", 80, "/", "2001:db8::5", usLong, geoDst),
		sev("e08", peba.DomainCommunity, statsAt(36*h+30*m), statsAt(36*h+29*m), cowrie, "cowrie-b", "undefined", "172.20.0.4", 2222, "", "1.2.3.4", deDeutsch, geoDst),
		sev("e09", peba.DomainPrivate, statsAt(2*h), statsAt(2*h-m), cowrie, "cowrie-p", "ph", "192.168.1.2", 22, "", "1.2.3.4", geoDE, geoPIR),
		sev("e10", peba.DomainPrivate, statsAt(27*h), statsAt(27*h-m), web, "glastopf-p", "ph", "192.168.1.2", 8080, "/admin", "203.0.113.9", geoFR, geoPIR),
		sev("e11", peba.DomainPrivate, statsAt(58*h), statsAt(58*h-m), dionaea, "dionaea-p", "undefined", "192.168.1.3", peba.NoPort, "", "203.0.113.9", geoFR, geoPIR),
	}
}

func testStatsCount(t *testing.T, s StatsStore) {
	ctx := context.Background()
	day2 := statsAt(24 * time.Hour)
	berlin := time.FixedZone("CEST", 2*3600)
	for _, c := range []struct {
		name string
		w    peba.Window
		want int64
	}{
		{"community", peba.Window{Domains: onlyComm}, 8},
		{"private", peba.Window{Domains: onlyPriv}, 3},
		{"bothDomains", peba.Window{Domains: bothDomains}, 11},
		{"no domains means none", peba.Window{}, 0},
		{"no domains with filters", peba.Window{Domains: []peba.Domain{}, From: statsDay}, 0},
		{"received statsDay 1", peba.Window{Domains: bothDomains, From: statsDay, To: day2}, 7},
		{"received statsDay 1 community", peba.Window{Domains: onlyComm, From: statsDay, To: day2}, 6},
		{"created statsDay 1", peba.Window{Domains: bothDomains, Field: peba.Created, From: statsDay, To: day2}, 6},
		{"created statsDay 1 community", peba.Window{Domains: onlyComm, Field: peba.Created, From: statsDay, To: day2}, 5},
		{"From inclusive", peba.Window{Domains: onlyComm, From: statsAt(6 * time.Hour)}, 5},
		{"From one microsecond earlier", peba.Window{Domains: onlyComm, From: statsAt(6*time.Hour - time.Microsecond)}, 6},
		{"To exclusive", peba.Window{Domains: onlyComm, To: statsAt(6 * time.Hour)}, 3},
		{"From in another zone", peba.Window{Domains: onlyComm, From: time.Date(2024, 6, 1, 8, 0, 0, 0, berlin)}, 5},
		{"peer type", peba.Window{Domains: bothDomains, PeerType: web}, 4},
		{"peer type community", peba.Window{Domains: onlyComm, PeerType: web}, 3},
		{"peer type unknown", peba.Window{Domains: bothDomains, PeerType: "nope"}, 0},
	} {
		got, err := s.Count(ctx, c.w)
		if err != nil {
			t.Fatalf("%s: Count: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: Count = %d, want %d", c.name, got, c.want)
		}
	}
}

func testStatsTop(t *testing.T, s StatsStore) {
	ctx := context.Background()
	created1 := peba.Window{Domains: onlyComm, Field: peba.Created, From: statsDay, To: statsAt(24 * time.Hour)}
	for _, c := range []struct {
		name  string
		w     peba.Window
		dim   peba.Dim
		limit int
		want  []peba.Bucket
	}{
		{"peer type", peba.Window{Domains: onlyComm}, peba.DimPeerType, 0,
			[]peba.Bucket{bkt(cowrie, "", 3), bkt(web, "", 3), bkt(dionaea, "", 2)}},
		{"peer type limit", peba.Window{Domains: onlyComm}, peba.DimPeerType, 2,
			[]peba.Bucket{bkt(cowrie, "", 3), bkt(web, "", 3)}},
		{"peer type by create time", created1, peba.DimPeerType, 0,
			[]peba.Bucket{bkt(web, "", 3), bkt(dionaea, "", 1), bkt(cowrie, "", 1)}},
		{"no domains", peba.Window{}, peba.DimPeerType, 0, nil},
		{"src ip", peba.Window{Domains: onlyComm}, peba.DimSrcIP, 0,
			[]peba.Bucket{bkt("1.2.3.4", "", 4), bkt("2001:db8::5", "", 2), bkt("5.6.7.8", "", 1), bkt("9.9.9.9", "", 1)}},
		{"src ip private", peba.Window{Domains: onlyPriv}, peba.DimSrcIP, 0,
			[]peba.Bucket{bkt("203.0.113.9", "", 2), bkt("1.2.3.4", "", 1)}},
		// DE: Germany x3, Deutschland x1; US: USA x2, United States x1.
		{"src country", peba.Window{Domains: onlyComm}, peba.DimSrcCountry, 0,
			[]peba.Bucket{bkt("DE", "Germany", 4), bkt("US", "USA", 3), bkt("-", "-", 1)}},
		{"src country bothDomains", peba.Window{Domains: bothDomains}, peba.DimSrcCountry, 3,
			[]peba.Bucket{bkt("DE", "Germany", 5), bkt("US", "USA", 3), bkt("FR", "France", 2)}},
		{"dst country bothDomains", peba.Window{Domains: bothDomains}, peba.DimDstCountry, 0,
			[]peba.Bucket{bkt("DE", "Germany", 7), bkt("PIR", "IANA Private IP Range", 3), bkt("NL", "Netherlands", 1)}},
		{"src location", peba.Window{Domains: onlyComm}, peba.DimSrcLocation, 0,
			[]peba.Bucket{bkt("51.2993,9.491", "", 4), bkt("37.751,-97.822", "", 3), bkt("0,0", "", 1)}},
		{"src location bothDomains limit", peba.Window{Domains: bothDomains}, peba.DimSrcLocation, 3,
			[]peba.Bucket{bkt("51.2993,9.491", "", 5), bkt("37.751,-97.822", "", 3), bkt("48.8582,2.3387", "", 2)}},
		{"dst location bothDomains", peba.Window{Domains: bothDomains}, peba.DimDstLocation, 0,
			[]peba.Bucket{bkt("50.1,8.6", "", 7), bkt("0,0", "", 3), bkt("52.37,4.89", "", 1)}},
		{"url", peba.Window{Domains: onlyComm}, peba.DimURL, 0,
			[]peba.Bucket{bkt("", "", 5), bkt("/", "", 2), bkt("/wp-login.php", "", 1)}},
		{"url of web peers", peba.Window{Domains: bothDomains, PeerType: web}, peba.DimURL, 0,
			[]peba.Bucket{bkt("/", "", 2), bkt("/admin", "", 1), bkt("/wp-login.php", "", 1)}},
		// Ties by key in byte order: "" < "2222" < "445".
		{"dst port", peba.Window{Domains: onlyComm}, peba.DimDstPort, 0,
			[]peba.Bucket{bkt("80", "", 3), bkt("22", "", 2), bkt("", "", 1), bkt("2222", "", 1), bkt("445", "", 1)}},
		{"dst port bothDomains", peba.Window{Domains: bothDomains}, peba.DimDstPort, 0,
			[]peba.Bucket{bkt("22", "", 3), bkt("80", "", 3), bkt("", "", 2), bkt("2222", "", 1), bkt("445", "", 1), bkt("8080", "", 1)}},
	} {
		got, err := s.Top(ctx, c.w, c.dim, c.limit)
		if err != nil {
			t.Fatalf("%s: Top: %v", c.name, err)
		}
		if len(got) != 0 || len(c.want) != 0 {
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s: Top =\n  %v\nwant\n  %v", c.name, got, c.want)
			}
		}
	}
}

func testStatsSeries(t *testing.T, s StatsStore) {
	ctx := context.Background()
	const h = time.Hour
	for _, c := range []struct {
		name  string
		w     peba.Window
		width time.Duration
		dim   peba.Dim
		keys  []string
		want  []peba.Point
	}{
		{"24h", peba.Window{Domains: onlyComm}, 24 * h, peba.DimNone, nil,
			[]peba.Point{pnt(statsDay, "", 6), pnt(statsAt(24*h), "", 2)}},
		// 06:00 of day 2 has no events and is omitted.
		{"6h", peba.Window{Domains: onlyComm}, 6 * h, peba.DimNone, nil,
			[]peba.Point{pnt(statsDay, "", 3), pnt(statsAt(6*h), "", 1), pnt(statsAt(12*h), "", 1), pnt(statsAt(18*h), "", 1), pnt(statsAt(24*h), "", 1), pnt(statsAt(36*h), "", 1)}},
		{"1h window", peba.Window{Domains: onlyComm, From: statsDay, To: statsAt(7 * h)}, h, peba.DimNone, nil,
			[]peba.Point{pnt(statsDay, "", 2), pnt(statsAt(5*h), "", 1), pnt(statsAt(6*h), "", 1)}},
		{"24h by create time", peba.Window{Domains: onlyComm, Field: peba.Created}, 24 * h, peba.DimNone, nil,
			[]peba.Point{pnt(statsAt(-24*h), "", 1), pnt(statsDay, "", 5), pnt(statsAt(24*h), "", 2)}},
		{"no domains", peba.Window{}, 24 * h, peba.DimNone, nil, nil},
		{"dst port keys", peba.Window{Domains: bothDomains}, 24 * h, peba.DimDstPort, []string{"22", "", "80", "9999"},
			[]peba.Point{pnt(statsDay, "", 1), pnt(statsDay, "22", 3), pnt(statsDay, "80", 2), pnt(statsAt(24*h), "80", 1), pnt(statsAt(48*h), "", 1)}},
		{"src country keys 6h", peba.Window{Domains: onlyComm}, 6 * h, peba.DimSrcCountry, []string{"US"},
			[]peba.Point{pnt(statsDay, "US", 1), pnt(statsAt(18*h), "US", 1), pnt(statsAt(24*h), "US", 1)}},
		{"src location keys", peba.Window{Domains: onlyComm}, 24 * h, peba.DimSrcLocation, []string{"51.2993,9.491", "0,0", "x,y"},
			[]peba.Point{pnt(statsDay, "0,0", 1), pnt(statsDay, "51.2993,9.491", 3), pnt(statsAt(24*h), "51.2993,9.491", 1)}},
		{"dim without keys", peba.Window{Domains: onlyComm}, 24 * h, peba.DimPeerType, nil, nil},
		{"peer type keys with filter", peba.Window{Domains: onlyPriv, PeerType: web}, h, peba.DimPeerType, []string{web, cowrie},
			[]peba.Point{pnt(statsAt(27*h), web, 1)}},
	} {
		got, err := s.Series(ctx, c.w, c.width, c.dim, c.keys)
		if err != nil {
			t.Fatalf("%s: Series: %v", c.name, err)
		}
		if len(got) != 0 || len(c.want) != 0 {
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s: Series =\n  %v\nwant\n  %v", c.name, got, c.want)
			}
		}
		for _, pt := range got {
			if pt.Start.Location() != time.UTC {
				t.Errorf("%s: Start %v is not in UTC", c.name, pt.Start)
			}
		}
	}
	_, err := s.Series(ctx, peba.Window{Domains: onlyComm}, 2*h, peba.DimNone, nil)
	if code := peba.ErrorCode(err); code != peba.EINVALID {
		t.Errorf("Series with width 2h: error %v (code %q), want code %q", err, code, peba.EINVALID)
	}
}

func testStatsLatest(t *testing.T, s StatsStore) {
	ctx := context.Background()
	all := map[string]peba.Event{}
	for _, e := range statsEvents() {
		all[e.ID] = e
	}
	none := netip.Addr{}
	for _, c := range []struct {
		name  string
		w     peba.Window
		src   netip.Addr
		limit int
		want  []string
	}{
		{"received", peba.Window{Domains: onlyComm}, none, 3, []string{"e08", "e07", "e06"}},
		{"created", peba.Window{Domains: onlyComm, Field: peba.Created}, none, 3, []string{"e08", "e06", "e07"}},
		{"window", peba.Window{Domains: bothDomains, From: statsDay, To: statsAt(6 * time.Hour)}, none, 10, []string{"e03", "e09", "e02", "e01"}},
		{"src", peba.Window{Domains: bothDomains}, netip.MustParseAddr("1.2.3.4"), 10, []string{"e08", "e05", "e09", "e02", "e01"}},
		{"src ipv6 non-canonical", peba.Window{Domains: onlyComm}, netip.MustParseAddr("2001:0db8:0:0::5"), 10, []string{"e07", "e03"}},
		{"src private", peba.Window{Domains: onlyPriv}, netip.MustParseAddr("203.0.113.9"), 10, []string{"e11", "e10"}},
		{"src other domain", peba.Window{Domains: onlyComm}, netip.MustParseAddr("203.0.113.9"), 10, nil},
		{"peer type", peba.Window{Domains: bothDomains, PeerType: dionaea}, none, 10, []string{"e11", "e06", "e05"}},
		{"no domains", peba.Window{}, none, 10, nil},
		{"limit 0", peba.Window{Domains: bothDomains}, none, 0, nil},
	} {
		got, err := s.Latest(ctx, c.w, c.src, c.limit)
		if err != nil {
			t.Fatalf("%s: Latest: %v", c.name, err)
		}
		if g := ids(got); !slices.Equal(g, c.want) {
			t.Errorf("%s: Latest = %v, want %v", c.name, g, c.want)
		}
		for _, e := range got {
			if want := stored(all[e.ID]); !reflect.DeepEqual(e, want) {
				t.Errorf("%s: Latest event %s =\n  %+v\nwant\n  %+v", c.name, e.ID, e, want)
			}
		}
		if b, ok := s.(peba.BriefLatester); ok {
			brief, err := b.LatestBrief(ctx, c.w, c.src, c.limit)
			if err != nil {
				t.Fatalf("%s: LatestBrief: %v", c.name, err)
			}
			if g := ids(brief); !slices.Equal(g, c.want) {
				t.Errorf("%s: LatestBrief = %v, want %v", c.name, g, c.want)
			}
			for _, e := range brief {
				if g, w := briefOf(e), briefOf(stored(all[e.ID])); g != w {
					t.Errorf("%s: LatestBrief event %s =\n  %+v\nwant\n  %+v", c.name, e.ID, g, w)
				}
			}
		}
	}
}

// brief is what peba.BriefLatester promises of an event.
type brief struct {
	id, peerType, dstCountry, url string
	domain                        peba.Domain
	received, created             time.Time
	src                           netip.Addr
}

func briefOf(e peba.Event) brief {
	return brief{e.ID, e.PeerType, e.Dst.Country, e.URL, e.Domain, e.ReceivedTime, e.CreateTime, e.SrcIP}
}

func testStatsSensors(t *testing.T, s StatsStore) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		w    peba.Window
		want []peba.SensorGroup
	}{
		{"community statsDay 1", peba.Window{Domains: onlyComm, From: statsDay, To: statsAt(24 * time.Hour)}, []peba.SensorGroup{
			grp("", "172.20.0.3", []string{"dionaea-1", "dionaea-2"}, []string{dionaea}, 2),
			grp("h1", "", []string{"cowrie-a", "glastopf-1"}, []string{cowrie, web}, 3),
			grp("h2", "", []string{"glastopf-2"}, []string{web}, 1),
		}},
		{"bothDomains", peba.Window{Domains: bothDomains}, []peba.SensorGroup{
			grp("", "172.20.0.3", []string{"dionaea-1", "dionaea-2"}, []string{dionaea}, 2),
			grp("", "172.20.0.4", []string{"cowrie-b"}, []string{cowrie}, 1),
			grp("", "192.168.1.3", []string{"dionaea-p"}, []string{dionaea}, 1),
			grp("h1", "", []string{"cowrie-a", "glastopf-1"}, []string{cowrie, web}, 4),
			grp("h2", "", []string{"glastopf-2"}, []string{web}, 1),
			grp("ph", "", []string{"cowrie-p", "glastopf-p"}, []string{cowrie, web}, 2),
		}},
		{"peer type", peba.Window{Domains: onlyComm, PeerType: web}, []peba.SensorGroup{
			grp("h1", "", []string{"glastopf-1"}, []string{web}, 2),
			grp("h2", "", []string{"glastopf-2"}, []string{web}, 1),
		}},
		{"no domains", peba.Window{}, nil},
	} {
		got, err := s.Sensors(ctx, c.w)
		if err != nil {
			t.Fatalf("%s: Sensors: %v", c.name, err)
		}
		slices.SortFunc(got, func(a, b peba.SensorGroup) int {
			if c := strings.Compare(a.Hostname, b.Hostname); c != 0 {
				return c
			}
			return strings.Compare(a.TargetIP, b.TargetIP)
		})
		if len(got) != 0 || len(c.want) != 0 {
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s: Sensors =\n  %+v\nwant\n  %+v", c.name, got, c.want)
			}
		}
	}
}

func bkt(key, label string, n int64) peba.Bucket {
	return peba.Bucket{Key: key, Label: label, Count: n}
}

func pnt(start time.Time, key string, n int64) peba.Point {
	return peba.Point{Start: start, Key: key, Count: n}
}

func grp(host, target string, idents, types []string, n int64) peba.SensorGroup {
	return peba.SensorGroup{Hostname: host, TargetIP: target, PeerIdent: idents, PeerType: types, Count: n}
}

// RandomWindow returns a window for comparing a store's statistics with a
// reference on random data spread over the 5 days from day: bounds that are
// unbounded, aligned to a day or an hour, or anywhere, within and around
// those days; either time field, any set of domains, and sometimes a peer
// type. Both stores' rollup tests draw their windows here.
func RandomWindow(r *rand.Rand, day time.Time) peba.Window {
	bound := func() time.Time {
		t := day.Add(time.Duration(r.Int64N(int64(7*24*time.Hour))) - 24*time.Hour)
		switch r.IntN(5) {
		case 0:
			return time.Time{}
		case 1:
			return t.Truncate(24 * time.Hour)
		case 2:
			return t.Truncate(time.Hour)
		}
		return t
	}
	w := peba.Window{From: bound(), To: bound()}
	if !w.From.IsZero() && !w.To.IsZero() && w.To.Before(w.From) && r.IntN(4) != 0 {
		w.From, w.To = w.To, w.From
	}
	w.Domains = [][]peba.Domain{
		{peba.DomainCommunity}, {peba.DomainPrivate}, {peba.DomainCommunity, peba.DomainPrivate}, nil,
	}[r.IntN(4)]
	if r.IntN(2) == 0 {
		w.Field = peba.Created
	}
	if r.IntN(4) == 0 {
		w.PeerType = "Webpage"
	}
	return w
}

// RollupEvents returns n events over day and the 4 days after it, made from
// base(i) (a store's sample event): few distinct values per dim so that
// rollup rows are shared, create times up to 2 h before or after the
// receive time (sensor clocks), and the edge values keys must survive:
// NoPort, -0 and +0 coordinates, country codes with two names, NUL and
// control bytes in keys, IPv6 and absent sources, and sources at both sides
// of the boundaries of DuckDB's source index merge chunks. Both stores'
// rollup tests compare their statistics on these with the raw events.
func RollupEvents(r *rand.Rand, n int, day time.Time, base func(i int) peba.Event) []peba.Event {
	types := []string{"SSH/console(cowrie)", "Webpage", "Network(Dionaea)"}
	geos := []peba.Geo{
		{Country: "DE", CountryName: "Germany", Lat: 51.2993, Lon: 9.491},
		{Country: "DE", CountryName: "Deutschland", Lat: 51.2993, Lon: 9.491},
		{Country: "US", CountryName: "USA", Lat: 37.751, Lon: -97.822},
		{Country: "-", CountryName: "-", Lat: math.Copysign(0, -1), Lon: 0},
		peba.UnknownGeo,
	}
	out := make([]peba.Event, n)
	for i := range out {
		e := base(i)
		// Microsecond steps around bucket edges as well as anywhere.
		e.ReceivedTime = day.Add(time.Duration(r.Int64N(int64(5 * 24 * time.Hour))))
		if r.IntN(4) == 0 {
			e.ReceivedTime = e.ReceivedTime.Truncate(time.Hour).Add(time.Duration(r.IntN(3)-1) * time.Microsecond)
		}
		e.CreateTime = e.ReceivedTime.Add(time.Duration(r.Int64N(int64(4*time.Hour))) - 2*time.Hour)
		if r.IntN(5) == 0 {
			e.Domain = peba.DomainPrivate
		}
		e.PeerType = types[r.IntN(len(types))]
		e.Src, e.Dst = geos[r.IntN(len(geos))], geos[r.IntN(len(geos))]
		e.DstPort = []int32{22, 80, 445, 2222, peba.NoPort}[r.IntN(5)]
		e.URL = []string{"", "/", "/a.php", "Attack on port 22/tcp", "/\x00"}[r.IntN(5)]
		e.SrcIP = netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(20))})
		switch r.IntN(20) {
		case 0:
			e.SrcIP = netip.MustParseAddr("2001:db8::1")
		case 1:
			e.SrcIP = netip.Addr{}
		case 2, 3:
			// Keys at both sides of the boundaries of the DuckDB source
			// index merge's key ranges (srcMergeChunks).
			e.SrcIP = netip.AddrFrom4([4]byte{byte(16*r.IntN(16) + 15*r.IntN(2)), 255 * byte(r.IntN(2)), 255, byte(r.IntN(2))})
		}
		// Sensor groups: named hosts, and old T-Pots ("" or "undefined")
		// grouped by target address.
		e.Hostname = []string{"", "undefined", "tpot-1", "tpot-2", "tpot-\x00"}[r.IntN(5)]
		e.DstIP = netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(3))})
		e.PeerIdent = []string{"cowrie-01", "cowrie-02", "dionaea-01", "tanner-01"}[r.IntN(4)]
		if r.IntN(300) == 0 {
			e.PeerIdent = "odd\x01ident" // the separator of DuckDB's Sensors keys
		}
		out[i] = e
	}
	return out
}

// Rollups are a store's statistics that can be answered from its rollup
// tables (rollups true) or from the raw events (false).
type Rollups struct {
	Count   func(ctx context.Context, w peba.Window, rollups bool) (int64, error)
	Sensors func(ctx context.Context, w peba.Window, rollups bool) ([]peba.SensorGroup, error)
	Top     func(ctx context.Context, w peba.Window, dim peba.Dim, limit int, rollups bool) ([]peba.Bucket, error)
	Series  func(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, keys []string, rollups bool) ([]peba.Point, error)
}

// CompareRollups checks that every answer on w that can use a rollup equals
// the raw answer: Count, Sensors, and for each of dims Top (a random limit)
// and Series of that dim and of DimNone (a random width, and keys drawn
// from the dim's buckets plus one that matches nothing).
func CompareRollups(t *testing.T, r *rand.Rand, w peba.Window, dims []peba.Dim, f Rollups) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	gotN, err := f.Count(ctx, w, true)
	must(err)
	wantN, err := f.Count(ctx, w, false)
	must(err)
	if gotN != wantN {
		t.Fatalf("Count(%+v) = %d with rollups, %d raw", w, gotN, wantN)
	}
	gotS, err := f.Sensors(ctx, w, true)
	must(err)
	wantS, err := f.Sensors(ctx, w, false)
	must(err)
	if !reflect.DeepEqual(gotS, wantS) {
		t.Fatalf("Sensors(%+v) =\n  %+v with rollups\n  %+v raw", w, gotS, wantS)
	}
	for _, d := range dims {
		limit := r.IntN(4)
		got, err := f.Top(ctx, w, d, limit, true)
		must(err)
		want, err := f.Top(ctx, w, d, limit, false)
		must(err)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Top(%+v, dim %d, %d) =\n  %v with rollups\n  %v raw", w, d, limit, got, want)
		}
		all, err := f.Top(ctx, w, d, 0, false)
		must(err)
		keys := []string{"no such key"}
		for _, b := range all {
			if r.IntN(2) == 0 {
				keys = append(keys, b.Key)
			}
		}
		width := []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour}[r.IntN(3)]
		for _, sd := range []peba.Dim{d, peba.DimNone} {
			got, err := f.Series(ctx, w, width, sd, keys, true)
			must(err)
			want, err := f.Series(ctx, w, width, sd, keys, false)
			must(err)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Series(%+v, %s, dim %d, %q) =\n  %v with rollups\n  %v raw", w, width, sd, keys, got, want)
			}
		}
	}
}
