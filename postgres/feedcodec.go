package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/peba-go/peba"
)

// The live_feed encoding (format 1). Every node decodes every event of the
// cluster, so decoding is the feed's main cost: with encoding/json it took
// 24% of a node's CPU in the three-node benchmark (docs/performance.md).
// This format is a flat sequence of varints, lengths and bytes, decoded
// without reflection, and with one string allocation per event: all the
// event's strings are slices of one copy of its record, which is exactly
// what the event keeps alive.
//
//	row    = 0x00 0x01 uvarint(count) record*
//	record = uvarint(len) fields          (len bytes)
//
// fields, in this order: ID, Domain (byte), Submitter, Origin,
// ReceivedTime, CreateTime, PeerIdent, PeerType, SensorUUID, Hostname,
// ExternalIP, InternalIP, SrcIP, SrcPort, DstIP, DstPort, Transport, URL,
// VulnID, Username, Password, Login, ClientVersion, SessionStart,
// SessionEnd, RawHTTP, PayloadMD5, AdditionalData, Fields, Requests, Src,
// Dst; where a string is uvarint(len) bytes, a time varint(Unix seconds)
// uvarint(nanoseconds) (decoded in UTC), an address uvarint(len)
// netip.Addr.MarshalBinary, a port varint, an attribute list uvarint(0 for
// nil, else n+1) then n key/value strings, a Geo three strings and two
// float64 bits (little endian). Payload is not encoded (always nil).
//
// Every event field is carried, so the feed publishes the events as
// ingest's OnCommit does in the single-node mode; TestFeedCodecCoversEvent
// fails if a field is added to peba.Event without being added here. A JSON
// array (the feed's first encoding, starting with '[') still decodes.

// feedFormat1 starts a format 1 row. JSON text cannot start with NUL.
var feedFormat1 = []byte{0x00, 0x01}

// appendFeed appends the format 1 encoding of events (Payload ignored) to
// b.
func appendFeed(b []byte, events []peba.Event) []byte {
	b = append(b, feedFormat1...)
	b = binary.AppendUvarint(b, uint64(len(events)))
	var rec []byte
	for i := range events {
		rec = appendFeedEvent(rec[:0], &events[i])
		b = binary.AppendUvarint(b, uint64(len(rec)))
		b = append(b, rec...)
	}
	return b
}

func appendFeedEvent(b []byte, e *peba.Event) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	tm := func(t time.Time) {
		b = binary.AppendVarint(b, t.Unix())
		b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	}
	addr := func(a netip.Addr) {
		// MarshalBinary's form: 0 bytes (invalid), 4, or 16 and the zone.
		n := 0
		if a.Is4() {
			n = 4
		} else if a.Is6() {
			n = 16 + len(a.Zone())
		}
		b = binary.AppendUvarint(b, uint64(n))
		b, _ = a.AppendBinary(b) // never fails
	}
	attrs := func(as []peba.Attr) {
		if as == nil {
			b = append(b, 0)
			return
		}
		b = binary.AppendUvarint(b, uint64(len(as))+1)
		for _, a := range as {
			str(a.Key)
			str(a.Value)
		}
	}
	geo := func(g peba.Geo) {
		str(g.Country)
		str(g.CountryName)
		str(g.ASN)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(g.Lat))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(g.Lon))
	}
	str(e.ID)
	b = append(b, byte(e.Domain))
	str(e.Submitter)
	str(e.Origin)
	tm(e.ReceivedTime)
	tm(e.CreateTime)
	str(e.PeerIdent)
	str(e.PeerType)
	str(e.SensorUUID)
	str(e.Hostname)
	str(e.ExternalIP)
	str(e.InternalIP)
	addr(e.SrcIP)
	b = binary.AppendVarint(b, int64(e.SrcPort))
	addr(e.DstIP)
	b = binary.AppendVarint(b, int64(e.DstPort))
	str(e.Transport)
	str(e.URL)
	str(e.VulnID)
	str(e.Username)
	str(e.Password)
	str(e.Login)
	str(e.ClientVersion)
	str(e.SessionStart)
	str(e.SessionEnd)
	str(e.RawHTTP)
	str(e.PayloadMD5)
	attrs(e.AdditionalData)
	attrs(e.Fields)
	attrs(e.Requests)
	geo(e.Src)
	geo(e.Dst)
	return b
}

var errFeedShort = errors.New("truncated record")

// feedReader decodes one record; the first error sticks.
type feedReader struct {
	s   string // the record: decoded strings are slices of it
	off int
	err error
}

