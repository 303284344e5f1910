package hpfeeds

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gabriel-vasile/mimetype"
	"github.com/peba-go/peba"
)

// Bounds of what one message may put into an event. Frames are at most
// MaxBody bytes, so these keep a hostile payload from multiplying into
// many large stored strings.
const (
	maxFieldBytes = 64 << 10 // every string field, like ews.DefaultMaxFieldBytes
	maxFields     = 256      // top-level payload keys kept in Event.Fields
	maxHexBytes   = 32 << 10 // raw bytes kept as hex for a binary payload
)

// ErrInvalid is wrapped by Normalize errors: the payload of a known channel
// is not what its producer publishes (not a JSON object, no source address).
var ErrInvalid = &peba.Error{Code: peba.EINVALID, Message: "invalid hpfeeds payload"}

// Normalize turns one hpfeeds message into events. It is pure: no I/O, and
// the result depends only on its arguments.
//
// Known channels (seckc.md §7.2, see channels) map like MHN's Mnemosyne
// normalizer; ewsposter's output (one EWS <Alert>, XML or xmltodict JSON,
// ewsposter.md §4) is recognised by content on any other channel; anything
// else is kept generically with PeerType "hpfeeds(<channel>)" (see
// docs/hpfeeds.md). Every event gets Origin "hpfeeds", Submitter = ident,
// CreateTime from the payload (UTC) or now, and an ID derived from channel,
// ident and payload only (EventID), so the same message received from two
// brokers or replayed is stored once. Domain, ReceivedTime and Geo are left
// to the caller.
func Normalize(channel, ident string, payload []byte, now time.Time) ([]peba.Event, error) {
	now = now.UTC()
	var evs []peba.Event
	var err error
	if spec, ok := channels[channel]; ok {
		var ev peba.Event
		ev, err = normalizeKnown(spec, payload, now)
		evs = []peba.Event{ev}
	} else if evs, err = normalizeEWS(payload, now); evs == nil && err == nil {
		evs = []peba.Event{normalizeGeneric(channel, payload, now)}
	}
	if err != nil {
		return nil, err
	}
	for i := range evs {
		e := &evs[i]
		e.ID = EventID(channel, ident, payload, i)
		e.Origin = "hpfeeds"
		e.Submitter = clip(ident, 255)
		if e.PeerIdent == "" {
			// The publishing ident is the sensor identity (the sensor UUID
			// in MHN/CHN, seckc.md §7.1).
			e.PeerIdent = e.Submitter
		}
	}
	return evs, nil
}

// EventID is the ID of the i-th event of a message: the first 32 hex digits
// of SHA-256 over the length-prefixed channel and ident, the payload and, for
// i > 0, i. The broker is not part of it, so a message delivered by two
// brokers (or replayed by a relay) has the same ID and is stored once.
func EventID(channel, ident string, payload []byte, i int) string {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	h.Write(binary.AppendUvarint(buf[:0], uint64(len(channel))))
	h.Write([]byte(channel))
	h.Write(binary.AppendUvarint(buf[:0], uint64(len(ident))))
	h.Write([]byte(ident))
	h.Write(payload)
	if i > 0 {
		h.Write(binary.AppendUvarint(buf[:0], uint64(i)))
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// object is a JSON object with its keys in payload order.
type object struct {
	keys []string
	m    map[string]json.RawMessage
}

// parseObject decodes payload as one JSON object. ok is false for anything
// else (array, scalar, invalid JSON, trailing data).
func parseObject(payload []byte) (o *object, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	o = &object{m: map[string]json.RawMessage{}}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		if _, dup := o.m[k]; !dup {
			o.keys = append(o.keys, k)
		}
		o.m[k] = v // like Python's json: the last duplicate wins
	}
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // trailing data
	}
	return o, true
}

// str returns the value of key as text: a JSON string's content or a
// number's literal; "" for anything else or a missing key.
func (o *object) str(key string) string {
	if key == "" {
		return "" // a spec without that key, even if the payload has a "" key
	}
	return rawString(o.m[key])
}

