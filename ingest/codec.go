package ingest

import (
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"time"

	"github.com/peba-go/peba"
)

// The journal record of one sender's batch: a version byte, then uvarint
// event count, then per event every field of peba.Event in declaration
// order. Strings are uvarint length + bytes; ints are zigzag varints; times
// are varint Unix seconds + uvarint nanoseconds (UTC; the location is not
// kept); addresses are netip's binary form, length-prefixed; floats are
// their IEEE bits; attribute lists are uvarint count+1 (0 = nil) then
// key/value strings. Payload.Data is not encoded: the bytes are in the blob
// store before a batch is journaled.
const codecVersion = 1

var errCodec = errors.New("cannot decode journaled events: malformed record")

// appendEvents appends the encoding of events to dst.
func appendEvents(dst []byte, events []peba.Event) []byte {
	dst = append(dst, codecVersion)
	dst = binary.AppendUvarint(dst, uint64(len(events)))
	for i := range events {
		dst = appendEvent(dst, &events[i])
	}
	return dst
}

func appendEvent(b []byte, e *peba.Event) []byte {
	b = appendString(b, e.ID)
	b = binary.AppendVarint(b, int64(e.Domain))
	b = appendString(b, e.Submitter)
	b = appendString(b, e.Origin)
	b = appendTime(b, e.ReceivedTime)
	b = appendTime(b, e.CreateTime)
	for _, s := range [...]string{e.PeerIdent, e.PeerType, e.SensorUUID, e.Hostname, e.ExternalIP, e.InternalIP} {
		b = appendString(b, s)
	}
	b = appendAddr(b, e.SrcIP)
	b = binary.AppendVarint(b, int64(e.SrcPort))
	b = appendAddr(b, e.DstIP)
	b = binary.AppendVarint(b, int64(e.DstPort))
	for _, s := range [...]string{e.Transport, e.URL, e.VulnID, e.Username, e.Password, e.Login,
		e.ClientVersion, e.SessionStart, e.SessionEnd, e.RawHTTP, e.PayloadMD5} {
		b = appendString(b, s)
	}
	b = appendAttrs(b, e.AdditionalData)
	b = appendAttrs(b, e.Fields)
	b = appendAttrs(b, e.Requests)
	b = appendGeo(b, &e.Src)
	b = appendGeo(b, &e.Dst)
	p := e.Payload
	if p == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = appendString(b, p.MD5)
	b = appendString(b, p.FuzzyHash)
	b = appendString(b, p.MIME)
	b = binary.AppendVarint(b, p.Size)
	b = appendTime(b, p.FirstSeen)
	b = appendTime(b, p.LastSeen)
	b = binary.AppendVarint(b, p.MD5Count)
	b = binary.AppendVarint(b, p.FuzzyCount)
	b = appendString(b, p.InitialIP)
	return binary.AppendVarint(b, int64(p.InitialDestPort))
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

// appendAddr writes netip's binary form (0, 4, or 16 bytes + zone).
func appendAddr(b []byte, a netip.Addr) []byte {
	n := 0
	switch {
	case a.Is4():
		n = 4
	case a.Is6():
		n = 16 + len(a.Zone())
	}
	b = binary.AppendUvarint(b, uint64(n))
	b, _ = a.AppendBinary(b) // cannot fail
	return b
}

func appendAttrs(b []byte, as []peba.Attr) []byte {
	if as == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(as))+1)
	for _, a := range as {
		b = appendString(appendString(b, a.Key), a.Value)
	}
	return b
}

func appendGeo(b []byte, g *peba.Geo) []byte {
	b = appendString(b, g.Country)
	b = appendString(b, g.CountryName)
	b = appendString(b, g.ASN)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(g.Lat))
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(g.Lon))
}

// decodeEvents decodes a record written by appendEvents. It never panics;
// anything malformed is an error. The strings share one copy of rec.
func decodeEvents(rec []byte) ([]peba.Event, error) {
	if len(rec) == 0 || rec[0] != codecVersion {
		return nil, errCodec
	}
	d := decoder{s: string(rec[1:])}
	n := d.uvarint()
	// Every event takes far more than 8 bytes: bound the allocation by the
	// input, not by a count an attacker or a bug could inflate.
	if d.err != nil || n > uint64(len(d.s))/8 {
		return nil, errCodec
	}
	events := make([]peba.Event, n)
	for i := range events {
		d.event(&events[i])
		if d.err != nil {
			return nil, errCodec
		}
	}
	if d.off != len(d.s) {
		return nil, errCodec
	}
	return events, nil
}

