package ingest

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// fullEvent sets every field of peba.Event (and of Payload) to a distinct,
// non-zero value.
func fullEvent(i int) peba.Event {
	at := time.Date(2026, 11, 20, 8, 0, i%60, 123456789, time.UTC)
	return peba.Event{
		ID: "id-" + strings.Repeat("x", i), Domain: peba.DomainPrivate, Submitter: "user", Origin: "ews",
		ReceivedTime: at.Add(time.Hour), CreateTime: at,
		PeerIdent: "cowrie-01", PeerType: "SSH/console(cowrie)", SensorUUID: "9b1f-...", Hostname: "h",
		ExternalIP: "1.2.3.4", InternalIP: "10.0.0.1",
		SrcIP: netip.MustParseAddr("216.160.83.56"), SrcPort: 40000 + int32(i),
		DstIP: netip.MustParseAddr("fe80::1%eth0"), DstPort: peba.NoPort, Transport: "tcp",
		URL: "/ä\x00", VulnID: "CVE-1", Username: "root", Password: "pw", Login: "ok",
		ClientVersion: "SSH-2.0", SessionStart: "s", SessionEnd: "e", RawHTTP: "GET / HTTP/1.1",
		PayloadMD5:     "d41d8cd98f00b204e9800998ecf8427e",
		AdditionalData: []peba.Attr{{Key: "payload_md5", Value: "d41d"}, {Key: "protocol", Value: "http"}},
		Fields:         []peba.Attr{},
		Requests:       []peba.Attr{{Key: "description", Value: "x"}, {Key: "description", Value: "y"}},
		Src:            peba.Geo{Country: "SE", CountryName: "Sweden", ASN: "AS1 Test", Lat: 59.3, Lon: -18.1},
		Dst:            peba.Geo{Country: "PIR", CountryName: "IANA Private IP Range", ASN: "IANA"},
		Payload: &peba.Payload{MD5: "d41d", FuzzyHash: "abc", MIME: "text/plain", Size: 1 << 40,
			Data: []byte("dropped"), FirstSeen: at, LastSeen: at.Add(time.Minute), MD5Count: 3, FuzzyCount: -1,
			InitialIP: "216.160.83.56", InitialDestPort: 80},
	}
}

func TestCodecRoundTripIsLossless(t *testing.T) {
	in := []peba.Event{
		fullEvent(1), fullEvent(7),
		{ID: "minimal"}, // zero times, invalid addresses, nil lists, no payload
		{ID: "v4in6", SrcIP: netip.MustParseAddr("::ffff:1.2.3.4"), DstIP: netip.MustParseAddr("::1"),
			CreateTime: time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC)},
	}
	got, err := decodeEvents(appendEvents(nil, in))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]peba.Event, len(in))
	copy(want, in)
	for i := range want {
		if p := want[i].Payload; p != nil {
			cp := *p
			cp.Data = nil
			want[i].Payload = &cp
		}
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
}

func TestCodecRefusesTruncatedAndTrailingBytes(t *testing.T) {
	rec := appendEvents(nil, []peba.Event{fullEvent(3)})
	for n := range len(rec) {
		if _, err := decodeEvents(rec[:n]); err == nil {
			t.Fatalf("prefix of %d of %d bytes decoded", n, len(rec))
		}
	}
	if _, err := decodeEvents(append(rec, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func FuzzDecodeEvents(f *testing.F) {
	f.Add(appendEvents(nil, []peba.Event{fullEvent(2), {ID: "x"}}))
	f.Add(appendEvents(nil, nil))
	f.Add([]byte{codecVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, rec []byte) {
		events, err := decodeEvents(rec)
		if err != nil {
			return
		}
		// What decodes must re-encode to a record that decodes to the same
		// (compared encoded: NaN coordinates are not DeepEqual to themselves).
		enc := appendEvents(nil, events)
		again, err := decodeEvents(enc)
		if err != nil || !bytes.Equal(appendEvents(nil, again), enc) {
			t.Fatalf("re-encoding is not stable: %v", err)
		}
	})
}

func BenchmarkCodec(b *testing.B) {
	events := make([]peba.Event, 100)
	for i := range events {
		events[i] = fullEvent(i % 20)
	}
	var buf []byte
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			buf = appendEvents(buf[:0], events)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
		b.ReportMetric(float64(len(buf))/float64(len(events)), "bytes/event")
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeEvents(buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
	})
}
