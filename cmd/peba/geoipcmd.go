package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/peba-go/peba/config"
	"github.com/peba-go/peba/geoip"
)

// runGeoIP is `peba geoip info` (which databases are configured, their
// type and age) and `peba geoip lookup IP` (what they say about an
// address: the fields events get, and the raw City record).
func runGeoIP(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, fs, err := config.Load("geoip", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	sub := fs.Arg(0)
	if !(sub == "info" && fs.NArg() == 1) && !(sub == "lookup" && fs.NArg() == 2) {
		fmt.Fprintln(stderr, "usage: peba geoip info | peba geoip lookup IP  (databases: GEOIP_CITY, GEOIP_COUNTRY, GEOIP_ASN)")
		return errUsage
	}
	db, err := geoip.Open(geoip.Config{CityPath: cfg.GeoIPCity, CountryPath: cfg.GeoIPCountry, ASNPath: cfg.GeoIPASN, CacheSize: -1},
		slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		return err
	}
	defer db.Close()
	if sub == "info" {
		return geoipInfo(db, stdout, time.Now())
	}
	ip, err := netip.ParseAddr(fs.Arg(1))
	if err != nil {
		return fmt.Errorf("cannot parse address %q: %w", fs.Arg(1), err)
	}
	ip = ip.WithZone("").Unmap()
	g := db.Lookup(ip)
	fmt.Fprintf(stdout, "address       %s\nprivate range %v\ncountry       %s (%s)\nASN           %s\nlocation      %g, %g\n",
		ip, geoip.IsPrivate(ip), g.Country, g.CountryName, g.ASN, g.Lat, g.Lon)
	rec, network, err := db.LookupCity(ip)
	if err != nil {
		fmt.Fprintf(stdout, "city record   none (%v)\n", err)
		return nil
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode city record: %w", err)
	}
	fmt.Fprintf(stdout, "network       %s\ncity record   %s\n", network, b)
	return nil
}

// geoipInfo prints one line per database slot. DB-IP Lite is published
// monthly and GeoLite2 twice a week: a database older than 45 days is
// flagged so an operator notices a broken update job.
func geoipInfo(db *geoip.DB, w io.Writer, now time.Time) error {
	loaded := 0
	for _, st := range db.Status() {
		switch {
		case st.Path == "":
			fmt.Fprintf(w, "%-8s not configured\n", st.Kind)
		case !st.Loaded:
			fmt.Fprintf(w, "%-8s %s: NOT LOADED: %s\n", st.Kind, st.Path, st.Err)
		default:
			loaded++
			age := int(now.Sub(st.BuildTime).Hours() / 24)
			stale := ""
			if age > 45 {
				stale = "  STALE: update it (docs/deployment.md, GeoIP updates)"
			}
			fmt.Fprintf(w, "%-8s %s: %s, built %s (%d days ago)%s\n", st.Kind, st.Path, st.Type, st.BuildTime.UTC().Format("2006-01-02"), age, stale)
		}
	}
	if loaded == 0 {
		fmt.Fprintln(w, "no database loaded: events get country '-' (private ranges still map to PIR)")
	}
	return nil
}
