package peba

import (
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// Bounds that every Store accepts. Decoders bound their inputs far more
// tightly; these keep what ingest acknowledges within what a store can keep.
const (
	MaxEventIDLen = 256     // bytes
	MaxFieldLen   = 1 << 20 // bytes per string field, and per []Attr as JSON
)

// ValidateEvent reports (as a plain error, for the caller to wrap) what a
// store could not keep faithfully: an ID outside 1..MaxEventIDLen bytes, a
// domain other than community or private, a string or attribute that is not
// valid UTF-8 (DuckDB VARCHAR and PostgreSQL text refuse it), a field longer
// than MaxFieldLen, an attribute list whose JSON form is longer than
// MaxFieldLen, a time outside the years 1..9999, or a source or target
// coordinate that is NaN or infinite (both stores would keep it, but no
// JSON answer could carry it: encoders fail or write null or 0).
//
// Ingest calls it before acknowledging, so that a store never refuses an
// acknowledged event (such a refusal cannot be cured by a resend); stores
// call it again as a second line.
func ValidateEvent(e *Event) error {
	if e.ID == "" || len(e.ID) > MaxEventIDLen {
		return fmt.Errorf("id must have 1 to %d bytes", MaxEventIDLen)
	}
	if e.Domain != DomainCommunity && e.Domain != DomainPrivate {
		return fmt.Errorf("invalid domain %d", e.Domain)
	}
	if !finite(e.Src.Lat) || !finite(e.Src.Lon) {
		return fmt.Errorf("source location is not a finite number")
	}
	if !finite(e.Dst.Lat) || !finite(e.Dst.Lon) {
		return fmt.Errorf("target location is not a finite number")
	}
	var buf [30]string
	for _, f := range eventStrings(e, &buf) {
		if len(f) > MaxFieldLen {
			return fmt.Errorf("field longer than %d bytes", MaxFieldLen)
		}
		if !utf8.ValidString(f) {
			return fmt.Errorf("field is not valid UTF-8")
		}
	}
	for _, as := range [][]Attr{e.AdditionalData, e.Fields, e.Requests} {
		// A byte becomes at most 6 in JSON: the exact length (a second
		// pass over every string, on the applier's thread too) is needed
		// only when that bound could exceed the limit.
		bound := 2 // []
		for _, a := range as {
			if !utf8.ValidString(a.Key) || !utf8.ValidString(a.Value) {
				return fmt.Errorf("attribute is not valid UTF-8")
			}
			bound += attrJSONOverhead + 6*(len(a.Key)+len(a.Value))
		}
		if bound <= MaxFieldLen {
			continue
		}
		size := 2
		for _, a := range as {
			size += attrJSONOverhead + jsonLen(a.Key) + jsonLen(a.Value)
		}
		if size > MaxFieldLen {
			return fmt.Errorf("attributes longer than %d bytes", MaxFieldLen)
		}
	}
	ts := [4]time.Time{e.ReceivedTime, e.CreateTime}
	if p := e.Payload; p != nil {
		ts[2], ts[3] = p.FirstSeen, p.LastSeen
	}
	for _, t := range ts {
		if y := t.UTC().Year(); y < 1 || y > 9999 {
			return fmt.Errorf("time %d is out of range", y)
		}
	}
	return nil
}

// attrJSONOverhead is what an attribute adds to its list's JSON besides
// its key and value.
const attrJSONOverhead = len(`{"k":"","v":""},`)

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// eventStrings returns every string field of e that a store keeps (not the
// attribute lists), in buf: the validation of every ingested event must not
// allocate for it (8% of all ingest allocated, when it returned a new slice).
func eventStrings(e *Event, buf *[30]string) []string {
	fs := append(buf[:0], e.ID, e.Submitter, e.Origin, e.PeerIdent, e.PeerType, e.SensorUUID,
		e.Hostname, e.ExternalIP, e.InternalIP, e.Transport, e.URL, e.VulnID, e.Username,
		e.Password, e.Login, e.ClientVersion, e.SessionStart, e.SessionEnd, e.RawHTTP,
		e.PayloadMD5, e.Src.Country, e.Src.CountryName, e.Src.ASN,
		e.Dst.Country, e.Dst.CountryName, e.Dst.ASN)
	if p := e.Payload; p != nil {
		fs = append(fs, p.MD5, p.FuzzyHash, p.MIME, p.InitialIP)
	}
	return fs
}

// jsonLen bounds the length of s as an encoding/json string body: control
// characters, <, >, & and U+2028/U+2029 may become 6-byte escapes.
func jsonLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			n += 2
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			n += 6
		case c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9):
			n += 6
			i += 2
		default:
			n++
		}
	}
	return n
}
