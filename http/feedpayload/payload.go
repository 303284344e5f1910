// Package feedpayload builds the SecKC live-feed event payload (seckc.md §4.4)
// and its sanitized form for anonymous viewers. Both the live feed
// (http/livefeed: Socket.IO, SSE) and the SecKC REST API
// (http/seckcapi: /feeds/events/recent) serve it, so it lives below both:
// adapters do not import each other (architecture.md).
package feedpayload

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/peba-go/peba"
)

// maxValueLen bounds every string in a live payload: attackers control the
// fields, and one huge URL must not be copied to every viewer.
const maxValueLen = 2048

// Field is one key/value of a live payload. Value is a string, an int64 or a
// float64.
type Field struct {
	Key   string
	Value any
}

// Payload is the `hpfeedevent` object (seckc.md §4.4): an ordered list of
// fields, encoded as a JSON object in this order, with `identifier`,
// `channel` and `timestamp` last as SecKC appends them.
type Payload []Field

// NewPayload builds the full (authenticated) payload of ev. Empty strings,
// absent ports and invalid addresses are left out. Key names follow the
// hpfeeds payloads the SecKC Globe reads (src_ip, username, password,
// protocol; seckc.md §8) and PEBA's field names elsewhere.
func NewPayload(ev *peba.Event) Payload {
	p := make(Payload, 0, 32)
	str := func(k, v string) {
		if v != "" {
			p = append(p, Field{k, truncate(v)})
		}
	}
	port := func(k string, v int32) {
		if v != peba.NoPort && v >= 0 {
			p = append(p, Field{k, int64(v)})
		}
	}
	addr := func(k string, v interface {
		IsValid() bool
		String() string
	}) {
		if v.IsValid() {
			p = append(p, Field{k, v.String()})
		}
	}
	str("event_id", ev.ID)
	str("domain", ev.Domain.String())
	addr("src_ip", ev.SrcIP)
	port("src_port", ev.SrcPort)
	str("src_country", geoStr(ev.Src.Country))
	str("src_country_name", geoStr(ev.Src.CountryName))
	str("src_asn", geoStr(ev.Src.ASN))
	if ev.Src.Lat != 0 || ev.Src.Lon != 0 {
		p = append(p, Field{"latitude", ev.Src.Lat}, Field{"longitude", ev.Src.Lon})
	}
	addr("dst_ip", ev.DstIP)
	port("dst_port", ev.DstPort)
	// The sensor's coarse GeoIP location, for the dashboard's arcs. Not
	// sanitized: PEBA's public ticker showed it (destLat/destLng,
	// targetCountry) and /sensors/locations shows it to everyone.
	str("dst_country", geoStr(ev.Dst.Country))
	if ev.Dst.Lat != 0 || ev.Dst.Lon != 0 {
		p = append(p, Field{"dst_latitude", ev.Dst.Lat}, Field{"dst_longitude", ev.Dst.Lon})
	}
	str("protocol", ev.Transport)
	str("peerType", ev.PeerType)
	str("username", ev.Username)
	str("password", ev.Password)
	str("login", ev.Login)
	str("url", ev.URL)
	str("vulnid", ev.VulnID)
	str("clientVersion", ev.ClientVersion)
	str("payload_md5", ev.PayloadMD5)
	str("hostname", ev.Hostname)
	str("externalIP", ev.ExternalIP)
	str("internalIP", ev.InternalIP)
	str("sensor_uuid", ev.SensorUUID)
	str("peerIdent", ev.PeerIdent)
	if !ev.CreateTime.IsZero() {
		p = append(p, Field{"createTime", ev.CreateTime.UTC().Format("2006-01-02T15:04:05Z")})
	}
	// SecKC: identifier = the publisher's ident, channel = the hpfeeds
	// channel, timestamp = float epoch seconds (§4.4 step 2).
	str("identifier", ev.PeerIdent)
	str("channel", ev.Origin)
	p = append(p, Field{"timestamp", float64(ev.ReceivedTime.UnixMicro()) / 1e6})
	return p
}

