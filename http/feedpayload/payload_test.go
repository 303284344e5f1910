package feedpayload

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/peba-go/peba"
)

func sampleEvent() *peba.Event {
	return &peba.Event{
		ID: "ev1", Domain: peba.DomainCommunity, Origin: "ews",
		ReceivedTime: time.Unix(1795258614, 70390000).UTC(),
		CreateTime:   time.Unix(1795258600, 0),
		PeerIdent:    "sensor-17", PeerType: "SSH/console(cowrie)", SensorUUID: "6f1c0e8a",
		Hostname: "tpot-berlin", ExternalIP: "198.51.100.4", InternalIP: "10.0.0.5",
		SrcIP: netip.MustParseAddr("203.0.113.7"), SrcPort: 51234,
		DstIP: netip.MustParseAddr("10.0.0.5"), DstPort: 22, Transport: "tcp",
		Username: "root", Password: "123456",
		Src: peba.Geo{Country: "DE", CountryName: "Germany", ASN: "-", Lat: 52.5, Lon: 13.4},
	}
}

func TestPayloadShape(t *testing.T) {
	got := string(NewPayload(sampleEvent()).AppendJSON(nil))
	want := `{"event_id":"ev1","domain":"community","src_ip":"203.0.113.7","src_port":51234,` +
		`"src_country":"DE","src_country_name":"Germany","latitude":52.5,"longitude":13.4,` +
		`"dst_ip":"10.0.0.5","dst_port":22,"protocol":"tcp","peerType":"SSH/console(cowrie)",` +
		`"username":"root","password":"123456","hostname":"tpot-berlin","externalIP":"198.51.100.4",` +
		`"internalIP":"10.0.0.5","sensor_uuid":"6f1c0e8a","peerIdent":"sensor-17",` +
		`"createTime":"2026-11-21T10:56:40Z","identifier":"sensor-17","channel":"ews","timestamp":1795258614.07039}`
	if got != want {
		t.Fatalf("payload\n got %s\nwant %s", got, want)
	}
}

// TestPayloadSensorLocation: the sensor's coarse location (the dashboard
// draws arcs to it) is in both the full and the anonymous payload; its
// address is only in the full one.
func TestPayloadSensorLocation(t *testing.T) {
	e := sampleEvent()
	e.DstIP = netip.MustParseAddr("81.2.69.142")
	e.Dst = peba.Geo{Country: "GB", CountryName: "United Kingdom", ASN: "-", Lat: 51.5, Lon: -0.12}
	full := NewPayload(e)
	const loc = `"dst_port":22,"dst_country":"GB","dst_latitude":51.5,"dst_longitude":-0.12,"protocol"`
	if got := string(full.AppendJSON(nil)); !strings.Contains(got, `"dst_ip":"81.2.69.142",`+loc) {
		t.Fatalf("full payload %s", got)
	}
	anon := string(Sanitize(full, SanitizeOptions{}).AppendJSON(nil))
	if !strings.Contains(anon, loc) || strings.Contains(anon, "81.2.69.142") {
		t.Fatalf("anonymous payload %s", anon)
	}
	// Unknown geo ("-", 0/0) adds nothing.
	e.Dst = peba.UnknownGeo
	if got := string(NewPayload(e).AppendJSON(nil)); strings.Contains(got, "dst_country") || strings.Contains(got, "dst_latitude") {
		t.Fatalf("unknown geo in payload %s", got)
	}
}

func TestSanitize(t *testing.T) {
	f := func(opt SanitizeOptions, mustHave, mustNot []string) {
		t.Helper()
		full := NewPayload(sampleEvent())
		before := string(full.AppendJSON(nil))
		got := string(Sanitize(full, opt).AppendJSON(nil))
		if string(full.AppendJSON(nil)) != before {
			t.Fatal("Sanitize modified its input")
		}
		for _, k := range mustHave {
			if !strings.Contains(got, `"`+k+`":`) {
				t.Errorf("%+v: %s missing in %s", opt, k, got)
			}
		}
		for _, k := range mustNot {
			if strings.Contains(got, `"`+k+`":`) {
				t.Errorf("%+v: %s present in %s", opt, k, got)
			}
		}
		// No address of our sensor survives under any key.
		for _, ip := range []string{"10.0.0.5", "198.51.100.4", "6f1c0e8a", "tpot-berlin"} {
			if strings.Contains(got, ip) {
				t.Errorf("%+v: %s leaked in %s", opt, ip, got)
			}
		}
	}
	sensor := []string{"dst_ip", "hostname", "externalIP", "internalIP", "sensor_uuid", "domain"}
	f(SanitizeOptions{}, []string{"src_ip", "dst_port", "protocol", "peerIdent", "identifier", "channel", "timestamp"},
		append([]string{"username", "password"}, sensor...))
	f(SanitizeOptions{KeepCredentials: true}, []string{"username", "password"}, sensor)
	f(SanitizeOptions{HidePeerIdent: true}, []string{"src_ip", "channel"}, append([]string{"peerIdent", "identifier"}, sensor...))

	// SecKC's own keys (seckc.md §4.6) are removed too.
	p := Payload{{"hostIP", "10.1.1.1"}, {"local_host", "x"}, {"victimIP", "x"}, {"secret", "x"}, {"keep", int64(1)}}
	if got := string(Sanitize(p, SanitizeOptions{}).AppendJSON(nil)); got != `{"keep":1}` {
		t.Fatalf("got %s", got)
	}
}

func TestJSONEncodingIsASCIIAndValid(t *testing.T) {
	e := sampleEvent()
	e.URL = "/a\"b\\c\n\x01\u00e9\U0001F600\xff" + strings.Repeat("x", 5000)
	b := NewPayload(e).AppendJSON(nil)
	for _, c := range b {
		if c >= 0x80 || c < 0x20 {
			t.Fatalf("non-ASCII or control byte %#x in %q", c, b)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	u := m["url"].(string)
	if !strings.HasPrefix(u, "/a\"b\\c\n\x01\u00e9\U0001F600\uFFFD") || len(u) > maxValueLen+8 {
		t.Fatalf("url round trip: %q (len %d)", u[:20], len(u))
	}
}

func FuzzPayloadJSON(f *testing.F) {
	f.Add("root", "/index.php", "\xff\xfe")
	f.Add("\u2028", "\x00", strings.Repeat("é", 1500))
	f.Fuzz(func(t *testing.T, user, url, peer string) {
		e := sampleEvent()
		e.Username, e.URL, e.PeerIdent = user, url, peer
		b := NewPayload(e).AppendJSON(nil)
		if !json.Valid(b) || !utf8.Valid(b) {
			t.Fatalf("invalid JSON %q", b)
		}
	})
}

// appendStringRuneByRune is the straightforward encoding appendString
// must match byte for byte: every rune on its own.
func appendStringRuneByRune(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s { // invalid bytes come out as utf8.RuneError
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r < 0x20 || r >= 0x7f:
			if r > 0xffff {
				r1, r2 := utf16Pair(r)
				b = appendU(appendU(b, r1), r2)
			} else {
				b = appendU(b, r)
			}
		default:
			b = append(b, byte(r))
		}
	}
	return append(b, '"')
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "/a\"b\\c\n\r\t\x01\x7f\u00e9\U0001F600\xff", "\xe2\x82", "é\x00\u2028x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := appendString(nil, s), appendStringRuneByRune(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %q, want %q", s, got, want)
		}
	})
}
