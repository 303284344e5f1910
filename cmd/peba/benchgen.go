package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/config"
)

const benchGenUsage = `Usage:
  peba bench gen [-events 10000000] [-days 30] [-seed 20261121] [-end TIME] [-datadir DIR | -postgres_dsn DSN]
  peba bench gen -topup [-rate EVENTS_PER_SECOND] [-seed 20261121] [-end TIME] [-datadir DIR | -postgres_dsn DSN]

Writes realistic synthetic events straight into the store of DATADIR (the server must be stopped), for the
statistics benchmarks: receive times over the last DAYS days with a daily wave, Zipf-distributed source
addresses (s=1.1 over 2M ranks) tied to 200 countries and their locations, 18 honeypot types (Zipf),
3000 sensors on 600 T-Pot hosts, ports and URLs by honeypot type, 80% community data.

-topup fills the gap between the newest stored event and now (or -end) with events of the same kinds,
spread evenly, at the rate of the stored data's last 24 hours (or -rate), so that windows ending now
(retrieveIPs, retrieveAlertsCount, tops of the last day) are as full as right after generation. A second
top-up starts from the newest event the first wrote; the events depend only on -seed and the gap.
`

// genType is one honeypot type of the generated data with the ports and
// requests such honeypots see.
type genType struct {
	name, ident string
	ports       []int32
	web         bool
}

var genTypes = []genType{
	{"SSH/console(cowrie)", "cowrie", []int32{22, 23, 2222}, false},
	{"Network(Dionaea)", "dionaea", []int32{445, 1433, 3306, 21, 135}, false},
	{"Network(honeytrap)", "honeytrap", []int32{80, 8080, 443, 5555, 2375}, false},
	{"Webpage", "tanner", []int32{80}, true},
	{"Passwords(heralding)", "heralding", []int32{21, 110, 143, 5432}, false},
	{"RDP(rdpy)", "rdpy", []int32{3389}, false},
	{"Network(suricata)", "suricata", []int32{22, 80, 445}, false},
	{"Service(ES)", "elasticpot", []int32{9200}, false},
	{"Industrial(conpot)", "conpot", []int32{102, 502, 161}, false},
	{"VNC(vnclowpot)", "vnclowpot", []int32{5900}, false},
	{"E-Mail(mailoney)", "mailoney", []int32{25}, false},
	{"Network(cisco-asa)", "ciscoasa", []int32{8443}, false},
	{"Service(adbhoney)", "adbhoney", []int32{5555}, false},
	{"SSH/console(endlessh)", "endlessh", []int32{22}, false},
	{"Network(ddospot)", "ddospot", []int32{53, 123, 1900}, false},
	{"Webpage(wordpot)", "wordpot", []int32{80}, true},
	{"Service(redishoneypot)", "redishoneypot", []int32{6379}, false},
	{"Network(glutton)", "glutton", []int32{23, 8080}, false},
}

var genCountries = []struct {
	code, name string
	lat, lon   float64
}{
	{"CN", "China", 34.7732, 113.722}, {"US", "United States", 37.751, -97.822}, {"RU", "Russia", 55.7386, 37.6068},
	{"NL", "Netherlands", 52.3824, 4.8995}, {"DE", "Germany", 51.2993, 9.491}, {"BR", "Brazil", -22.8305, -43.2192},
	{"IN", "India", 21.9974, 79.0011}, {"VN", "Vietnam", 16.0, 106.0}, {"KR", "South Korea", 37.5112, 126.9741},
	{"FR", "France", 48.8582, 2.3387}, {"GB", "United Kingdom", 51.4964, -0.1224}, {"SG", "Singapore", 1.3673, 103.8014},
	{"TW", "Taiwan", 24.0, 121.0}, {"ID", "Indonesia", -6.1728, 106.8272}, {"HK", "Hong Kong", 22.2578, 114.1657},
}

