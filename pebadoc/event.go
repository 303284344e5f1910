package pebadoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/peba-go/peba"
)

// Limits and defaults of the format.
const (
	// maxIDLen is Elasticsearch's limit on _id (512 bytes): no PEBA document
	// can have a longer one, so a longer one is garbage.
	maxIDLen = 512
	// xTimeLayout is RFC 3339 with microseconds, the precision both stores keep.
	xTimeLayout = "2006-01-02T15:04:05.000000Z07:00"
	// originImport is peba.Event.Origin of documents that came from PEBA.
	originImport = "import"
)

// PEBA's initial values (peba.md §4.3) that its document format cannot tell
// apart from an empty value.
const (
	defaultHostname = "undefined"
	defaultIP       = "1.1.1.1"
	emptyRawHTTP    = "-"
)

// Keys of the Fields entries that keep a PEBA port or IP text that is not a
// port or IP (e.g. conpot's targetEntryPort "undefined"), so that it is not
// lost on import and is written back on export.
const (
	keptSrcIP   = "_sourceEntryIp"
	keptSrcPort = "_sourceEntryPort"
	keptDstIP   = "_targetEntryIp"
	keptDstPort = "_targetEntryPort"
)

// exportDoc is one exported line. The PEBA fields come in the order of
// peba.md §4.12; the x_ fields follow. Field semantics are in doc.go.
type exportDoc struct {
	ID                  string `json:"_id"`
	Country             string `json:"country"`
	CountryName         string `json:"countryName"`
	VulnID              string `json:"vulnid"`
	URL                 string `json:"originalRequestString"`
	SourceEntryAS       string `json:"sourceEntryAS"`
	CreateTime          string `json:"createTime"`
	ClientDomain        bool   `json:"clientDomain"`
	PeerIdent           string `json:"peerIdent"`
	PeerType            string `json:"peerType"`
	Client              string `json:"client"`
	Location            string `json:"location"`
	LocationDestination string `json:"locationDestination"`
	SourceEntryIP       string `json:"sourceEntryIp"`
	SourceEntryPort     string `json:"sourceEntryPort"`
	AdditionalData      string `json:"additionalData"`
	TargetEntryIP       string `json:"targetEntryIp"`
	TargetEntryPort     string `json:"targetEntryPort"`
	TargetCountry       string `json:"targetCountry"`
	TargetCountryName   string `json:"targetCountryName"`
	TargetEntryAS       string `json:"targetEntryAS"`
	Username            string `json:"username"`
	Password            string `json:"password"`
	Login               string `json:"login"`
	Transport           string `json:"targetport"`
	ClientVersion       string `json:"clientVersion"`
	SessionStart        string `json:"sessionStart"`
	SessionEnd          string `json:"sessionEnd"`
	RecievedTime        string `json:"recievedTime"`
	ExternalIP          string `json:"externalIP"`
	InternalIP          string `json:"internalIP"`
	Hostname            string `json:"hostname"`
	RawHTTP             string `json:"rawhttp"`

	XCreateTime   string      `json:"x_createTime"`
	XRecievedTime string      `json:"x_recievedTime"`
	XSubmitter    string      `json:"x_submitter"`
	XOrigin       string      `json:"x_origin"`
	XSensorUUID   string      `json:"x_sensorUUID"`
	XPayloadMD5   string      `json:"x_payloadMD5"`
	XFields       [][2]string `json:"x_fields"`
	XRequests     [][2]string `json:"x_requests"`
	// Written only when the PEBA field above shows a default instead of the
	// event's value.
	XHostname   *string `json:"x_hostname,omitempty"`
	XExternalIP *string `json:"x_externalIP,omitempty"`
	XInternalIP *string `json:"x_internalIP,omitempty"`
	XRawHTTP    *string `json:"x_rawhttp,omitempty"`
}