// geoStr maps PEBA's "-" (unknown) to "" so it is left out.
func geoStr(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

func truncate(s string) string {
	if len(s) <= maxValueLen {
		return s
	}
	i := maxValueLen
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// SanitizeOptions select what Sanitize removes besides the fixed rule.
type SanitizeOptions struct {
	// KeepCredentials keeps username, password and login. Default: removed
	// (t-pot-attack-map#9 asks for a public map without credentials).
	KeepCredentials bool
	// HidePeerIdent also removes peerIdent and identifier, for operators
	// whose sensor names identify them.
	HidePeerIdent bool
}

// alwaysRemoved is the fixed part of the anonymous rule (docs/livefeed.md):
// SecKC's sanitize_data keys (seckc.md §4.6), the destination keys SecKC
// forgot (§4.6 "does not remove"), and our own sensors' addresses,
// identifiers and secrets.
var alwaysRemoved = map[string]bool{
	// sanitize_data, exactly.
	"hostIP": true, "local_host": true, "victimIP": true, "secret": true,
	// Destination / honeypot addresses SecKC leaks.
	"daddr": true, "dst_ip": true, "local": true, "public_ip": true, "destination_ip": true,
	"server_ip": true, "dest_ip": true, "dest_host": true, "honeypot": true,
	// Our sensors' identity.
	"hostname": true, "externalIP": true, "internalIP": true, "sensor_uuid": true,
	// Private-domain bookkeeping an anonymous viewer has no use for.
	"domain": true,
}

var credentialKeys = map[string]bool{"username": true, "password": true, "login": true}

var peerIdentKeys = map[string]bool{"peerIdent": true, "identifier": true}

// Sanitize returns the anonymous view of p: a new Payload without the keys
// of the rule in docs/livefeed.md. p is not modified. Like SecKC's
// sanitize_data, keys match exactly and case-sensitively.
func Sanitize(p Payload, opt SanitizeOptions) Payload {
	out := make(Payload, 0, len(p))
	for _, f := range p {
		if alwaysRemoved[f.Key] ||
			(!opt.KeepCredentials && credentialKeys[f.Key]) ||
			(opt.HidePeerIdent && peerIdentKeys[f.Key]) {
			continue
		}
		out = append(out, f)
	}
	return out
}

// AppendJSON appends p as a compact JSON object in field order. Like SecKC's
// Socket.IO JSON (ensure_ascii, seckc.md §4.2) every non-ASCII rune is
// written as \uXXXX; invalid UTF-8 becomes U+FFFD.
func (p Payload) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	for i, f := range p {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, f.Key)
		b = append(b, ':')
		switch v := f.Value.(type) {
		case string:
			b = appendString(b, v)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				b = append(b, "null"...)
			} else {
				b = strconv.AppendFloat(b, v, 'f', -1, 64)
			}
		default:
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, ASCII only. Runs of plain ASCII
// are copied at once: payloads are mostly ASCII, and every viewer-facing
// event passes through here.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0 // s[start:i] is plain ASCII, not yet appended
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		r, size := rune(c), 1
		if c >= 0x80 {
			r, size = utf8.DecodeRuneInString(s[i:]) // invalid UTF-8: RuneError, 1
		}
		b = appendEscaped(b, r)
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendEscaped appends r, which plain ASCII is not, escaped.
func appendEscaped(b []byte, r rune) []byte {
	switch {
	case r == '"' || r == '\\':
		return append(b, '\\', byte(r))
	case r == '\n':
		return append(b, '\\', 'n')
	case r == '\r':
		return append(b, '\\', 'r')
	case r == '\t':
		return append(b, '\\', 't')
	case r > 0xffff:
		r1, r2 := utf16Pair(r)
		return appendU(appendU(b, r1), r2)
	default:
		return appendU(b, r)
	}
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

func utf16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}
