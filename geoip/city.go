package geoip

import (
	"fmt"
	"net/netip"

	"github.com/peba-go/peba"
)

// Errors of LookupCity.
var (
	ErrNoCityDatabase = &peba.Error{Code: peba.EUNAVAILABLE, Message: "GeoIP database unavailable"}
	ErrNoRecord       = &peba.Error{Code: peba.ENOTFOUND, Message: "no geolocation data"}
)

// LookupCity returns the whole record the City database holds for ip, as
// the database stores it (names in every language, subdivisions, postal
// code, ...), and the network it belongs to. It is what geoip2-python's
// City response exposes as .raw, without the traits that reader adds
// (seckc.md §3.6): the SecKC /geocode endpoint serves it. Without a City
// database the Country database's record is used.
//
// Errors: ErrNoCityDatabase when neither database is loaded; ErrNoRecord for
// an invalid or private address (IsPrivate, as Lookup's "PIR" rule) and for
// an address the database has no data for. Other errors mean the database
// is corrupt. The maps are new on every call; the caller may modify them.
// LookupCity bypasses Lookup's cache: its records are larger and rarer.
func (db *DB) LookupCity(ip netip.Addr) (map[string]any, netip.Prefix, error) {
	s := db.cur.Load()
	r := s.city
	if r == nil {
		r = s.country
	}
	if r == nil {
		return nil, netip.Prefix{}, ErrNoCityDatabase
	}
	if !ip.IsValid() {
		return nil, netip.Prefix{}, ErrNoRecord
	}
	ip = ip.Unmap().WithZone("")
	if IsPrivate(ip) {
		return nil, netip.Prefix{}, ErrNoRecord
	}
	res := r.Lookup(ip)
	if err := res.Err(); err != nil {
		return nil, netip.Prefix{}, fmt.Errorf("cannot look up %s: %w", ip, err)
	}
	if !res.Found() {
		return nil, netip.Prefix{}, ErrNoRecord
	}
	var rec map[string]any
	if err := res.Decode(&rec); err != nil {
		return nil, netip.Prefix{}, fmt.Errorf("cannot decode the record of %s: %w", ip, err)
	}
	if len(rec) == 0 {
		return nil, netip.Prefix{}, ErrNoRecord
	}
	return rec, res.Prefix(), nil
}
