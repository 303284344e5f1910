package geoip_test

import (
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/geoip"
	"github.com/peba-go/peba/geoip/geoiptest"
)

var testRecords = []geoiptest.Record{
	{Network: "81.2.69.0/24", Country: "GB", CountryName: "United Kingdom", Lat: 51.5142, Lon: -0.0931, ASN: 20712, Org: "Andrews & Arnold Ltd"},
	{Network: "2a02:ff0::/32", Country: "DE", CountryName: "Germany", Lat: 50.1, Lon: 8.6, ASN: 3320, Org: "Deutsche Telekom AG"},
	// ASN number without organisation: PEBA reports no ASN (§6 step 4).
	{Network: "1.1.1.0/24", Country: "AU", CountryName: "Australia", ASN: 13335},
	// CGNAT is not private for Python 3.11, so the database is consulted.
	{Network: "100.64.0.0/10", Country: "ZZ", CountryName: "Carrier Grade", ASN: 64512, Org: "CGN"},
	// Data for a private range must be ignored in favour of PIR.
	{Network: "10.0.0.0/8", Country: "US", CountryName: "United States", ASN: 1, Org: "Nope"},
}

func mustParse(s string) netip.Addr { return netip.MustParseAddr(s) }

func mustOpen(t testing.TB, cfg geoip.Config) *geoip.DB {
	t.Helper()
	db, err := geoip.Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestLookup(t *testing.T) {
	cfg := geoiptest.Write(t, t.TempDir(), testRecords)
	for _, cacheSize := range []int{-1, 0} {
		cfg.CacheSize = cacheSize
		db := mustOpen(t, cfg)
		pir := peba.Geo{Country: "PIR", CountryName: "IANA Private IP Range", ASN: "IANA"}
		for _, tc := range []struct {
			ip   netip.Addr
			want peba.Geo
		}{
			{mustParse("81.2.69.142"), peba.Geo{Country: "GB", CountryName: "United Kingdom", ASN: "AS20712 Andrews & Arnold Ltd", Lat: 51.5142, Lon: -0.0931}},
			{mustParse("::ffff:81.2.69.142"), peba.Geo{Country: "GB", CountryName: "United Kingdom", ASN: "AS20712 Andrews & Arnold Ltd", Lat: 51.5142, Lon: -0.0931}},
			{mustParse("2a02:ff0::1"), peba.Geo{Country: "DE", CountryName: "Germany", ASN: "AS3320 Deutsche Telekom AG", Lat: 50.1, Lon: 8.6}},
			{mustParse("1.1.1.1"), peba.Geo{Country: "AU", CountryName: "Australia", ASN: "-"}},
			{mustParse("100.64.0.1"), peba.Geo{Country: "ZZ", CountryName: "Carrier Grade", ASN: "AS64512 CGN"}},
			{mustParse("8.8.8.8"), peba.UnknownGeo},
			{mustParse("2001:4860::8888"), peba.UnknownGeo},
			{netip.Addr{}, peba.UnknownGeo},
			{mustParse("10.1.2.3"), pir},
			{mustParse("::ffff:10.1.2.3"), pir},
			{mustParse("192.168.1.1"), pir},
			{mustParse("fe80::1%eth0"), pir},
			{mustParse("fd00::1"), pir},
			{mustParse("::1"), pir},
		} {
			// Twice: the second answer may come from the cache.
			for range 2 {
				if got := db.Lookup(tc.ip); got != tc.want {
					t.Errorf("cache %d: Lookup(%v) = %+v, want %+v", cacheSize, tc.ip, got, tc.want)
				}
			}
		}
	}
}

func TestCountryFallsBackToCity(t *testing.T) {
	cfg := geoiptest.Write(t, t.TempDir(), testRecords)
	cfg.CountryPath = ""
	db := mustOpen(t, cfg)
	want := peba.Geo{Country: "GB", CountryName: "United Kingdom", ASN: "AS20712 Andrews & Arnold Ltd", Lat: 51.5142, Lon: -0.0931}
	if got := db.Lookup(mustParse("81.2.69.1")); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestMissingDatabases(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, geoip.Config{
		CityPath: filepath.Join(dir, "nope-city.mmdb"),
		ASNPath:  filepath.Join(dir, "nope-asn.mmdb"),
	})
	if got := db.Lookup(mustParse("81.2.69.142")); got != peba.UnknownGeo {
		t.Errorf("got %+v, want defaults", got)
	}
	if got := db.Lookup(mustParse("10.0.0.1")); got.Country != "PIR" {
		t.Errorf("private address without databases: got %+v, want PIR", got)
	}
	st := db.Status()
	if len(st) != 3 {
		t.Fatalf("Status has %d entries, want 3", len(st))
	}
	for _, s := range st {
		if s.Loaded {
			t.Errorf("%s: Loaded = true", s.Kind)
		}
	}
	if st[0].Kind != "city" || !strings.Contains(st[0].Err, "no such file") {
		t.Errorf("city status = %+v, want a missing-file error", st[0])
	}
	if st[1].Path != "" || st[1].Err != "" {
		t.Errorf("unconfigured country status = %+v", st[1])
	}
}

func TestStatus(t *testing.T) {
	cfg := geoiptest.Write(t, t.TempDir(), testRecords)
	db := mustOpen(t, cfg)
	wantTypes := map[string]string{"city": "GeoLite2-City", "country": "GeoLite2-Country", "asn": "GeoLite2-ASN"}
	for _, s := range db.Status() {
		if !s.Loaded || s.Type != wantTypes[s.Kind] || s.Err != "" || time.Since(s.BuildTime) > time.Hour {
			t.Errorf("status %+v", s)
		}
	}
}

func TestOpenRejectsBadFiles(t *testing.T) {
	cfg := geoiptest.Write(t, t.TempDir(), testRecords)
	// An ASN database in the city slot is a configuration mistake.
	if _, err := geoip.Open(geoip.Config{CityPath: cfg.ASNPath}, nil); err == nil {
		t.Error("ASN database accepted as city database")
	}
	junk := filepath.Join(t.TempDir(), "junk.mmdb")
	if err := os.WriteFile(junk, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := geoip.Open(geoip.Config{CountryPath: junk}, nil); err == nil {
		t.Error("junk accepted as country database")
	}
	if _, err := geoip.Open(geoip.Config{ReloadInterval: -1}, nil); err == nil {
		t.Error("negative reload interval accepted")
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	cfg := geoiptest.Write(t, dir, testRecords)
	db := mustOpen(t, cfg)
	ip := mustParse("81.2.69.142")
	if got := db.Lookup(ip); got.Country != "GB" {
		t.Fatalf("before reload: %+v", got)
	}
	if db.Reload() {
		t.Error("Reload reported a change although no file changed")
	}
	geoiptest.Write(t, dir, []geoiptest.Record{
		{Network: "81.2.69.0/24", Country: "FR", CountryName: "France", Lat: 48.8, Lon: 2.3, ASN: 5410, Org: "Bouygues Telecom SA"},
	})
	bumpMtime(t, cfg.CityPath, cfg.CountryPath, cfg.ASNPath)
	if !db.Reload() {
		t.Fatal("Reload reported no change after the files were replaced")
	}
	want := peba.Geo{Country: "FR", CountryName: "France", ASN: "AS5410 Bouygues Telecom SA", Lat: 48.8, Lon: 2.3}
	if got := db.Lookup(ip); got != want {
		t.Errorf("after reload: %+v, want %+v (a stale cache entry?)", got, want)
	}

	// A broken replacement keeps the previous data and is reported.
	if err := os.WriteFile(cfg.CountryPath, []byte("truncated"), 0o600); err != nil {
		t.Fatal(err)
	}
	bumpMtime(t, cfg.CountryPath)
	db.Reload()
	if got := db.Lookup(ip); got != want {
		t.Errorf("after broken replacement: %+v, want %+v", got, want)
	}
	if st := db.Status()[1]; !st.Loaded || st.Err == "" {
		t.Errorf("country status after broken replacement: %+v", st)
	}
}

func TestReloadAppearingFile(t *testing.T) {
	dir := t.TempDir()
	cfg := geoip.Config{
		CityPath:       filepath.Join(dir, geoiptest.CityFile),
		CountryPath:    filepath.Join(dir, geoiptest.CountryFile),
		ASNPath:        filepath.Join(dir, geoiptest.ASNFile),
		ReloadInterval: 5 * time.Millisecond,
	}
	db := mustOpen(t, cfg)
	ip := mustParse("81.2.69.142")
	if got := db.Lookup(ip); got != peba.UnknownGeo {
		t.Fatalf("before the files exist: %+v", got)
	}
	geoiptest.Write(t, dir, testRecords)
	deadline := time.Now().Add(5 * time.Second)
	for db.Lookup(ip).ASN == "-" || db.Lookup(ip).Country == "-" {
		if time.Now().After(deadline) {
			t.Fatal("poller did not load the new files")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConcurrentReload runs lookups while the files are replaced and
// reloaded; run with -race. Every answer must be one of the two versions.
func TestConcurrentReload(t *testing.T) {
	dir := t.TempDir()
	a := []geoiptest.Record{{Network: "81.2.69.0/24", Country: "GB", CountryName: "United Kingdom", ASN: 1, Org: "A"}}
	b := []geoiptest.Record{{Network: "81.2.69.0/24", Country: "FR", CountryName: "France", ASN: 2, Org: "B"}}
	cfg := geoiptest.Write(t, dir, a)
	db := mustOpen(t, cfg)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ip := netip.AddrFrom4([4]byte{81, 2, 69, byte(i + g)})
				got := db.Lookup(ip)
				if got.Country != "GB" && got.Country != "FR" && got.Country != "-" {
					t.Errorf("Lookup(%v) = %+v", ip, got)
					return
				}
				db.Status()
			}
		})
	}
	for i := range 10 {
		recs := a
		if i%2 == 0 {
			recs = b
		}
		geoiptest.Write(t, dir, recs)
		bumpMtime(t, cfg.CityPath, cfg.CountryPath, cfg.ASNPath)
		db.Reload()
	}
	close(stop)
	wg.Wait()
	db.Close()
	if got := db.Lookup(mustParse("81.2.69.1")); got != peba.UnknownGeo {
		t.Errorf("after Close: %+v, want defaults", got)
	}
}

var mtimeBump atomic.Int64

// bumpMtime gives each file a distinct future mtime, so a replacement of the
// same size within the file system's timestamp granularity is still seen.
func bumpMtime(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		mt := fi.ModTime().Add(time.Duration(mtimeBump.Add(1)) * time.Second)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}

// A database with NaN, infinite or out-of-range coordinates (damaged or
// crafted) must not make events invalid: such a location is unknown, the
// rest of the record is kept.
func TestNonFiniteLocationIsUnknown(t *testing.T) {
	cfg := geoiptest.Write(t, t.TempDir(), []geoiptest.Record{
		{Network: "81.2.69.0/26", Country: "GB", CountryName: "United Kingdom", Lat: math.NaN(), Lon: 1},
		{Network: "81.2.69.64/26", Country: "GB", CountryName: "United Kingdom", Lat: 1, Lon: math.Inf(-1)},
		{Network: "81.2.69.128/26", Country: "GB", CountryName: "United Kingdom", Lat: 91, Lon: 1},
		{Network: "81.2.69.192/26", Country: "GB", CountryName: "United Kingdom", Lat: -90, Lon: 180},
	})
	db := mustOpen(t, cfg)
	for ip, want := range map[string][2]float64{
		"81.2.69.1": {0, 0}, "81.2.69.65": {0, 0}, "81.2.69.129": {0, 0}, "81.2.69.193": {-90, 180},
	} {
		g := db.Lookup(mustParse(ip))
		if g.Lat != want[0] || g.Lon != want[1] || g.Country != "GB" {
			t.Errorf("Lookup(%s) = %+v, want GB at %v", ip, g, want)
		}
	}
}