func rawString(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw)
	}
	return ""
}

// array returns the elements of key's value if it is a JSON array.
func (o *object) array(key string) []json.RawMessage {
	var a []json.RawMessage
	if raw := o.m[key]; len(raw) > 0 && raw[0] == '[' && json.Unmarshal(raw, &a) == nil {
		return a
	}
	return nil
}

// parseIP parses an address as honeypots write it. IPv4-mapped IPv6
// (dionaea's "::ffff:a.b.c.d") becomes IPv4, as Mnemosyne strips the prefix.
func parseIP(s string) netip.Addr {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// parsePort parses a port given as a JSON number or numeric string;
// peba.NoPort if absent or not in 0..65535.
func parsePort(s string) int32 {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return peba.NoPort
	}
	return int32(n)
}

// timeLayouts are the timestamp forms of the §7 producers: cowrie
// (RFC 3339), conpot (naive ISO), dionaea ("... UTC +0000"), glastopf,
// snort and p0f ("2006/01/02 ..."), suricata ("...+0000").
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999 MST -0700",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006/01/02 15:04:05.999999999",
}

// parseTime reads a producer timestamp; naive times are UTC (the producers
// above log UTC). A missing, unparsable or implausible time (before 2000
// or more than a day ahead of now, e.g. a wrong sensor clock) yields now.
func parseTime(s string, now time.Time) time.Time {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return now
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			t = t.UTC()
			if t.Year() < 2000 || t.After(now.Add(24*time.Hour)) {
				return now
			}
			return t
		}
	}
	return now
}

// bounded clips s to maxFieldBytes (valid UTF-8) and records a truncation
// the way package ews does, as Fields {"_truncated", name}.
func bounded(e *peba.Event, name, s string) string {
	if len(s) > maxFieldBytes {
		e.Fields = append(e.Fields, peba.Attr{Key: "_truncated", Value: name})
	}
	return clip(s, maxFieldBytes)
}

// addFields keeps the payload's top-level keys, in order, as Fields:
// strings as their text, other values as compact JSON.
func addFields(e *peba.Event, o *object) {
	for i, k := range o.keys {
		if i == maxFields {
			e.Fields = append(e.Fields, peba.Attr{Key: "_truncated", Value: "fields"})
			break
		}
		raw := o.m[k]
		v := rawString(raw)
		if v == "" && (len(raw) == 0 || raw[0] != '"') {
			var b bytes.Buffer
			if json.Compact(&b, raw) == nil {
				v = b.String()
			}
		}
		key := clip(k, 255)
		e.Fields = append(e.Fields, peba.Attr{Key: key, Value: bounded(e, key, v)})
	}
}

// rawPayload keeps a payload that is not a JSON object: UTF-8 text as
// Requests {"payload", text}; binary data (malware samples on
// mwbinary.dionaea.sensorunique) as a peba.Payload for the payload store
// plus a hex prefix in Requests {"payload_hex", ...}.
func rawPayload(e *peba.Event, payload []byte) {
	if utf8.Valid(payload) {
		e.Requests = append(e.Requests, peba.Attr{Key: "payload", Value: bounded(e, "payload", string(payload))})
		return
	}
	sum := md5.Sum(payload)
	sumHex := hex.EncodeToString(sum[:])
	e.PayloadMD5 = sumHex
	e.Payload = &peba.Payload{
		MD5:       sumHex,
		FuzzyHash: sumHex, // PEBA's rule without an HTTP Host header (peba.md §4.10)
		MIME:      mimetype.Detect(payload).String(),
		Size:      int64(len(payload)),
		Data:      bytes.Clone(payload),
	}
	n := min(len(payload), maxHexBytes)
	if n < len(payload) {
		e.Fields = append(e.Fields, peba.Attr{Key: "_truncated", Value: "payload_hex"})
	}
	e.Requests = append(e.Requests, peba.Attr{Key: "payload_hex", Value: hex.EncodeToString(payload[:n])})
}