type decoder struct {
	s   string
	off int
	err error
}

func (d *decoder) fail() { d.err = errCodec; d.off = len(d.s) }

func (d *decoder) uvarint() uint64 {
	var x uint64
	for shift := 0; shift < 64; shift += 7 {
		if d.off >= len(d.s) {
			break
		}
		c := d.s[d.off]
		d.off++
		if c < 0x80 {
			if shift == 63 && c > 1 {
				break
			}
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
	}
	d.fail()
	return 0
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) int32() int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail()
		return 0
	}
	return int32(v)
}

func (d *decoder) byte() byte {
	if d.off >= len(d.s) {
		d.fail()
		return 0
	}
	d.off++
	return d.s[d.off-1]
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.s)-d.off) {
		d.fail()
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (d *decoder) addr() netip.Addr {
	// As netip.Addr.UnmarshalBinary, without copying the bytes.
	s := d.string()
	switch {
	case len(s) == 0:
		return netip.Addr{}
	case len(s) == 4:
		return netip.AddrFrom4([4]byte([]byte(s)))
	case len(s) >= 16:
		return netip.AddrFrom16([16]byte([]byte(s[:16]))).WithZone(s[16:])
	}
	d.fail()
	return netip.Addr{}
}

func (d *decoder) attrs() []peba.Attr {
	n := d.uvarint()
	if n == 0 {
		return nil
	}
	n--
	if n > uint64(len(d.s)-d.off)/2 { // each attribute takes 2+ bytes
		d.fail()
		return nil
	}
	as := make([]peba.Attr, n)
	for i := range as {
		as[i] = peba.Attr{Key: d.string(), Value: d.string()}
	}
	return as
}

func (d *decoder) float() float64 {
	if len(d.s)-d.off < 8 {
		d.fail()
		return 0
	}
	var b [8]byte
	copy(b[:], d.s[d.off:])
	d.off += 8
	return math.Float64frombits(binary.LittleEndian.Uint64(b[:]))
}

func (d *decoder) geo(g *peba.Geo) {
	g.Country, g.CountryName, g.ASN = d.string(), d.string(), d.string()
	g.Lat, g.Lon = d.float(), d.float()
}

func (d *decoder) event(e *peba.Event) {
	e.ID = d.string()
	if dom := d.varint(); dom < math.MinInt8 || dom > math.MaxInt8 {
		d.fail()
	} else {
		e.Domain = peba.Domain(dom)
	}
	e.Submitter, e.Origin = d.string(), d.string()
	e.ReceivedTime, e.CreateTime = d.time(), d.time()
	e.PeerIdent, e.PeerType, e.SensorUUID = d.string(), d.string(), d.string()
	e.Hostname, e.ExternalIP, e.InternalIP = d.string(), d.string(), d.string()
	e.SrcIP, e.SrcPort = d.addr(), d.int32()
	e.DstIP, e.DstPort = d.addr(), d.int32()
	e.Transport, e.URL, e.VulnID = d.string(), d.string(), d.string()
	e.Username, e.Password, e.Login = d.string(), d.string(), d.string()
	e.ClientVersion, e.SessionStart, e.SessionEnd = d.string(), d.string(), d.string()
	e.RawHTTP, e.PayloadMD5 = d.string(), d.string()
	e.AdditionalData, e.Fields, e.Requests = d.attrs(), d.attrs(), d.attrs()
	d.geo(&e.Src)
	d.geo(&e.Dst)
	switch d.byte() {
	case 0:
	case 1:
		p := &peba.Payload{}
		p.MD5, p.FuzzyHash, p.MIME = d.string(), d.string(), d.string()
		p.Size = d.varint()
		p.FirstSeen, p.LastSeen = d.time(), d.time()
		p.MD5Count, p.FuzzyCount = d.varint(), d.varint()
		p.InitialIP, p.InitialDestPort = d.string(), d.int32()
		e.Payload = p
	default:
		d.fail()
	}
}
