package ews

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"hash"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/peba-go/peba"
)

// PEBA's defaults for an alert (peba.md §4.3).
const (
	defaultIP       = "1.1.1.1"
	defaultHostname = "undefined"
	unclassified    = "Unclassified"
	timeLayout      = "2006-1-2 15:4:5" // Python %Y-%m-%d %H:%M:%S accepts 1- or 2-digit fields
)

// builder turns the children of one Alert into an event. It is reused for
// every alert of a body.
type builder struct {
	opt  Options
	h    hash.Hash
	num  []byte
	ev   *peba.Event
	note []peba.Attr // _truncated and other notes, appended to Fields
}

func (b *builder) init(opt Options) {
	b.opt = opt
	b.h = sha256.New()
}

// trunc bounds a text field to MaxFieldBytes at a UTF-8 boundary and records
// the truncation.
func (b *builder) trunc(field, s string) string {
	max := b.opt.MaxFieldBytes
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	b.note = append(b.note, peba.Attr{Key: "_truncated", Value: field})
	return s[:max]
}

func attr(c *child, name string) (string, bool) {
	for _, a := range c.attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// addData implements PEBA's additionalData dict: setting an existing key
// keeps its insertion position (Python dict semantics, peba.md §5.1).
func addData(ad []peba.Attr, k, v string) []peba.Attr {
	for i := range ad {
		if ad[i].Key == k {
			ad[i].Value = v
			return ad
		}
	}
	return append(ad, peba.Attr{Key: k, Value: v})
}

// build applies PEBA's per-alert rules (peba.md §4.3) to the direct children
// of one Alert, in document order, the last occurrence winning. It returns a
// non-empty reason when the alert can never be stored.
func (b *builder) build(children []child) (peba.Event, string) {
	ev := peba.Event{
		Origin:     "ews",
		Hostname:   defaultHostname,
		ExternalIP: defaultIP,
		InternalIP: defaultIP,
		SrcPort:    peba.NoPort,
		DstPort:    peba.NoPort,
	}
	b.note = b.note[:0]
	var (
		analyzerID, description   string
		hasAnalyzer               bool
		srcText, dstText          string
		hasSrc, hasDst            bool
		dstPort                   = "None" // Python str(None): fixUrl of a missing Target@port (§4.6)
		timeText, tz              string
		hasTime, hasTZ            bool
		rawHTTP                   string
		payload                   []byte
		hasPayload                bool
		adPayloadMD5, adMD5Source string // final additionalData payload_md5 and who set it
	)
	for i := range children {
		c := &children[i]
		switch c.name {
		case "Analyzer":
			id, ok := attr(c, "id")
			analyzerID, hasAnalyzer = b.trunc("Analyzer@id", id), ok
		case "Source":
			srcText, hasSrc = string(c.text), true
			port, _ := attr(c, "port")
			ev.SrcPort = parsePort(port)
			proto, _ := attr(c, "protocol")
			ev.Transport = b.trunc("Source@protocol", proto)
		case "Target":
			dstText, hasDst = string(c.text), true
			port, ok := attr(c, "port")
			ev.DstPort = parsePort(port)
			if ok {
				dstPort = b.trunc("Target@port", port)
			} else {
				dstPort = "None"
			}
		case "CreateTime":
			timeText, hasTime = string(c.text), true
			tz, hasTZ = attr(c, "tz")
		case "Request":
			typ, _ := attr(c, "type")
			switch typ {
			case "raw", "binary", "largepayload":
				// PEBA reads raw and binary (§4.7); ewsposter sends files
				// over 5 KiB as largepayload (ewsposter.md §2.2).
				if len(c.text) == 0 {
					continue
				}
				data, ok := decodeBase64(c.text)
				if !ok {
					b.note = append(b.note, peba.Attr{Key: "_payload_invalid", Value: "Request/" + typ})
					continue
				}
				payload, hasPayload = data, true
				sum := md5.Sum(data)
				adPayloadMD5, adMD5Source = hex.EncodeToString(sum[:]), "bytes"
				ev.AdditionalData = addData(ev.AdditionalData, "payload_md5", adPayloadMD5)
				if isHTTP(data) {
					rawHTTP = string(data)
				}
				continue
			}
			text := b.trunc("Request/"+typ, string(c.text))
			ev.Requests = append(ev.Requests, peba.Attr{Key: typ, Value: text})
			switch typ {
			case "url":
				if text != "" {
					ev.URL = unquote(text)
				}
			case "description":
				description = text
			}
		case "AdditionalData":
			meaning, _ := attr(c, "meaning")
			if meaning == "binary" {
				// glutton: base64 of the payload, url-encoded (§4.3). Like
				// Request raw it goes to the payload, not to Fields.
				if len(c.text) == 0 {
					continue
				}
				data, ok := decodeBase64([]byte(unquote(string(c.text))))
				if !ok {
					b.note = append(b.note, peba.Attr{Key: "_payload_invalid", Value: "AdditionalData/binary"})
					continue
				}
				payload, hasPayload = data, true
				sum := md5.Sum(data)
				adPayloadMD5, adMD5Source = hex.EncodeToString(sum[:]), "bytes"
				ev.AdditionalData = addData(ev.AdditionalData, "payload_md5", adPayloadMD5)
				continue
			}
			text := b.trunc(meaning, string(c.text))
			ev.Fields = append(ev.Fields, peba.Attr{Key: meaning, Value: text})
			b.additional(&ev, meaning, text)
			if meaning == "payload_md5" {
				adPayloadMD5, adMD5Source = text, "sensor"
			}
		}
	}

	// Skip rules (docs/ews-decoder.md): only what makes the alert unusable.
	if !hasAnalyzer || analyzerID == "" {
		return ev, "Analyzer id is missing or empty"
	}
	ev.PeerIdent = analyzerID
	ev.PeerType = peerType(analyzerID, description)
	if hasSrc {
		ip, ok := parseIP(srcText)
		if !ok {
			return ev, "Source is not an IP address"
		}
		ev.SrcIP = ip
	}
	if hasDst && dstText != "" {
		ip, ok := parseIP(dstText)
		if !ok {
			return ev, "Target is not an IP address"
		}
		ev.DstIP = ip
	}
	if !hasTime || timeText == "" {
		return ev, "CreateTime is missing or empty"
	}
	local, err := time.ParseInLocation(timeLayout, timeText, time.UTC)
	if err != nil {
		return ev, "CreateTime is not a YYYY-MM-DD HH:MM:SS time"
	}
	ev.CreateTime = local
	// The honeytrap exception is evaluated on the final peerType, not at the
	// CreateTime element's position (B-3).
	if !strings.Contains(strings.ToLower(ev.PeerType), "honeytrap") {
		if !hasTZ || tz == "" {
			return ev, "CreateTime has no tz"
		}
		utc, ok := toUTC(local, tz)
		if !ok {
			b.note = append(b.note, peba.Attr{Key: "_tz_invalid", Value: b.trunc("CreateTime@tz", tz)})
		}
		ev.CreateTime = utc
	}

	ev.URL = fixURL(dstPort, ev.Transport, ev.URL, ev.PeerType)
	if utf8.RuneCountInString(ev.VulnID) > 2 {
		ev.URL = "(" + ev.VulnID + ") " + ev.URL
	}
	ev.RawHTTP = b.trunc("rawhttp", rawHTTP)
	if hasPayload {
		ev.Payload = newPayload(payload, b.opt.MaxPayloadBytes)
		ev.PayloadMD5 = ev.Payload.MD5
	} else if adMD5Source == "sensor" && isMD5(adPayloadMD5) {
		ev.PayloadMD5 = strings.ToLower(adPayloadMD5)
	}
	if len(b.note) > 0 {
		ev.Fields = append(ev.Fields, b.note...)
	}
	return ev, ""
}

// additional applies PEBA's AdditionalData meanings (peba.md §4.3 table).
func (b *builder) additional(ev *peba.Event, meaning, text string) {
	switch meaning {
	case "username":
		ev.Username = text
	case "password":
		ev.Password = text
	case "login":
		ev.Login = text
	case "version":
		ev.ClientVersion = text
	case "starttime":
		if text != "" {
			ev.SessionStart = unquote(text)
		}
	case "endtime":
		if text != "" {
			ev.SessionEnd = unquote(text)
		}
	case "cve_id":
		if text != "" {
			ev.VulnID = unquote(text)
		}
	case "input":
		if text != "" {
			ev.URL = unquote(text)
		}
	case "externalIP":
		if text != "" {
			ev.ExternalIP = text
		}
	case "internalIP":
		if text != "" {
			ev.InternalIP = text
		}
	case "hostname":
		if text != "" {
			ev.Hostname = text
		}
	case "uuid":
		ev.SensorUUID = text
	case "protocol":
		ev.AdditionalData = addData(ev.AdditionalData, "protocol", text)
	case "payload":
		ev.AdditionalData = addData(ev.AdditionalData, "payload", unquote(text))
	case "payload_md5":
		ev.AdditionalData = addData(ev.AdditionalData, "payload_md5", text)
	case "conpot_sensor_id", "conpot_event_type", "conpot_data_type", "conpot_response", "conpot_request", "conpot_id":
		if text != "" {
			ev.AdditionalData = addData(ev.AdditionalData, meaning, text)
		}
	}
}

// parsePort returns the port number of a Source/Target port attribute, or
// peba.NoPort. Surrounding whitespace is ignored (rdpy sends "49000\n",
// ewsposter.md §2.2).
func parsePort(s string) int32 {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return peba.NoPort
	}
	return int32(n)
}