// genericSrcKeys / genericDstKeys are the address keys used across §7's
// producers, tried in order for channels without a normalizer so that an
// unknown honeypot still shows up in the attacker statistics.
var (
	genericSrcKeys = []string{"src_ip", "source_ip", "peerIP", "remote_host", "saddr", "client_ip", "attackerIP", "attacker_ip", "src", "SrcIp", "source"}
	genericDstKeys = []string{"dst_ip", "dest_ip", "destination_ip", "hostIP", "local_host", "daddr", "server_ip", "victimIP", "honey_ip", "DestIp"}
	genericSport   = []string{"src_port", "source_port", "peerPort", "remote_port", "sport", "client_port", "attackerPort", "attacker_source_port", "spt", "SrcPort"}
	genericDport   = []string{"dst_port", "dest_port", "destination_port", "hostPort", "local_port", "dport", "server_port", "victimPort", "honey_port", "dpt", "DestPort"}
)

func firstOf(o *object, keys []string) string {
	for _, k := range keys {
		if v := o.str(k); v != "" {
			return v
		}
	}
	return ""
}

// normalizeGeneric stores a message of a channel without a normalizer:
// PeerType "hpfeeds(<channel>)", the payload kept (bounded) in Fields (JSON
// object) or Requests (anything else), addresses and time from common keys.
func normalizeGeneric(channel string, payload []byte, now time.Time) peba.Event {
	e := peba.Event{
		PeerType:   "hpfeeds(" + clip(channel, 255) + ")",
		CreateTime: now,
		SrcPort:    peba.NoPort,
		DstPort:    peba.NoPort,
	}
	o, ok := parseObject(payload)
	if !ok {
		rawPayload(&e, payload)
		return e
	}
	e.SrcIP = parseIP(firstOf(o, genericSrcKeys))
	e.DstIP = parseIP(firstOf(o, genericDstKeys))
	e.SrcPort = parsePort(firstOf(o, genericSport))
	e.DstPort = parsePort(firstOf(o, genericDport))
	e.CreateTime = parseTime(firstOf(o, []string{"timestamp", "time", "startTime"}), now)
	addFields(&e, o)
	return e
}

// normalizeKnown maps a payload of a channel with a spec.
func normalizeKnown(s *spec, payload []byte, now time.Time) (peba.Event, error) {
	o, ok := parseObject(payload)
	if !ok {
		return peba.Event{}, fmt.Errorf("cannot normalize %s payload: not a JSON object: %w", s.peerType, ErrInvalid)
	}
	e := peba.Event{
		PeerType:  s.peerType,
		SrcIP:     parseIP(o.str(s.srcIP)),
		SrcPort:   parsePort(o.str(s.srcPort)),
		DstIP:     parseIP(o.str(s.dstIP)),
		DstPort:   parsePort(o.str(s.dstPort)),
		Transport: s.transport,
	}
	if s.dstPort == "" && s.fixedDstPort != 0 {
		e.DstPort = s.fixedDstPort
	}
	if s.transportKey != "" {
		e.Transport = strings.ToLower(clip(o.str(s.transportKey), 16))
	}
	protocol := s.protocol
	if s.protocolKey != "" {
		if p := o.str(s.protocolKey); p != "" {
			protocol = p
		}
	}
	e.CreateTime = parseTime(o.str(s.timeKey), now)
	addFields(&e, o)
	if s.extra != nil {
		s.extra(o, &e, &protocol)
	}
	if protocol != "" {
		e.AdditionalData = append(e.AdditionalData, peba.Attr{Key: "protocol", Value: clip(protocol, 64)})
	}
	if !e.SrcIP.IsValid() {
		return peba.Event{}, fmt.Errorf("cannot normalize %s payload: no valid source address: %w", s.peerType, ErrInvalid)
	}
	return e, nil
}
