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
  peba bench gen [-events 10000000] [-days 30] [-seed 20261121] [-datadir DIR]

Writes realistic synthetic events straight into the store of DATADIR (the server must be stopped), for the
statistics benchmarks: receive times over the last DAYS days with a daily wave, Zipf-distributed source
addresses (s=1.1 over 2M ranks) tied to 200 countries and their locations, 18 honeypot types (Zipf),
3000 sensors on 600 T-Pot hosts, ports and URLs by honeypot type, 80% community data.
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
	cfg, _, err := config.Load("bench gen", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.IntVar(&events, "events", 10_000_000, "events to write")
		fs.IntVar(&days, "days", 30, "spread over the last N days (ending now)")
		fs.Uint64Var(&seed, "seed", 20261121, "random seed")
	})
	if err != nil {
		return err
	}
	if events < 1 || days < 1 {
		return errors.New("events and days must be positive")
	}
	store, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ipZipf := rand.NewZipf(r, 1.1, 1, 2_000_000-1)
	typeZipf := rand.NewZipf(r, 1.3, 1, uint64(len(genTypes)-1))
	countryZipf := rand.NewZipf(r, 1.2, 1, 199)
	urlZipf := rand.NewZipf(r, 1.1, 1, 149_999)
	end := time.Now().UTC().Truncate(time.Second)
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	span := end.Sub(start)

	const batch = 50_000
	buf := make([]peba.Event, 0, batch)
	idb := make([]byte, 16)
	t0 := time.Now()
	written := 0
	for i := range events {
		// Receive times increase with a daily wave (rate 1 + 0.45 sin).
		frac := (float64(i) + r.Float64()) / float64(events)
		recv := start.Add(time.Duration(frac * float64(span)))
		recv = recv.Add(time.Duration(0.45 * math.Sin(2*math.Pi*frac*float64(days)) * float64(time.Hour)))
		if recv.After(end) {
			recv = end
		}
		create := recv.Add(-time.Duration(r.ExpFloat64() * 0.8 * float64(time.Second)))

		rank := ipZipf.Uint64()
		src := genSrcAddr(rank)
		cidx := int(rank*40503) % 200
		if rank < 5000 { // the hot addresses come from the big countries
			cidx = int(countryZipf.Uint64())
		}
		var srcGeo peba.Geo
		if cidx < len(genCountries) {
			c := genCountries[cidx]
			srcGeo = peba.Geo{Country: c.code, CountryName: c.name, ASN: "AS" + strconv.Itoa(int(rank%5000)+1000) + " Example Net", Lat: c.lat + float64(rank%7)/10, Lon: c.lon + float64(rank%11)/10}
		} else {
			code := string([]byte{'A' + byte(cidx%26), 'A' + byte(cidx/26)})
			srcGeo = peba.Geo{Country: code, CountryName: "Country " + code, ASN: "AS" + strconv.Itoa(int(rank%5000)+1000) + " Example Net", Lat: float64(cidx%90) - 45 + float64(rank%7)/10, Lon: float64(cidx%180) - 90}
		}
		t := genTypes[typeZipf.Uint64()]
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
			url = "/" + strconv.FormatUint(urlZipf.Uint64(), 36) + ".php"
		}
		for j := range idb {
			idb[j] = byte(r.Uint64())
		}
		e := peba.Event{
			ID: hex.EncodeToString(idb), Domain: peba.DomainCommunity, Submitter: "community-01-user", Origin: "bench",
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
		buf = append(buf, e)
		if len(buf) == batch || i == events-1 {
			if _, err := store.AppendEvents(ctx, buf); err != nil {
				return fmt.Errorf("cannot append: %w", err)
			}
			written += len(buf)
			buf = buf[:0]
			if written%1_000_000 == 0 || written == events {
				el := time.Since(t0)
				fmt.Fprintf(stdout, "%d events written in %s (%.0f events/s)\n", written, el.Round(time.Second), float64(written)/el.Seconds())
			}
		}
	}
	if cp, ok := store.(checkpointer); ok { // DuckDB; PostgreSQL needs none
		return cp.Checkpoint(ctx)
	}
	return nil
}

// genSrcAddr is the source address of Zipf rank rank (0 is the most
// frequent); bench query asks querySingleIP for some of them.
func genSrcAddr(rank uint64) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(1 + rank*2654435761%223), byte(rank >> 16), byte(rank >> 8), byte(rank)})
}
