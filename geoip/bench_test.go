package geoip_test

import (
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/peba-go/peba/geoip"
)

// names is a full GeoIP2 "names" map, as real City databases carry for
// every city, country and continent; decoding it is most of a lookup's cost.
func names(s string) mmdbtype.Map {
	m := mmdbtype.Map{}
	for _, l := range []string{"de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN"} {
		m[mmdbtype.String(l)] = mmdbtype.String(l + " " + s)
	}
	return m
}

// writeRealistic writes City, Country and ASN databases with 2^12 /24
// networks (plus as many IPv6 /32s) and GeoLite2-sized records, so that tree depth and
// decode cost resemble the real files.
func writeRealistic(b *testing.B, dir string) geoip.Config {
	b.Helper()
	cfg := geoip.Config{
		CityPath:    filepath.Join(dir, "city.mmdb"),
		CountryPath: filepath.Join(dir, "country.mmdb"),
		ASNPath:     filepath.Join(dir, "asn.mmdb"),
	}
	country := func(i int) mmdbtype.Map {
		return mmdbtype.Map{
			"geoname_id":           mmdbtype.Uint32(2921044 + i%200),
			"iso_code":             mmdbtype.String([]byte{'A' + byte(i%200/26), 'A' + byte(i%26)}),
			"names":                names("country"),
			"is_in_european_union": mmdbtype.Bool(true),
		}
	}
	countryRec := func(i int) mmdbtype.Map {
		return mmdbtype.Map{
			"continent":          mmdbtype.Map{"code": mmdbtype.String("EU"), "geoname_id": mmdbtype.Uint32(6255148), "names": names("continent")},
			"country":            country(i),
			"registered_country": country(i + 1),
		}
	}
	cityRec := func(i int) mmdbtype.Map {
		m := countryRec(i)
		m["city"] = mmdbtype.Map{"geoname_id": mmdbtype.Uint32(i), "names": names("city")}
		m["location"] = mmdbtype.Map{
			"accuracy_radius": mmdbtype.Uint16(20),
			"latitude":        mmdbtype.Float64(float64(i%180) - 90),
			"longitude":       mmdbtype.Float64(float64(i%360) - 180),
			"time_zone":       mmdbtype.String("Europe/Berlin"),
		}
		m["postal"] = mmdbtype.Map{"code": mmdbtype.String("53113")}
		m["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"geoname_id": mmdbtype.Uint32(2861876), "iso_code": mmdbtype.String("NW"), "names": names("subdivision")}}
		return m
	}
	asnRec := func(i int) mmdbtype.Map {
		return mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(1000 + i%5000),
			"autonomous_system_organization": mmdbtype.String("Some Network Operator GmbH & Co. KG"),
		}
	}
	for _, f := range []struct {
		path, typ string
		rec       func(int) mmdbtype.Map
		distinct  int
	}{
		{cfg.CityPath, "GeoLite2-City", cityRec, 2000},
		{cfg.CountryPath, "GeoLite2-Country", countryRec, 200},
		{cfg.ASNPath, "GeoLite2-ASN", asnRec, 1000},
	} {
		tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: f.typ, RecordSize: 28})
		if err != nil {
			b.Fatal(err)
		}
		recs := make([]mmdbtype.Map, f.distinct)
		for i := range recs {
			recs[i] = f.rec(i)
		}
		for i := range 1 << 12 {
			n := &net.IPNet{IP: net.IPv4(byte(1+i%200), byte(i>>4), byte(i*7), 0), Mask: net.CIDRMask(24, 32)}
			if err := tree.Insert(n, recs[i%f.distinct]); err != nil {
				b.Fatal(err)
			}
			n6 := &net.IPNet{IP: net.IP{0x2a, 0x02, byte(i >> 8), byte(i), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Mask: net.CIDRMask(32, 128)}
			if err := tree.Insert(n6, recs[i%f.distinct]); err != nil {
				b.Fatal(err)
			}
		}
		fh, err := os.Create(f.path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tree.WriteTo(fh); err != nil {
			b.Fatal(err)
		}
		fh.Close()
	}
	return cfg
}

// zipfAddrs returns n addresses drawn Zipf-distributed from a population of
// one million, as attack sources are: a few scanners send most events.
func zipfAddrs(n int) []netip.Addr {
	r := rand.New(rand.NewPCG(1, 2))
	pop := make([]netip.Addr, 1<<20)
	for i := range pop {
		pop[i] = netip.AddrFrom4([4]byte{byte(1 + r.IntN(200)), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
	}
	z := rand.NewZipf(rand.New(rand.NewPCG(3, 4)), 1.1, 1, uint64(len(pop)-1))
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = pop[z.Uint64()]
	}
	return out
}

// BenchmarkLookup measures one Lookup (all three databases) on Zipf traffic,
// with and without the cache, on one goroutine and in parallel over
// GOMAXPROCS goroutines.
func BenchmarkLookup(b *testing.B) {
	cfg := writeRealistic(b, b.TempDir())
	addrs := zipfAddrs(1 << 20)
	for _, bc := range []struct {
		name string
		size int
	}{{"nocache", -1}, {"cache64k", 0}} {
		b.Run(bc.name+"/serial", func(b *testing.B) {
			cfg.CacheSize = bc.size
			db, err := geoip.Open(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			for _, ip := range addrs[:1<<16] { // warm up
				db.Lookup(ip)
			}
			i := 0
			for b.Loop() {
				db.Lookup(addrs[i%len(addrs)])
				i++
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			cfg.CacheSize = bc.size
			db, err := geoip.Open(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			for _, ip := range addrs[:1<<16] { // warm up
				db.Lookup(ip)
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(len(addrs))
				for pb.Next() {
					db.Lookup(addrs[i%len(addrs)])
					i++
				}
			})
		})
	}
}