// MarshalEvent returns one line of the export format (see the package
// documentation), without the trailing newline, for e: PEBA's alert document
// fields in PEBA's formats plus "_id" and the x_ fields, so that
// UnmarshalEvent(MarshalEvent(e)) equals e in every field except Payload,
// with times truncated to microseconds and empty slices returned as nil.
// It returns an EINVALID *peba.Error for an event the format cannot carry:
// empty or over-long ID, unknown Domain, a port outside NoPort..65535, or a
// time outside the years 1..9999.
func MarshalEvent(e *peba.Event) ([]byte, error) {
	if e.ID == "" || len(e.ID) > maxIDLen {
		return nil, peba.Errorf(peba.EINVALID, "cannot encode event: id must have 1 to %d bytes", maxIDLen)
	}
	if e.Domain != peba.DomainCommunity && e.Domain != peba.DomainPrivate {
		return nil, peba.Errorf(peba.EINVALID, "cannot encode event %q: unknown domain %d", e.ID, e.Domain)
	}
	for _, p := range []int32{e.SrcPort, e.DstPort} {
		if p < peba.NoPort || p > 65535 {
			return nil, peba.Errorf(peba.EINVALID, "cannot encode event %q: port %d out of range", e.ID, p)
		}
	}
	for _, t := range []time.Time{e.CreateTime, e.ReceivedTime} {
		if !inRange(t) {
			return nil, peba.Errorf(peba.EINVALID, "cannot encode event %q: time %s outside years 1..9999", e.ID, t)
		}
	}
	d := exportDoc{
		ID:                  e.ID,
		Country:             e.Src.Country,
		CountryName:         e.Src.CountryName,
		VulnID:              e.VulnID,
		URL:                 e.URL,
		SourceEntryAS:       e.Src.ASN,
		CreateTime:          FormatTime(e.CreateTime),
		ClientDomain:        e.Domain == peba.DomainCommunity,
		PeerIdent:           e.PeerIdent,
		PeerType:            e.PeerType,
		Client:              "-", // a constant in PEBA (§5.1)
		Location:            FormatLocation(e.Src.Lat, e.Src.Lon),
		LocationDestination: FormatLocation(e.Dst.Lat, e.Dst.Lon),
		SourceEntryIP:       ipText(e.SrcIP, e.Fields, keptSrcIP),
		SourceEntryPort:     portText(e.SrcPort, e.Fields, keptSrcPort),
		AdditionalData:      PythonJSONDumps(e.AdditionalData),
		TargetEntryIP:       ipText(e.DstIP, e.Fields, keptDstIP),
		TargetEntryPort:     portText(e.DstPort, e.Fields, keptDstPort),
		TargetCountry:       e.Dst.Country,
		TargetCountryName:   e.Dst.CountryName,
		TargetEntryAS:       e.Dst.ASN,
		Username:            e.Username,
		Password:            e.Password,
		Login:               e.Login,
		Transport:           e.Transport,
		ClientVersion:       e.ClientVersion,
		SessionStart:        e.SessionStart,
		SessionEnd:          e.SessionEnd,
		RecievedTime:        FormatTime(e.ReceivedTime),
		ExternalIP:          e.ExternalIP,
		InternalIP:          e.InternalIP,
		Hostname:            e.Hostname,
		RawHTTP:             e.RawHTTP,

		XCreateTime:   e.CreateTime.UTC().Format(xTimeLayout),
		XRecievedTime: e.ReceivedTime.UTC().Format(xTimeLayout),
		XSubmitter:    e.Submitter,
		XOrigin:       e.Origin,
		XSensorUUID:   e.SensorUUID,
		XPayloadMD5:   e.PayloadMD5,
		XFields:       pairs(e.Fields),
		XRequests:     pairs(e.Requests),
	}
	// PEBA writes its initial value where the event has none (§4.3, §5.1);
	// the x_ twin keeps the exact value.
	withDefault(&d.Hostname, &d.XHostname, defaultHostname)
	withDefault(&d.ExternalIP, &d.XExternalIP, defaultIP)
	withDefault(&d.InternalIP, &d.XInternalIP, defaultIP)
	switch e.RawHTTP {
	case "":
		d.RawHTTP = emptyRawHTTP // reads back as "" without a twin
	case emptyRawHTTP:
		d.XRawHTTP = &d.RawHTTP // a literal "-" would read back as ""
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // rawhttp and URLs are full of <>&; keep them readable
	if err := enc.Encode(&d); err != nil {
		return nil, fmt.Errorf("cannot encode event %q: %w", e.ID, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// withDefault replaces an empty *field by def and points *twin at "".
func withDefault(field *string, twin **string, def string) {
	if *field == "" {
		*twin = new(string)
		*field = def
	}
}

func pairs(attrs []peba.Attr) [][2]string {
	p := make([][2]string, len(attrs))
	for i, a := range attrs {
		p[i] = [2]string{a.Key, a.Value}
	}
	return p
}

// ipText renders ip, or, for an invalid ip, the non-IP text an import kept
// in fields under key.
func ipText(ip netip.Addr, fields []peba.Attr, key string) string {
	if ip.IsValid() {
		return ip.String()
	}
	if s := lastValue(fields, key); !parseIP(s).IsValid() {
		return s
	}
	return ""
}

// portText renders p, or, for NoPort, the non-port text an import kept in
// fields under key. Kept text that is a port is ignored: Fields keys are
// sensor-controlled and must not forge a port.
func portText(p int32, fields []peba.Attr, key string) string {
	if p != peba.NoPort {
		return strconv.Itoa(int(p))
	}
	if s := lastValue(fields, key); parsePort(s) == peba.NoPort {
		return s
	}
	return ""
}

func lastValue(attrs []peba.Attr, key string) string {
	for i := len(attrs) - 1; i >= 0; i-- {
		if attrs[i].Key == key {
			return attrs[i].Value
		}
	}
	return ""
}

// parsePort returns the port that s spells in decimal ASCII digits, or NoPort.
func parsePort(s string) int32 {
	if s == "" || len(s) > 5 {
		return peba.NoPort
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return peba.NoPort
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > 65535 {
		return peba.NoPort
	}
	return int32(n)
}

// parseIP returns the address s spells, unmapped from IPv4-mapped IPv6, or
// the zero Addr. Zoned addresses are rejected: a zone means nothing for a
// remote peer.
func parseIP(s string) netip.Addr {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}
	}
	return ip.Unmap()
}

func inRange(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1 && y <= 9999
}

// UnmarshalEvent reads one line of the export format, or one document of a
// PEBA Elasticsearch alert index as elasticdump or a _search scroll writes it
// ({"_id": ..., "_source": {...}}; other top-level keys are ignored).
//
// The event ID is "_id" (or "id"). PEBA's fields are kept as stored; missing
// or null ones take PEBA's initial values (peba.md §4.3, §6): peerType
// "Unclassified", hostname "undefined", externalIP/internalIP "1.1.1.1",
// geo "-" and 0/0, ports NoPort, clientDomain community. Times
// "YYYY-MM-DD HH:MM:SS" are UTC; "YYYY-MM-DD", RFC 3339 and epoch
// milliseconds (the other forms PEBA's date mapping accepts) are read too.
// A missing recievedTime takes the createTime. An IP or port text that is
// not an IP or port leaves the zero Addr or NoPort and is kept in Fields as
// {"_sourceEntryIp"|"_sourceEntryPort"|"_targetEntryIp"|"_targetEntryPort",
// text}. additionalData (JSON text or an object) becomes AdditionalData in
// text order, and its last "payload_md5" of 32 hex digits becomes
// PayloadMD5 (lowercase). The x_ fields, where present, override what
// PEBA's fields would give. Origin is x_origin or "import".
//
// Errors are EINVALID *peba.Error values naming the problem: not a JSON
// object, missing or over-long id, missing or unparseable createTime, a
// clientDomain that is not a boolean, malformed additionalData or x_ field.
// Any input is safe; the caller bounds the line length.
func UnmarshalEvent(line []byte) (peba.Event, error) {
	top, err := decodeObject(line)
	if err != nil {
		return peba.Event{}, peba.Errorf(peba.EINVALID, "cannot decode event: %v", err)
	}
	id, err := documentID(top)
	if err != nil {
		return peba.Event{}, peba.Errorf(peba.EINVALID, "cannot decode event: %v", err)
	}
	src := top
	if raw := top.value("_source"); raw != nil {
		if src, err = decodeObject(raw); err != nil {
			return peba.Event{}, peba.Errorf(peba.EINVALID, "cannot decode event %q: _source: %v", id, err)
		}
	}
	e, err := eventFromSource(id, src)
	if err != nil {
		return peba.Event{}, peba.Errorf(peba.EINVALID, "cannot decode event %q: %v", id, err)
	}
	return e, nil
}

func eventFromSource(id string, o object) (peba.Event, error) {
	e := peba.Event{
		ID:            id,
		Origin:        o.str("x_origin", originImport),
		Submitter:     o.str("x_submitter", ""),
		SensorUUID:    o.str("x_sensorUUID", ""),
		PeerIdent:     o.str("peerIdent", ""),
		PeerType:      o.str("peerType", "Unclassified"),
		Hostname:      o.str("x_hostname", o.str("hostname", defaultHostname)),
		ExternalIP:    o.str("x_externalIP", o.str("externalIP", defaultIP)),
		InternalIP:    o.str("x_internalIP", o.str("internalIP", defaultIP)),
		Transport:     o.str("targetport", ""),
		URL:           o.str("originalRequestString", ""),
		VulnID:        o.str("vulnid", ""),
		Username:      o.str("username", ""),
		Password:      o.str("password", ""),
		Login:         o.str("login", ""),
		ClientVersion: o.str("clientVersion", ""),
		SessionStart:  o.str("sessionStart", ""),
		SessionEnd:    o.str("sessionEnd", ""),
		Src:           o.geo("country", "countryName", "sourceEntryAS", "location"),
		Dst:           o.geo("targetCountry", "targetCountryName", "targetEntryAS", "locationDestination"),
	}
	e.RawHTTP = o.str("rawhttp", emptyRawHTTP)
	if e.RawHTTP == emptyRawHTTP {
		e.RawHTTP = ""
	}
	e.RawHTTP = o.str("x_rawhttp", e.RawHTTP)

	var err error
	if e.Domain, err = o.domain(); err != nil {
		return e, err
	}
	// PEBA's "-" for a missing CreateTime never reached the index (§4.9),
	// so an alert document without one is not PEBA's.
	if o.value("x_createTime") == nil && o.value("createTime") == nil {
		return e, errors.New("missing createTime")
	}
	if e.CreateTime, err = o.time("x_createTime", "createTime", time.Time{}); err != nil {
		return e, err
	}
	if e.ReceivedTime, err = o.time("x_recievedTime", "recievedTime", e.CreateTime); err != nil {
		return e, err
	}

	var kept []peba.Attr
	e.SrcIP = o.ip("sourceEntryIp", keptSrcIP, &kept)
	e.SrcPort = o.port("sourceEntryPort", keptSrcPort, &kept)
	e.DstIP = o.ip("targetEntryIp", keptDstIP, &kept)
	e.DstPort = o.port("targetEntryPort", keptDstPort, &kept)

	if e.AdditionalData, err = o.additionalData(); err != nil {
		return e, err
	}
	if v := lastValue(e.AdditionalData, "payload_md5"); isHex(v, 32) {
		e.PayloadMD5 = strings.ToLower(v)
	}
	e.PayloadMD5 = o.str("x_payloadMD5", e.PayloadMD5)

	e.Fields = kept
	if raw := o.value("x_fields"); raw != nil {
		if e.Fields, err = parsePairs(raw); err != nil {
			return e, fmt.Errorf("x_fields: %w", err)
		}
	}
	if raw := o.value("x_requests"); raw != nil {
		if e.Requests, err = parsePairs(raw); err != nil {
			return e, fmt.Errorf("x_requests: %w", err)
		}
	}
	return e, nil
}

// object is a decoded JSON object whose values are still raw.
type object map[string]json.RawMessage

func decodeObject(data []byte) (object, error) {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] != '{' {
		// Also catches null, which would leave the map empty without error.
		return nil, errors.New("invalid JSON object: not an object")
	}
	o := make(object, 40) // room for an alert document's fields without regrowing
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("invalid JSON object: %w", err)
	}
	return o, nil
}

func documentID(top object) (string, error) {
	raw := top.value("_id")
	if raw == nil {
		raw = top.value("id")
	}
	if raw == nil {
		return "", errors.New("missing _id and id")
	}
	var id string
	if err := json.Unmarshal(raw, &id); err != nil {
		return "", errors.New("_id is not a string")
	}
	if id == "" || len(id) > maxIDLen {
		return "", fmt.Errorf("_id must have 1 to %d bytes", maxIDLen)
	}
	return id, nil
}

// value returns the raw value of key, or nil if it is missing or null
// (ES 6 era documents carry explicit nulls, peba.md §5.1).
func (o object) value(key string) json.RawMessage {
	v := o[key]
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	return v
}

// str returns key's string, def if it is missing or null, and the compact
// JSON text of any other value: PEBA wrote only strings, and a number in a
// string field says the same thing.
func (o object) str(key, def string) string {
	v := o.value(key)
	if v == nil {
		return def
	}
	return rawText(v)
}

// rawText returns the string v holds, "" for null, or v's compact JSON text.
// v must be valid JSON.
func rawText(v json.RawMessage) string {
	// Fast path for the common case, a string without escapes.
	if len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v) {
		return string(v[1 : len(v)-1])
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return string(v)
	}
	return b.String()
}