func runBenchGen(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var events, days int
	var seed uint64
	var topup bool
	var rate float64
	var endText string
	cfg, _, err := config.Load("bench gen", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.Usage = func() {
			fmt.Fprint(fs.Output(), benchGenUsage+"\nFlags:\n")
			fs.PrintDefaults()
		}
		fs.IntVar(&events, "events", 10_000_000, "events to write")
		fs.IntVar(&days, "days", 30, "spread over the last N days (ending now)")
		fs.Uint64Var(&seed, "seed", 20261121, "random seed")
		fs.BoolVar(&topup, "topup", false, "add events from the newest stored event up to now (or -end) instead")
		fs.Float64Var(&rate, "rate", 0, "events per second of -topup (default: the stored data's rate over its last 24 hours)")
		fs.StringVar(&endText, "end", "", "RFC 3339 time the data ends at (default: now)")
	})
	if err != nil {
		return err
	}
	end := time.Now().UTC().Truncate(time.Second)
	if endText != "" {
		if end, err = time.Parse(time.RFC3339Nano, endText); err != nil {
			return fmt.Errorf("-end: %w", err)
		}
		end = end.UTC()
	}
	if !topup && (events < 1 || days < 1) {
		return errors.New("events and days must be positive")
	}
	if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return errors.New("rate must be a positive number of events per second")
	}
	store, err := openStore(cfg, false)
	if err != nil {
		return err
	}
	defer store.Close()

	if topup {
		err = benchTopUp(ctx, store, seed, rate, end, stdout)
	} else {
		g := newBenchGen(seed, seed^0x9e3779b97f4a7c15)
		err = g.write(ctx, store, events, end.Add(-time.Duration(days)*24*time.Hour), end, days, stdout)
	}
	if err != nil {
		return err
	}
	if cp, ok := store.(checkpointer); ok { // DuckDB; PostgreSQL needs none
		return cp.Checkpoint(ctx)
	}
	return nil
}

// benchTopUp writes events received after the newest stored one, up to
// end, at rate events per second (if 0, the rate of the stored data's
// last 24 hours). The generator's stream depends on seed and the gap's
// start, so a top-up never repeats the IDs of the data it extends (they
// would be skipped as duplicates) and a repeated top-up of the same gap
// writes the same events.
func benchTopUp(ctx context.Context, store storeEngine, seed uint64, rate float64, end time.Time, stdout io.Writer) error {
	all := peba.Window{Domains: []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}, Field: peba.Received}
	newest, err := store.Latest(ctx, all, netip.Addr{}, 1)
	if err != nil {
		return fmt.Errorf("cannot find the newest event: %w", err)
	}
	if len(newest) == 0 {
		return errors.New("the store is empty: run bench gen without -topup first")
	}
	from := newest[0].ReceivedTime.UTC()
	if rate == 0 {
		if rate, err = storedRate(ctx, store, all, from); err != nil {
			return err
		}
	}
	n := int(math.Round(rate * end.Sub(from).Seconds()))
	fmt.Fprintf(stdout, "top-up from %s to %s at %.4g events/s: %d events\n",
		from.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano), rate, max(n, 0))
	if n < 1 {
		return nil
	}
	g := newBenchGen(seed, seed^uint64(from.UnixMicro()))
	// No daily wave: a gap of hours would be skewed by it.
	return g.write(ctx, store, n, from, end, 0, stdout)
}

// storedRate is the events per second of the 24 hours of data before
// newest, or of the hours since the first stored event if that is later
// (hour granularity: the series is all a store answers cheaply).
func storedRate(ctx context.Context, store storeEngine, all peba.Window, newest time.Time) (float64, error) {
	w := all
	w.From, w.To = newest.Add(-24*time.Hour), newest.Add(time.Microsecond)
	points, err := store.Series(ctx, w, time.Hour, peba.DimNone, nil)
	if err != nil {
		return 0, fmt.Errorf("cannot measure the stored rate: %w", err)
	}
	if len(points) == 0 {
		return 0, errors.New("cannot measure the stored rate: no events before the newest: give -rate")
	}
	var count int64
	for _, p := range points {
		count += p.Count
	}
	first := w.From
	if points[0].Start.After(first) {
		first = points[0].Start
	}
	span := w.To.Sub(first)
	if span < time.Second {
		return 0, errors.New("the stored data spans less than a second: give -rate")
	}
	return float64(count) / span.Seconds(), nil
}

// benchGen draws synthetic events: one random stream and the Zipf
// distributions on it.
type benchGen struct {
	r                                      *rand.Rand
	ipZipf, typeZipf, countryZipf, urlZipf *rand.Zipf
	idb                                    []byte
}

func newBenchGen(seed1, seed2 uint64) *benchGen {
	r := rand.New(rand.NewPCG(seed1, seed2))
	return &benchGen{
		r:           r,
		ipZipf:      rand.NewZipf(r, 1.1, 1, 2_000_000-1),
		typeZipf:    rand.NewZipf(r, 1.3, 1, uint64(len(genTypes)-1)),
		countryZipf: rand.NewZipf(r, 1.2, 1, 199),
		urlZipf:     rand.NewZipf(r, 1.1, 1, 149_999),
		idb:         make([]byte, 16),
	}
}

