// Package storerow holds the row conventions both SQL stores (duckdb and
// postgres) share: how events' attributes, addresses and coordinates are
// written to and read from columns, and how users are validated. Keeping them
// in one place is what makes "no behaviour differs between the stores" hold
// for these details; the stores import it, never each other.
package storerow

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"unicode/utf8"

	"github.com/peba-go/peba"
)

// MaxUserField bounds a user's name, token hash and email.
const MaxUserField = 1024

// EncodeAttrs encodes attrs as a JSON array of {"k","v"} objects, which keeps
// order and repetitions. Empty slices are "[]".
func EncodeAttrs(attrs []peba.Attr) (string, error) {
	if len(attrs) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(attrs)
	if err != nil {
		return "", fmt.Errorf("cannot encode attributes: %w", err)
	}
	if len(b) > peba.MaxFieldLen {
		return "", fmt.Errorf("attributes longer than %d bytes", peba.MaxFieldLen)
	}
	return string(b), nil
}

// DecodeAttrs reverses EncodeAttrs; empty attributes come back nil (the
// storetest contract).
func DecodeAttrs(s string) ([]peba.Attr, error) {
	if s == "" || s == "[]" {
		return nil, nil
	}
	var attrs []peba.Attr
	if err := json.Unmarshal([]byte(s), &attrs); err != nil {
		return nil, fmt.Errorf("cannot decode attributes: %w", err)
	}
	return attrs, nil
}

// AddrText stores a netip.Addr as its canonical text ("" when invalid). Text
// rather than a database address type: DuckDB's INET lives in an extension
// that would have to be downloaded at run time, and the text form round-trips
// exactly (zones included) through ParseAddr.
func AddrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// ParseAddr reverses AddrText.
func ParseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("cannot parse stored address: %w", err)
	}
	return a, nil
}

// CanonFloat gives each coordinate the one value the database also treats
// as that key: +0 for -0, and one NaN for all NaNs. Otherwise two Go map
// keys could be one database key, and an upsert would update a row twice.
func CanonFloat(f float64) float64 {
	if math.IsNaN(f) {
		return math.NaN()
	}
	return f + 0
}

// LocKey formats a location key (peba.DimSrcLocation/DimDstLocation). Adding
// 0 turns -0 into 0, so that both zeros (equal in SQL) give one key.
func LocKey(lat, lon float64) string {
	return strconv.FormatFloat(lat+0, 'g', -1, 64) + "," + strconv.FormatFloat(lon+0, 'g', -1, 64)
}

// SensorGroup is TpotStats' grouping rule (peba.SensorGroup): events with a
// hostname group by hostname; PEBA's "undefined" default (or none) groups by
// target address.
func SensorGroup(hostname, dstIP string) (host, ip string) {
	if hostname == "" || hostname == "undefined" {
		return "", dstIP
	}
	return hostname, ""
}

// ValidateUser checks what both stores require of a user row.
func ValidateUser(u *peba.User) error {
	if u.Name == "" {
		return peba.Errorf(peba.EINVALID, "user name is empty")
	}
	for _, f := range []string{u.Name, u.TokenHash, u.Email} {
		if len(f) > MaxUserField || !utf8.ValidString(f) {
			return peba.Errorf(peba.EINVALID, "user field is too long or not valid UTF-8")
		}
	}
	return nil
}