func (o object) domain() (peba.Domain, error) {
	v := o.value("clientDomain")
	if v == nil {
		return peba.DomainCommunity, nil
	}
	switch rawText(v) {
	case "true":
		return peba.DomainCommunity, nil
	case "false":
		return peba.DomainPrivate, nil
	}
	return 0, errors.New("clientDomain is not a boolean")
}

// time reads the x_ key if present, else the PEBA key, else returns def.
func (o object) time(xKey, key string, def time.Time) (time.Time, error) {
	for _, k := range []string{xKey, key} {
		if v := o.value(k); v != nil {
			t, err := parseTime(v)
			if err != nil {
				return t, fmt.Errorf("cannot parse %s %s: %w", k, truncate(v), err)
			}
			return t, nil
		}
	}
	return def, nil
}

// parseTime reads the forms of PEBA's date mapping
// "yyyy-MM-dd HH:mm:ss||yyyy-MM-dd||epoch_millis" (peba.md §2.7) plus
// RFC 3339 (x_ fields), always as UTC.
func parseTime(v json.RawMessage) (time.Time, error) {
	s := rawText(v)
	var t time.Time
	var err error
	switch {
	case isDigits(strings.TrimPrefix(s, "-")):
		var ms int64
		if ms, err = strconv.ParseInt(s, 10, 64); err == nil {
			t = time.UnixMilli(ms)
		}
	case len(s) == len("2006-01-02"):
		t, err = time.Parse(time.DateOnly, s)
	case strings.Contains(s, "T"):
		t, err = time.Parse(time.RFC3339Nano, s)
	default:
		t, err = time.Parse(pebaTimeLayout, s)
	}
	if err != nil {
		return time.Time{}, errors.New("not a date")
	}
	if !inRange(t) {
		return time.Time{}, errors.New("outside years 1..9999")
	}
	return t.UTC(), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// truncate shortens attacker-sized values quoted in error messages.
func truncate(v []byte) string {
	const n = 64
	if len(v) > n {
		return string(v[:n]) + "..."
	}
	return string(v)
}

func (o object) ip(key, keepAs string, kept *[]peba.Attr) netip.Addr {
	s := o.str(key, "")
	ip := parseIP(s)
	if !ip.IsValid() && s != "" {
		*kept = append(*kept, peba.Attr{Key: keepAs, Value: s})
	}
	return ip
}

func (o object) port(key, keepAs string, kept *[]peba.Attr) int32 {
	s := o.str(key, "")
	p := parsePort(s)
	if p == peba.NoPort && s != "" {
		*kept = append(*kept, peba.Attr{Key: keepAs, Value: s})
	}
	return p
}

// geo reads one side's GeoIP fields with PEBA's defaults (peba.md §6).
// A location that is not "lat , lon" with coordinates in range counts as
// unknown (0, 0).
func (o object) geo(country, name, asn, location string) peba.Geo {
	g := peba.Geo{
		Country:     o.str(country, peba.UnknownGeo.Country),
		CountryName: o.str(name, peba.UnknownGeo.CountryName),
		ASN:         o.str(asn, peba.UnknownGeo.ASN),
	}
	a, b, ok := strings.Cut(o.str(location, ""), ",")
	if !ok {
		return g
	}
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	// The range check also rejects NaN and the infinities.
	if err1 == nil && err2 == nil && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180 {
		g.Lat, g.Lon = lat, lon
	}
	return g
}

// additionalData reads PEBA's JSON text (or an object, as some exporters
// expand it) keeping key order and repeats, which a Go map would lose.
func (o object) additionalData() ([]peba.Attr, error) {
	v := o.value("additionalData")
	if v == nil {
		return nil, nil
	}
	if v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("cannot parse additionalData: %w", err)
		}
		if s == "" {
			return nil, nil
		}
		v = []byte(s)
	}
	attrs, err := parseAttrs(v)
	if err != nil {
		return nil, fmt.Errorf("cannot parse additionalData: %w", err)
	}
	return attrs, nil
}

// parseAttrs reads one JSON object as key/value pairs in text order. Values
// that are not strings become their compact JSON text (null becomes "").
func parseAttrs(data []byte) ([]peba.Attr, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var attrs []peba.Attr
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := t.(string)
		if !ok {
			return nil, errors.New("not a JSON object")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		attrs = append(attrs, peba.Attr{Key: key, Value: rawText(v)})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	return attrs, nil
}

// parsePairs reads [[k, v], ...].
func parsePairs(raw json.RawMessage) ([]peba.Attr, error) {
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, errors.New("not an array of [key, value] string pairs")
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	attrs := make([]peba.Attr, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, errors.New("not an array of [key, value] string pairs")
		}
		attrs[i] = peba.Attr{Key: p[0], Value: p[1]}
	}
	return attrs, nil
}
