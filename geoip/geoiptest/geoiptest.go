// Package geoiptest writes small GeoIP2-shaped MaxMind databases for tests, so
// that no test depends on downloaded data.
package geoiptest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/peba-go/peba/geoip"
)

// Record is what the databases say about one network. Zero fields are left
// out of the written records (an empty Country writes no iso_code, ASN 0
// writes no autonomous_system_number, Lat and Lon both 0 write no location),
// so tests can exercise partial data.
type Record struct {
	Network     string // CIDR, IPv4 or IPv6
	Country     string // ISO code, country.iso_code
	CountryName string // country.names.en
	Lat, Lon    float64
	ASN         uint
	Org         string
}

// File names that Write uses inside dir.
const (
	CityFile    = "city.mmdb"
	CountryFile = "country.mmdb"
	ASNFile     = "asn.mmdb"
)

// Write writes a City, a Country and an ASN database holding recs into dir
// (database types GeoLite2-City, GeoLite2-Country and GeoLite2-ASN) and returns
// a Config naming them, with ReloadInterval 0. Each file is written to a
// temporary name and renamed into place, so Write may also replace the files
// of a running geoip.DB. Reserved networks (private ranges) may be inserted.
// It calls t.Fatal on any error.
func Write(t testing.TB, dir string, recs []Record) geoip.Config {
	t.Helper()
	cfg := geoip.Config{
		CityPath:    filepath.Join(dir, CityFile),
		CountryPath: filepath.Join(dir, CountryFile),
		ASNPath:     filepath.Join(dir, ASNFile),
	}
	write(t, cfg.CityPath, "GeoLite2-City", recs, cityRecord)
	write(t, cfg.CountryPath, "GeoLite2-Country", recs, countryRecord)
	write(t, cfg.ASNPath, "GeoLite2-ASN", recs, asnRecord)
	return cfg
}

func write(t testing.TB, path, dbType string, recs []Record, value func(Record) mmdbtype.Map) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		IncludeReservedNetworks: true,
		RecordSize:              28,
		BuildEpoch:              time.Now().Unix(),
	})
	if err != nil {
		t.Fatalf("cannot create %s tree: %v", dbType, err)
	}
	for _, r := range recs {
		_, network, err := net.ParseCIDR(r.Network)
		if err != nil {
			t.Fatalf("cannot parse network %q: %v", r.Network, err)
		}
		v := value(r)
		if len(v) == 0 {
			continue
		}
		if err := tree.Insert(network, v); err != nil {
			t.Fatalf("cannot insert %s into %s: %v", r.Network, dbType, err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".geoiptest-*")
	if err != nil {
		t.Fatalf("cannot create temporary file: %v", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tree.WriteTo(tmp); err != nil {
		tmp.Close()
		t.Fatalf("cannot write %s: %v", dbType, err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatalf("cannot close %s: %v", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatalf("cannot rename %s: %v", tmp.Name(), err)
	}
}

func countryMap(r Record) mmdbtype.Map {
	m := mmdbtype.Map{}
	if r.Country != "" {
		m["iso_code"] = mmdbtype.String(r.Country)
	}
	if r.CountryName != "" {
		m["names"] = mmdbtype.Map{"en": mmdbtype.String(r.CountryName)}
	}
	return m
}

func countryRecord(r Record) mmdbtype.Map {
	m := mmdbtype.Map{}
	if c := countryMap(r); len(c) > 0 {
		m["country"] = c
	}
	return m
}

func cityRecord(r Record) mmdbtype.Map {
	m := countryRecord(r)
	if r.Lat != 0 || r.Lon != 0 {
		m["location"] = mmdbtype.Map{
			"latitude":  mmdbtype.Float64(r.Lat),
			"longitude": mmdbtype.Float64(r.Lon),
		}
	}
	return m
}

func asnRecord(r Record) mmdbtype.Map {
	m := mmdbtype.Map{}
	if r.ASN != 0 {
		m["autonomous_system_number"] = mmdbtype.Uint32(r.ASN)
	}
	if r.Org != "" {
		m["autonomous_system_organization"] = mmdbtype.String(r.Org)
	}
	return m
}