// parseIP accepts IPv4 and IPv6 without zone (B-36) and unmaps IPv4-mapped
// IPv6 (::ffff:a.b.c.d) to IPv4. Like Python's ipaddress it rejects
// surrounding spaces and leading-zero octets.
func parseIP(s string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

func isMD5(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// unquote is Python's urllib.parse.unquote: %XX sequences become bytes,
// invalid sequences stay literal, '+' stays '+', and the bytes are decoded
// as UTF-8 with U+FFFD for invalid bytes.
func unquote(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			buf = append(buf, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		buf = append(buf, s[i])
	}
	if utf8.Valid(buf) {
		return string(buf)
	}
	var sb strings.Builder
	sb.Grow(len(buf) + 8)
	for len(buf) > 0 {
		r, n := utf8.DecodeRune(buf)
		sb.WriteRune(r) // RuneError for an invalid byte is U+FFFD
		buf = buf[n:]
	}
	return sb.String()
}

// toUTC is PEBA's calculateUTCTime (peba.md §4.5): sign = tz[0],
// hh = tz[1:3], mm = tz[3:5] (Python slices, by code point); '+' subtracts,
// any other first character adds. "+0000" is the identity. ok is false when
// hh or mm are not digits (PEBA crashed, B-2); the time is then kept as UTC.
func toUTC(local time.Time, tz string) (time.Time, bool) {
	if tz == "+0000" {
		return local, true
	}
	var r [5]rune
	n := 0
	for _, c := range tz {
		if n == len(r) {
			break
		}
		r[n] = c
		n++
	}
	num := func(from, to int) (int, bool) {
		to = min(to, n)
		if from >= to {
			return 0, false
		}
		v := 0
		for _, c := range r[from:to] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	hh, ok1 := num(1, 3)
	mm, ok2 := num(3, 5)
	if !ok1 || !ok2 {
		return local, false
	}
	d := time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute
	if r[0] == '+' {
		return local.Add(-d), true
	}
	return local.Add(d), true
}

// fixURL is PEBA's fixUrl (peba.md §4.6), quirks included: the suffix is
// added when the lower-cased transport is a substring of "udp" or "tcp"
// (so also for ""), and honeytrap/Dionaea urls are replaced.
func fixURL(dstPort, transport, url, peerType string) string {
	if !strings.Contains(peerType, "honeytrap") && !strings.Contains(peerType, "Dionaea") {
		return url
	}
	suffix := ""
	lt := strings.ToLower(transport)
	if strings.Contains("udp", lt) || strings.Contains("tcp", lt) {
		suffix = "/" + transport
	}
	return "Attack on port " + dstPort + suffix
}

// digest is the canonical, unambiguous encoding of an alert's direct
// children hashed with sha256: per child its name, its attributes sorted by
// name then value, and its text verbatim, each length-prefixed. Whitespace
// between children is not part of it, so a pretty-printed resend matches.
func (b *builder) digest(children []child) [sha256.Size]byte {
	b.h.Reset()
	for i := range children {
		c := &children[i]
		b.writeLP(c.name)
		b.num = binary.AppendUvarint(b.num[:0], uint64(len(c.attrs)))
		b.h.Write(b.num)
		attrs := c.attrs
		if !slices.IsSortedFunc(attrs, cmpAttr) {
			attrs = slices.Clone(attrs)
			slices.SortFunc(attrs, cmpAttr)
		}
		for _, a := range attrs {
			b.writeLP(attrName(a.Name))
			b.writeLP(a.Value)
		}
		b.num = binary.AppendUvarint(b.num[:0], uint64(len(c.text)))
		b.h.Write(b.num)
		b.h.Write(c.text)
	}
	var d [sha256.Size]byte
	b.h.Sum(d[:0])
	return d
}

func (b *builder) writeLP(s string) {
	b.num = binary.AppendUvarint(b.num[:0], uint64(len(s)))
	b.h.Write(b.num)
	b.h.Write([]byte(s))
}

func attrName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

func cmpAttr(x, y xml.Attr) int {
	if c := strings.Compare(attrName(x.Name), attrName(y.Name)); c != 0 {
		return c
	}
	return strings.Compare(x.Value, y.Value)
}

// eventID is the first 32 hex characters of
// sha256(uvarint(len(submitter)) || submitter || digest || uint64be(occurrence)),
// where occurrence counts the alerts with the same digest earlier in the
// body. Identical alerts in one body stay distinct events; a resent body
// yields the same IDs.
func eventID(submitter string, digest [sha256.Size]byte, occurrence int) string {
	h := sha256.New()
	h.Write(binary.AppendUvarint(nil, uint64(len(submitter))))
	h.Write([]byte(submitter))
	h.Write(digest[:])
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(occurrence)))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))[:32]
}
