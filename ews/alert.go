package ews

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
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
	opt   Options
	note  []peba.Attr // _truncated and other notes, appended to Fields
	order []int32     // digest's attribute sorting scratch
	buf   []byte      // digest's canonical encoding, build's text scratch
	offs  []int       // build: offset of each child's text in the joined texts
	h     hash.Hash   // sha256 for digest
	sum   [sha256.Size]byte
}

func (b *builder) init(opt Options) {
	b.opt = opt
	if b.h == nil {
		b.h = sha256.New()
	}
}

// isPayload reports whether c carries base64 payload bytes rather than a
// text field (peba.md §4.7; glutton's AdditionalData binary, §4.3).
func isPayload(c *child) bool {
	switch string(c.name) {
	case "Request":
		t, _ := attr(c, "type")
		return string(t) == "raw" || string(t) == "binary" || string(t) == "largepayload"
	case "AdditionalData":
		m, _ := attr(c, "meaning")
		return string(m) == "binary"
	}
	return false
}

// joinTexts returns the texts of the non-payload children as one string,
// with b.offs[i] the offset of children[i]'s text in it: the text fields of
// an alert then cost one allocation instead of one each.
func (b *builder) joinTexts(children []child) string {
	b.buf, b.offs = b.buf[:0], b.offs[:0]
	for i := range children {
		b.offs = append(b.offs, len(b.buf))
		if !isPayload(&children[i]) {
			b.buf = append(b.buf, children[i].text...)
		}
	}
	b.offs = append(b.offs, len(b.buf))
	return string(b.buf)
}

// trunc bounds a text field to MaxFieldBytes at a UTF-8 boundary and records
// the truncation.
func (b *builder) trunc(field, s string) string {
	return b.truncIn("", field, s)
}

// truncIn is trunc for the field prefix+field (concatenated only when
// recorded).
func (b *builder) truncIn(prefix, field, s string) string {
	max := b.opt.MaxFieldBytes
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	b.note = append(b.note, peba.Attr{Key: "_truncated", Value: prefix + field})
	return s[:max]
}

// attr returns the first attribute called name, like encoding/xml's
// Decoder did before (duplicates are not an error, xmlscan.go).
func attr(c *child, name string) ([]byte, bool) {
	for _, a := range c.attrs {
		if string(a.name) == name {
			return a.value, true
		}
	}
	return nil, false
}

// attrString is attr as a string.
func attrString(c *child, name string) (string, bool) {
	v, ok := attr(c, name)
	return string(v), ok
}

// knownKeys interns the Request types, AdditionalData meanings and
// protocols that ewsposter sends (ewsposter.md §2.2), so that Fields and
// Requests keys and Transport do not allocate a string per alert.
var knownKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"url", "description", "raw", "binary", "largepayload",
		"username", "password", "login", "version", "starttime", "endtime", "cve_id", "input",
		"externalIP", "internalIP", "hostname", "uuid", "protocol", "payload", "payload_md5",
		"conpot_sensor_id", "conpot_event_type", "conpot_data_type", "conpot_response", "conpot_request", "conpot_id",
		"sourcemac", "cmd", "commands", "session", "mode", "request", "response", "method", "path", "port",
		"tcp", "udp",
	} {
		m[k] = k
	}
	return m
}()

func key(v []byte) string {
	if k, ok := knownKeys[string(v)]; ok {
		return k
	}
	return string(v)
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
	texts := b.joinTexts(children)
	nFields, nRequests := 0, 0
	for i := range children {
		switch string(children[i].name) {
		case "AdditionalData":
			nFields++
		case "Request":
			nRequests++
		}
	}
	if nFields > 0 {
		ev.Fields = make([]peba.Attr, 0, nFields+2) // +2: room for notes
	}
	if nRequests > 0 {
		ev.Requests = make([]peba.Attr, 0, nRequests)
	}
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
		text := texts[b.offs[i]:b.offs[i+1]] // "" for payloads
		switch string(c.name) {
		case "Analyzer":
			id, ok := attrString(c, "id")
			analyzerID, hasAnalyzer = b.trunc("Analyzer@id", id), ok
		case "Source":
			srcText, hasSrc = text, true
			port, _ := attr(c, "port")
			ev.SrcPort = parsePort(port)
			proto, _ := attr(c, "protocol")
			ev.Transport = b.trunc("Source@protocol", key(proto))
		case "Target":
			dstText, hasDst = text, true
			port, ok := attr(c, "port")
			ev.DstPort = parsePort(port)
			if ok {
				dstPort = b.trunc("Target@port", string(port))
			} else {
				dstPort = "None"
			}
		case "CreateTime":
			timeText, hasTime = text, true
			tz, hasTZ = attrString(c, "tz")
		case "Request":
			t, _ := attr(c, "type")
			typ := key(t)
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
			text = b.truncIn("Request/", typ, text)
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
			m, _ := attr(c, "meaning")
			meaning := key(m)
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
			text = b.trunc(meaning, text)
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
func parsePort(s []byte) int32 {
	n, err := strconv.ParseUint(string(bytes.TrimSpace(s)), 10, 16)
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
	// buf is local (stored back at the end): appending to the field b.buf
	// would cost a GC write barrier per piece.
	buf := b.buf[:0]
	for i := range children {
		c := &children[i]
		buf = b.writeLP(buf, c.name)
		buf = binary.AppendUvarint(buf, uint64(len(c.attrs)))
		attrs := c.attrs
		if slices.IsSortedFunc(attrs, cmpAttr) {
			for _, a := range attrs {
				buf = b.writeLP(buf, a.name)
				buf = b.writeLP(buf, a.value)
			}
		} else {
			// Sorting indices, not the attributes, saves the GC write
			// barriers of moving slices around.
			b.order = b.order[:0]
			for j := range attrs {
				b.order = append(b.order, int32(j))
			}
			slices.SortFunc(b.order, func(x, y int32) int { return cmpAttr(attrs[x], attrs[y]) })
			for _, j := range b.order {
				buf = b.writeLP(buf, attrs[j].name)
				buf = b.writeLP(buf, attrs[j].value)
			}
		}
		buf = b.writeLP(buf, c.text)
	}
	b.h.Write(buf)
	b.buf = buf
	return [sha256.Size]byte(b.h.Sum(b.sum[:0]))
}

// writeLP adds uvarint(len(s)) || s to the digest: small pieces are
// collected in buf, long texts (payloads) go to the hash without a copy.
func (b *builder) writeLP(buf, s []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	if len(s) < 512 {
		return append(buf, s...)
	}
	b.h.Write(buf)
	b.h.Write(s)
	return buf[:0]
}

// cmpAttr orders attributes by name as written ("x:a" as one string), then
// by value.
func cmpAttr(x, y xattr) int {
	if c := bytes.Compare(x.name, y.name); c != 0 {
		return c
	}
	return bytes.Compare(x.value, y.value)
}

// eventID is the first 32 hex characters of
// sha256(uvarint(len(submitter)) || submitter || digest || uint64be(occurrence)),
// where occurrence counts the alerts with the same digest earlier in the
// body. Identical alerts in one body stay distinct events; a resent body
// yields the same IDs.
// buf is scratch space, returned for reuse.
func eventID(buf []byte, submitter string, digest [sha256.Size]byte, occurrence int) (string, []byte) {
	buf = binary.AppendUvarint(buf[:0], uint64(len(submitter)))
	buf = append(buf, submitter...)
	buf = append(buf, digest[:]...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(occurrence))
	sum := sha256.Sum256(buf)
	var id [32]byte
	hex.Encode(id[:], sum[:16])
	return string(id[:]), buf
}