func (r *feedReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	var x uint64
	for shift := uint(0); ; shift += 7 {
		if r.off >= len(r.s) || shift > 63 {
			r.err = errFeedShort
			return 0
		}
		c := r.s[r.off]
		r.off++
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x
		}
	}
}

func (r *feedReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (r *feedReader) bytes(n uint64) string {
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.s)-r.off) {
		r.err = errFeedShort
		return ""
	}
	s := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

func (r *feedReader) str() string { return r.bytes(r.uvarint()) }

func (r *feedReader) time() time.Time {
	sec, nsec := r.varint(), r.uvarint()
	if r.err != nil || nsec >= 1e9 {
		r.fail("bad time")
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// addr reads netip.Addr.MarshalBinary's form without allocating.
func (r *feedReader) addr() netip.Addr {
	m := r.bytes(r.uvarint())
	switch {
	case len(m) == 0:
		return netip.Addr{}
	case len(m) == 4:
		return netip.AddrFrom4([4]byte{m[0], m[1], m[2], m[3]})
	case len(m) >= 16:
		var a [16]byte
		copy(a[:], m)
		return netip.AddrFrom16(a).WithZone(m[16:])
	}
	r.fail("bad address")
	return netip.Addr{}
}

func (r *feedReader) port() int32 {
	p := r.varint()
	if p < math.MinInt32 || p > math.MaxInt32 {
		r.fail("bad port")
	}
	return int32(p)
}

func (r *feedReader) attrs() []peba.Attr {
	n := r.uvarint()
	if n == 0 || r.err != nil {
		return nil
	}
	n--
	if n > uint64(len(r.s)-r.off)/2 { // each attribute takes at least 2 bytes
		r.err = errFeedShort
		return nil
	}
	as := make([]peba.Attr, n)
	for i := range as {
		as[i].Key, as[i].Value = r.str(), r.str()
	}
	return as
}

func (r *feedReader) float() float64 {
	s := r.bytes(8)
	if len(s) != 8 {
		return 0
	}
	var u uint64
	for i := 7; i >= 0; i-- {
		u = u<<8 | uint64(s[i])
	}
	return math.Float64frombits(u)
}

func (r *feedReader) byte() byte {
	s := r.bytes(1)
	if len(s) != 1 {
		return 0
	}
	return s[0]
}

func (r *feedReader) geo() peba.Geo {
	return peba.Geo{Country: r.str(), CountryName: r.str(), ASN: r.str(), Lat: r.float(), Lon: r.float()}
}

func (r *feedReader) fail(msg string) {
	if r.err == nil {
		r.err = errors.New(msg)
	}
}

func (r *feedReader) event() (e peba.Event) {
	e.ID = r.str()
	e.Domain = peba.Domain(r.byte())
	e.Submitter = r.str()
	e.Origin = r.str()
	e.ReceivedTime = r.time()
	e.CreateTime = r.time()
	e.PeerIdent = r.str()
	e.PeerType = r.str()
	e.SensorUUID = r.str()
	e.Hostname = r.str()
	e.ExternalIP = r.str()
	e.InternalIP = r.str()
	e.SrcIP = r.addr()
	e.SrcPort = r.port()
	e.DstIP = r.addr()
	e.DstPort = r.port()
	e.Transport = r.str()
	e.URL = r.str()
	e.VulnID = r.str()
	e.Username = r.str()
	e.Password = r.str()
	e.Login = r.str()
	e.ClientVersion = r.str()
	e.SessionStart = r.str()
	e.SessionEnd = r.str()
	e.RawHTTP = r.str()
	e.PayloadMD5 = r.str()
	e.AdditionalData = r.attrs()
	e.Fields = r.attrs()
	e.Requests = r.attrs()
	e.Src = r.geo()
	e.Dst = r.geo()
	if r.err == nil && r.off != len(r.s) {
		r.fail("trailing bytes")
	}
	return e
}

// decodeFeed1 decodes a format 1 row (after its two-byte prefix).
func decodeFeed1(b []byte) ([]peba.Event, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) { // each record takes at least one byte
		return nil, errors.New("cannot decode live feed: bad event count")
	}
	b = b[k:]
	evs := make([]peba.Event, n)
	for i := range evs {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, fmt.Errorf("cannot decode live feed: event %d: %w", i, errFeedShort)
		}
		r := feedReader{s: string(b[k : k+int(l)])}
		evs[i] = r.event()
		if r.err != nil {
			return nil, fmt.Errorf("cannot decode live feed: event %d: %w", i, r.err)
		}
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, errors.New("cannot decode live feed: trailing bytes")
	}
	return evs, nil
}
