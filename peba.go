// Package peba holds the domain of the PEBA backend: the event model shared by
// every ingest path and every output format, the users that may submit and
// read private data, and the contracts (interfaces) that the storage adapters
// implement.
//
// The package imports nothing from this module and nothing outside the
// standard library. Adapters (ews, duckdb, geoip, ingest, http/...) import it;
// they never import each other. Only cmd/peba wires concrete types together.
// See ../shared/docs/architecture.md.
package peba

import (
	"net/netip"
	"time"
)

// Domain is the data domain an event belongs to. Community data is submitted
// with the shared (public) community credentials; private data by registered
// users. Private data must never reach a caller who is not entitled to it.
type Domain int8

const (
	// DomainCommunity is PEBA's clientDomain=true.
	DomainCommunity Domain = 1
	// DomainPrivate is PEBA's clientDomain=false (PEBA calls it "DTAG" data).
	DomainPrivate Domain = 2
)

// String returns "community" or "private".
func (d Domain) String() string {
	switch d {
	case DomainCommunity:
		return "community"
	case DomainPrivate:
		return "private"
	}
	return "unknown"
}

// Attr is one key/value pair. Slices of Attr keep the order and the
// repetitions in which a sensor sent its fields.
type Attr struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// Geo is what the GeoIP databases say about one address, with PEBA's
// defaults: "-" for unknown strings, 0/0 for unknown coordinates, and
// "PIR" / "IANA Private IP Range" / "IANA" for private ranges (reference §6).
type Geo struct {
	Country     string  // ISO code, PEBA field country / targetCountry
	CountryName string  // English name, PEBA countryName / targetCountryName
	ASN         string  // "AS3320 Deutsche Telekom AG", PEBA sourceEntryAS / targetEntryAS
	Lat, Lon    float64 // PEBA location / locationDestination ("lat , lon")
}

// UnknownGeo is PEBA's default before any lookup succeeded.
var UnknownGeo = Geo{Country: "-", CountryName: "-", ASN: "-"}

// NoPort marks a port that was absent or not a number.
const NoPort int32 = -1

// Event is one attack event as stored: an EWS Alert, an hpfeeds message, or an
// imported PEBA document. PEBA's Elasticsearch field name is given for each
// field that PEBA had (reference peba.md §5.1).
type Event struct {
	// ID identifies the event. For events decoded from EWS it is derived from
	// the alert's content (see ews.EventID), so a resent batch maps to the same
	// IDs; for imported PEBA documents it is the document's _id.
	ID string

	Domain    Domain // clientDomain
	Submitter string // username that delivered the event (community user for community data)
	Origin    string // how it arrived: "ews", "hpfeeds", "import"

	ReceivedTime time.Time // recievedTime (sic): server clock, UTC
	CreateTime   time.Time // createTime: sensor's time converted to UTC by PEBA's tz rule

	PeerIdent  string // peerIdent: Analyzer@id
	PeerType   string // peerType: honeypot type, e.g. "SSH/console(cowrie)"
	SensorUUID string // AdditionalData uuid (dropped by PEBA)
	Hostname   string // hostname (default "undefined")
	ExternalIP string // externalIP (default "1.1.1.1")
	InternalIP string // internalIP (default "1.1.1.1")

	SrcIP     netip.Addr // sourceEntryIp (IPv4-mapped IPv6 is unmapped to IPv4)
	SrcPort   int32      // sourceEntryPort, NoPort if absent or not numeric
	DstIP     netip.Addr // targetEntryIp
	DstPort   int32      // targetEntryPort, NoPort if absent or not numeric
	Transport string     // targetport (sic): transport protocol from Source@protocol

	URL           string // originalRequestString
	VulnID        string // vulnid
	Username      string // username
	Password      string // password
	Login         string // login
	ClientVersion string // clientVersion
	SessionStart  string // sessionStart
	SessionEnd    string // sessionEnd
	RawHTTP       string // rawhttp: the decoded HTTP request of the payload, "" where PEBA stored "-"

	PayloadMD5 string // md5 of the payload bytes (or as the sensor reported it); additionalData.payload_md5

	// AdditionalData is PEBA's additionalData dict (payload_md5, protocol,
	// payload, conpot_*), in PEBA's insertion order.
	AdditionalData []Attr
	// Fields holds every AdditionalData element the sensor sent (meaning ->
	// text), in document order, including those PEBA dropped.
	Fields []Attr
	// Requests holds every Request element (type -> text) except the payload
	// bytes (raw, binary, largepayload), which live in the payload store and
	// are referenced by PayloadMD5.
	Requests []Attr

	Src Geo // country, countryName, sourceEntryAS, location
	Dst Geo // targetCountry, targetCountryName, targetEntryAS, locationDestination

	// Payload carries the decoded payload bytes from the decoder to the
	// payload store. It is not stored in the events table.
	Payload *Payload
}

// Payload is a de-duplicated payload (PEBA's "payloads" index, §4.10).
type Payload struct {
	MD5       string // hex md5 of Data
	FuzzyHash string // PEBA's fuzzy HTTP hash (sha256 hex, or the md5 when there is no Host header)
	MIME      string // detected content type
	Size      int64
	Data      []byte // the bytes; nil when only metadata is known

	// Bookkeeping maintained by the store.
	FirstSeen       time.Time // earliest createTime seen
	LastSeen        time.Time // latest createTime seen
	MD5Count        int64     // events carrying exactly this payload
	FuzzyCount      int64     // other events whose payload has the same fuzzy hash but other bytes
	InitialIP       string    // source of the first event that carried it
	InitialDestPort int32
}