// write stores n events received in (start, end], evenly spread with a
// daily wave of waveDays periods over the span (0: none), in batches,
// reporting progress to stdout.
func (g *benchGen) write(ctx context.Context, store storeEngine, n int, start, end time.Time, waveDays int, stdout io.Writer) error {
	const batch = 50_000
	span := end.Sub(start)
	buf := make([]peba.Event, 0, min(batch, n))
	t0 := time.Now()
	written := 0
	for i := range n {
		// Receive times increase with a daily wave (rate 1 + 0.45 sin).
		frac := (float64(i) + g.r.Float64()) / float64(n)
		recv := start.Add(time.Duration(frac * float64(span)))
		recv = recv.Add(time.Duration(0.45 * math.Sin(2*math.Pi*frac*float64(waveDays)) * float64(time.Hour)))
		if recv.After(end) {
			recv = end
		}
		buf = append(buf, g.event(recv))
		if len(buf) == batch || i == n-1 {
			if _, err := store.AppendEvents(ctx, buf); err != nil {
				return fmt.Errorf("cannot append: %w", err)
			}
			written += len(buf)
			buf = buf[:0]
			if written%1_000_000 == 0 || written == n {
				el := time.Since(t0)
				fmt.Fprintf(stdout, "%d events written in %s (%.0f events/s)\n", written, el.Round(time.Second), float64(written)/el.Seconds())
			}
		}
	}
	return nil
}

// event draws one event received at recv.
func (g *benchGen) event(recv time.Time) peba.Event {
	r := g.r
	create := recv.Add(-time.Duration(r.ExpFloat64() * 0.8 * float64(time.Second)))

	rank := g.ipZipf.Uint64()
	src := genSrcAddr(rank)
	cidx := int(rank*40503) % 200
	if rank < 5000 { // the hot addresses come from the big countries
		cidx = int(g.countryZipf.Uint64())
	}
	var srcGeo peba.Geo
	if cidx < len(genCountries) {
		c := genCountries[cidx]
		srcGeo = peba.Geo{Country: c.code, CountryName: c.name, ASN: "AS" + strconv.Itoa(int(rank%5000)+1000) + " Example Net", Lat: c.lat + float64(rank%7)/10, Lon: c.lon + float64(rank%11)/10}
	} else {
		code := string([]byte{'A' + byte(cidx%26), 'A' + byte(cidx/26)})
		srcGeo = peba.Geo{Country: code, CountryName: "Country " + code, ASN: "AS" + strconv.Itoa(int(rank%5000)+1000) + " Example Net", Lat: float64(cidx%90) - 45 + float64(rank%7)/10, Lon: float64(cidx%180) - 90}
	}
	t := genTypes[g.typeZipf.Uint64()]
	host := int(r.Uint64() % 600)
	sensor := host*5 + int(r.Uint64()%5)
	dstIP := netip.AddrFrom4([4]byte{81, 2, byte(host / 250), byte(host%250 + 1)})
	dc := genCountries[host%len(genCountries)]
	port := t.ports[r.IntN(len(t.ports))]
	if r.IntN(10) == 0 {
		port = int32(1 + r.IntN(65535)) // the long tail
	}
	url := "Attack on port " + strconv.Itoa(int(port)) + "/tcp"
	if t.web {
		url = "/" + strconv.FormatUint(g.urlZipf.Uint64(), 36) + ".php"
	}
	for j := range g.idb {
		g.idb[j] = byte(r.Uint64())
	}
	e := peba.Event{
		ID: hex.EncodeToString(g.idb), Domain: peba.DomainCommunity, Submitter: "community-01-user", Origin: "bench",
		ReceivedTime: recv.Truncate(time.Microsecond), CreateTime: create.Truncate(time.Second),
		PeerIdent: t.ident + "-" + strconv.Itoa(sensor), PeerType: t.name, Hostname: "tpot-" + strconv.Itoa(host),
		ExternalIP: dstIP.String(), InternalIP: "172.20.0.2",
		SrcIP: src, SrcPort: int32(1024 + r.IntN(64000)), DstIP: dstIP, DstPort: port, Transport: "tcp",
		URL: url, Src: srcGeo,
		Dst: peba.Geo{Country: dc.code, CountryName: dc.name, ASN: "AS3320 Deutsche Telekom AG", Lat: dc.lat, Lon: dc.lon},
	}
	if r.IntN(5) == 0 {
		e.Domain, e.Submitter = peba.DomainPrivate, "sensor-net"
	}
	if t.ident == "cowrie" || t.ident == "heralding" {
		e.Username, e.Password, e.Login = "root", "pass"+strconv.Itoa(r.IntN(500)), "Fail"
	}
	return e
}

// genSrcAddr is the source address of Zipf rank rank (0 is the most
// frequent); bench query asks querySingleIP for some of them.
func genSrcAddr(rank uint64) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(1 + rank*2654435761%223), byte(rank >> 16), byte(rank >> 8), byte(rank)})
}
