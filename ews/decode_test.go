package ews

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/testfixtures"
)

// fixtures is the repository copy of /work/shared/fixtures/ews.
var fixtures = testfixtures.Dir("")

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustDecode(tb testing.TB, body []byte) *Batch {
	tb.Helper()
	b, err := Decode(body, Options{})
	if err != nil {
		tb.Fatalf("Decode: %v", err)
	}
	return b
}

func glob(tb testing.TB, pattern string) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(fixtures, pattern))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no fixtures for %s: %v", pattern, err)
	}
	return files
}

// modulePeerTypes is the expected peerType of every ewsposter module, by the
// Analyzer id its fixture uses.
var modulePeerTypes = map[string]string{
	"adbhoney-community-01":      "Service(adbhoney)",
	"beelzebub-community-01":     "SSH/console(beelzebub)",
	"ciscoasa-community-01":      "Network(cisco-asa)",
	"citrix-community-01":        "Webpage(citrix)",
	"conpot-community-01":        "Industrial(conpot)",
	"cowrie-community-01":        "SSH/console(cowrie)",
	"ddospot-community-01":       "Network(ddospot)",
	"dicompot-community-01":      "Service(dicompot)",
	"dionaea-community-01":       "Network(Dionaea)",
	"elasticpot-community-01":    "Service(ES)",
	"emobility-community-01":     "Service(emobility)",
	"endlessh-community-01":      "SSH/console(endlessh)",
	"fatt-community-01":          "Network(fatt)",
	"galah-community-01":         "Webpage(galah)",
	"glastopfv3-community-01":    "Webpage",
	"glutton-community-01":       "Network(glutton)",
	"gopot-community-01":         "Webpage(gopot)",
	"h0neytr4p-community-01":     "Webpage(h0neytr4p)",
	"hellpot-community-01":       "Webpage(hellpot)",
	"heralding-community-01":     "Passwords(heralding)",
	"honeyaml-community-01":      "Webpage(honeyaml)",
	"honeypots-community-01":     "Network(honeypots)",
	"honeypy-community-01":       "Network(honeypy)",
	"honeysap-community-01":      "Service(honeysap)",
	"honeytrap-community-01":     "Network(honeytrap)",
	"ipphoney-community-01":      "Service(ipphoney)",
	"log4pot-community-01":       "Webpage(log4pot)",
	"mailoney-community-01":      "E-Mail(mailoney)",
	"medpot-community-01":        "Service(Medicine)",
	"miniprint-community-01":     "Service(miniprint)",
	"rdpy-community-01":          "RDP(rdpy)",
	"redishoneypot-community-01": "Service(redishoneypot)",
	"sentrypeer-community-01":    "Service(sentrypeer)",
	"suricata-community-01":      "Network(suricata)",
	"tanner-community-01":        "Webpage",
	"vnclowpot-community-01":     "VNC(vnclowpot)",
	"wordpot-community-01":       "Webpage(wordpot)",
}

func TestEWSPosterFixtures(t *testing.T) {
	var all []peba.Event
	ids := map[string]bool{}
	for _, f := range glob(t, "ewsposter/*.xml") {
		b := mustDecode(t, mustRead(t, f))
		if !b.HasAuth || b.Username != "harness-user" || b.Token != "s3cr3t&<tok%en>" {
			t.Errorf("%s: auth = %q %q %v", f, b.Username, b.Token, b.HasAuth)
		}
		if len(b.Skipped) != 0 {
			t.Errorf("%s: skipped %v", f, b.Skipped)
		}
		for _, ev := range b.Events {
			if ids[ev.ID] {
				t.Errorf("%s: duplicate id %s", f, ev.ID)
			}
			ids[ev.ID] = true
		}
		all = append(all, b.Events...)
	}
	if len(all) != 297 {
		t.Fatalf("got %d events, want 297", len(all))
	}
	perModule := map[string]int{}
	var cyrillic, mapped, large bool
	for _, ev := range all {
		want, ok := modulePeerTypes[ev.PeerIdent]
		if !ok || ev.PeerType != want {
			t.Errorf("%s: peerType %q, want %q", ev.PeerIdent, ev.PeerType, want)
		}
		perModule[ev.PeerIdent]++
		if ev.Submitter != "harness-user" || ev.Origin != "ews" || len(ev.ID) != 32 {
			t.Errorf("%s: submitter %q origin %q id %q", ev.PeerIdent, ev.Submitter, ev.Origin, ev.ID)
		}
		if !ev.SrcIP.IsValid() || ev.SrcIP.Is4In6() || ev.CreateTime.IsZero() || ev.CreateTime.Location() != time.UTC {
			t.Errorf("%s: src %v time %v", ev.PeerIdent, ev.SrcIP, ev.CreateTime)
		}
		if ev.SensorUUID == "" || ev.ExternalIP != "81.2.69.142" {
			t.Errorf("%s: uuid %q external %q", ev.PeerIdent, ev.SensorUUID, ev.ExternalIP)
		}
		cyrillic = cyrillic || ev.Username == "администратор"
		mapped = mapped || ev.SrcIP == netip.MustParseAddr("67.43.156.7") && ev.PeerIdent == "dionaea-community-01"
		large = large || ev.Payload != nil && ev.Payload.Size > 5<<10 && ev.PayloadMD5 == ev.Payload.MD5
	}
	if len(perModule) != 37 || perModule["endlessh-community-01"] != 205 {
		t.Errorf("modules: %d, endlessh %d", len(perModule), perModule["endlessh-community-01"])
	}
	if !cyrillic || !mapped || !large {
		t.Errorf("cyrillic %v, ipv4-mapped source unmapped %v, largepayload %v", cyrillic, mapped, large)
	}
}

func TestResendSameIDs(t *testing.T) {
	idSet := func(name string) map[string]bool {
		s := map[string]bool{}
		for _, ev := range mustDecode(t, mustRead(t, filepath.Join(fixtures, "ewsposter-resend", name))).Events {
			s[ev.ID] = true
		}
		return s
	}
	first := map[string]bool{}
	resent := map[string]bool{}
	// ewsposter resent its spool in os.listdir order: 0001<->0049, 0002<->0048, 0003<->0047.
	for _, pair := range [][2]string{{"0001.xml", "0049.xml"}, {"0002.xml", "0048.xml"}, {"0003.xml", "0047.xml"}} {
		a, b := idSet(pair[0]), idSet(pair[1])
		if len(a) != 2 || !reflect.DeepEqual(a, b) {
			t.Errorf("%s vs %s: %v vs %v", pair[0], pair[1], a, b)
		}
		for id := range a {
			first[id] = true
		}
		for id := range b {
			resent[id] = true
		}
	}
	if len(first) != 6 || !reflect.DeepEqual(first, resent) {
		t.Errorf("first %v, resent %v", first, resent)
	}
	// The submitter is part of the ID: the same alerts from another user differ.
	other := mustDecode(t, mustRead(t, filepath.Join(fixtures, "ewsposter/0001.xml")))
	for _, ev := range other.Events {
		if first[ev.ID] {
			t.Errorf("id %s shared between users", ev.ID)
		}
	}
}

func TestPEBASamples(t *testing.T) {
	for _, tc := range []struct {
		file            string
		events, skipped int
		distinctIDs     int
	}{
		{"alarm.xml", 10, 0, 10},
		{"alarmvuln.xml", 9, 0, 9},
		{"broken.xml", 7, 1, 7},
		{"alarmtest.xml", 1, 0, 1},
		{"alarmht.xml", 1, 0, 1},
		{"honeytrap.xml", 1, 0, 1},
		{"honeytrap-mit-binary.xml", 2, 0, 2},
		{"honeytrap-mit-fuzzyhash.xml", 11, 0, 11},
		{"honeytrap-mit-payloads.xml", 100, 0, 100},
		{"alarmcowrie.xml", 100, 0, 100},
		{"alarmdionaea.xml", 100, 0, 100},
		{"alarmsuricata.xml", 6, 0, 6},
		{"ciscoasa.xml", 7, 0, 7},
		{"conpot.xml", 10, 0, 10},
		{"glastopf.xml", 80, 0, 80},
		{"glastopf2.xml", 1, 0, 1},
		{"heralding.xml", 4, 0, 4},
		{"get-request-auth.xml", 0, 0, 0},
	} {
		b := mustDecode(t, mustRead(t, filepath.Join(fixtures, "peba-samples", tc.file)))
		ids := map[string]bool{}
		for _, ev := range b.Events {
			ids[ev.ID] = true
		}
		if len(b.Events) != tc.events || len(b.Skipped) != tc.skipped || len(ids) != tc.distinctIDs {
			t.Errorf("%s: %d events, %d skipped, %d ids; want %d, %d, %d",
				tc.file, len(b.Events), len(b.Skipped), len(ids), tc.events, tc.skipped, tc.distinctIDs)
		}
	}
}

func TestBrokenSample(t *testing.T) {
	b := mustDecode(t, mustRead(t, filepath.Join(fixtures, "peba-samples/broken.xml")))
	want := []Skip{{Index: 1, Reason: "alert 1: Source is not an IP address"}}
	if !reflect.DeepEqual(b.Skipped, want) {
		t.Errorf("skipped = %v", b.Skipped)
	}
	ht := b.Events[0]
	// honeytrap: tz not applied, url replaced by fixUrl, raw HTTP payload.
	if ht.PeerType != "Network(honeytrap)" || ht.CreateTime != time.Date(2016, 3, 11, 9, 12, 22, 0, time.UTC) ||
		ht.URL != "Attack on port 80/tcp" || !strings.HasPrefix(ht.RawHTTP, "GET /cgi-bin/") ||
		ht.DstIP != netip.MustParseAddr("199.190.46.123") || ht.Payload == nil || ht.PayloadMD5 != ht.Payload.MD5 {
		t.Errorf("honeytrap event = %+v", ht)
	}
	// MSTest4 carries the glastopf description: the fallback classifies it.
	if b.Events[1].PeerIdent != "MSTest4" || b.Events[1].PeerType != "Webpage" {
		t.Errorf("MSTest4: %q", b.Events[1].PeerType)
	}
}

// TestHeraldingWorkedExample is peba.md §4.12 minus GeoIP.
func TestHeraldingWorkedExample(t *testing.T) {
	ev := mustDecode(t, mustRead(t, filepath.Join(fixtures, "peba-samples/heralding.xml"))).Events[0]
	want := peba.Event{
		ID:             ev.ID,
		Submitter:      "community-01-user",
		Origin:         "ews",
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
		Fields: []peba.Attr{
			{Key: "username", Value: "root"}, {Key: "externalIP", Value: "5.4.4.4"}, {Key: "protocol", Value: "ssh"},
			{Key: "hostname", Value: "liquidxtc"}, {Key: "internalIP", Value: "10.1.1.1"}, {Key: "password", Value: "1337"},
		},
		Requests: []peba.Attr{{Key: "description", Value: "Heralding Honeypot"}},
	}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("got  %+v\nwant %+v", ev, want)
	}
}

func TestSampleDetails(t *testing.T) {
	alarm := mustDecode(t, mustRead(t, filepath.Join(fixtures, "peba-samples/alarm.xml"))).Events
	var kippo *peba.Event
	for i := range alarm {
		if alarm[i].PeerIdent == "kippo-community-01" {
			kippo = &alarm[i]
		}
	}
	if kippo == nil || kippo.URL != "(CVE-2012-5959 CVE-2012-5958) " || kippo.SrcPort != peba.NoPort ||
		kippo.SessionStart != "2017-08-01 03:30:28" || kippo.Login != "Success" || kippo.VulnID != "CVE-2012-5959 CVE-2012-5958" {
		t.Errorf("kippo = %+v", kippo)
	}
	dio := mustDecode(t, mustRead(t, filepath.Join(fixtures, "peba-samples/alarmdionaea.xml"))).Events[0]
	if !strings.HasPrefix(dio.URL, "Attack on port ") || strings.Contains(dio.URL, "/") {
		t.Errorf("dionaea url %q", dio.URL)
	}
	cisco := mustDecode(t, mustRead(t, filepath.Join(fixtures, "peba-samples/ciscoasa.xml"))).Events[0]
	if !reflect.DeepEqual(cisco.AdditionalData, []peba.Attr{{Key: "payload", Value: "['A']"}}) {
		t.Errorf("ciscoasa additionalData %v", cisco.AdditionalData)
	}
	con := mustDecode(t, mustRead(t, filepath.Join(fixtures, "peba-samples/conpot.xml"))).Events[0]
	if con.DstPort != peba.NoPort || len(con.AdditionalData) != 6 {
		t.Errorf("conpot port %d additionalData %v", con.DstPort, con.AdditionalData)
	}
	cowrie := mustDecode(t, mustRead(t, filepath.Join(fixtures, "peba-samples/alarmcowrie.xml"))).Events
	var inputs int
	for _, ev := range cowrie {
		if strings.HasPrefix(ev.URL, "\n") {
			inputs++
		}
	}
	if inputs == 0 {
		t.Error("no cowrie input decoded into URL")
	}
	// payload_md5 override (peba.md §10, honeytrap-mit-fuzzyhash.xml): the
	// sensor's value wins in additionalData, the real md5 in PayloadMD5.
	var overridden, sensorOnly int
	for _, ev := range mustDecode(t, mustRead(t, filepath.Join(fixtures, "peba-samples/honeytrap-mit-fuzzyhash.xml"))).Events {
		var ad string
		for _, a := range ev.AdditionalData {
			if a.Key == "payload_md5" {
				ad = a.Value
			}
		}
		switch {
		case ev.Payload != nil && ad != ev.Payload.MD5:
			overridden++
			if ev.PayloadMD5 != ev.Payload.MD5 {
				t.Errorf("PayloadMD5 %s, bytes %s", ev.PayloadMD5, ev.Payload.MD5)
			}
		case ev.Payload == nil && ad != "":
			sensorOnly++
			if isMD5(ad) != (ev.PayloadMD5 != "") {
				t.Errorf("sensor md5 %q -> PayloadMD5 %q", ad, ev.PayloadMD5)
			}
		}
	}
	if overridden == 0 || sensorOnly != 2 {
		t.Errorf("overridden %d, sensor-only %d", overridden, sensorOnly)
	}
}

// alertBody wraps alert children into a body with credentials.
func alertBody(alerts ...string) []byte {
	var sb strings.Builder
	sb.WriteString(`<EWS-SimpleMessage version="3.0"><Authentication><username>u</username><token>t</token></Authentication>`)
	for _, a := range alerts {
		sb.WriteString("<Alert>" + a + "</Alert>")
	}
	sb.WriteString("</EWS-SimpleMessage>")
	return []byte(sb.String())
}

const (
	okAnalyzer = `<Analyzer id="cowrie-x"/>`
	okTime     = `<CreateTime tz="+0100">2020-01-01 10:00:00</CreateTime>`
	okSource   = `<Source category="ipv4" port="1234" protocol="tcp">8.8.8.8</Source>`
	okTarget   = `<Target category="ipv4" port="22" protocol="tcp">1.2.3.4</Target>`
)

func TestSkipRules(t *testing.T) {
	for _, tc := range []struct {
		name, alert, reason string
	}{
		{"ok", okAnalyzer + okTime + okSource + okTarget, ""},
		{"analyzer missing", okTime + okSource, "Analyzer id is missing or empty"},
		{"analyzer without id", `<Analyzer/>` + okTime + okSource, "Analyzer id is missing or empty"},
		{"analyzer id empty", `<Analyzer id=""/>` + okTime + okSource, "Analyzer id is missing or empty"},
		{"source empty", okAnalyzer + okTime + `<Source port="1" protocol="tcp"></Source>`, "Source is not an IP address"},
		{"source not ip", okAnalyzer + okTime + `<Source>asasasas</Source>`, "Source is not an IP address"},
		{"source with spaces", okAnalyzer + okTime + `<Source> 8.8.8.8</Source>`, "Source is not an IP address"},
		{"source leading zero", okAnalyzer + okTime + `<Source>08.8.8.8</Source>`, "Source is not an IP address"},
		{"source zone", okAnalyzer + okTime + `<Source>fe80::1%eth0</Source>`, "Source is not an IP address"},
		{"source missing kept", okAnalyzer + okTime, ""},
		{"source ipv6", okAnalyzer + okTime + `<Source>2001:db8::1</Source>`, ""},
		{"target not ip", okAnalyzer + okTime + okSource + `<Target>x</Target>`, "Target is not an IP address"},
		{"target empty kept", okAnalyzer + okTime + okSource + `<Target port="1"/>`, ""},
		{"time missing", okAnalyzer + okSource, "CreateTime is missing or empty"},
		{"time empty", okAnalyzer + okSource + `<CreateTime tz="+0000"></CreateTime>`, "CreateTime is missing or empty"},
		{"time garbage", okAnalyzer + okSource + `<CreateTime tz="+0000">yesterday</CreateTime>`, "CreateTime is not a YYYY-MM-DD HH:MM:SS time"},
		{"tz empty", okAnalyzer + okSource + `<CreateTime tz="">2020-01-01 10:00:00</CreateTime>`, "CreateTime has no tz"},
		{"tz missing", okAnalyzer + okSource + `<CreateTime>2020-01-01 10:00:00</CreateTime>`, "CreateTime has no tz"},
		{"tz empty honeytrap kept", `<Analyzer id="honeytrap"/>` + okSource + `<CreateTime tz="">2020-01-01 10:00:00</CreateTime>`, ""},
		{"empty url/raw/cve/starttime kept", okAnalyzer + okTime + okSource + `<Request type="url"/><Request type="raw"></Request>` +
			`<AdditionalData meaning="cve_id"/><AdditionalData meaning="starttime"></AdditionalData>`, ""},
		{"invalid base64 kept", okAnalyzer + okTime + okSource + `<Request type="raw">QUJD=x</Request>`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mustDecode(t, alertBody(okAnalyzer+okTime+okSource, tc.alert))
			got := ""
			if len(b.Skipped) > 0 {
				got = b.Skipped[0].Reason
			}
			wantReason := ""
			if tc.reason != "" {
				wantReason = "alert 1: " + tc.reason
			}
			if got != wantReason || len(b.Events)+len(b.Skipped) != 2 || len(b.Skipped) > 1 {
				t.Errorf("reason %q, want %q (events %d)", got, wantReason, len(b.Events))
			}
		})
	}
}

func TestHoneytrapRuleOrderIndependent(t *testing.T) {
	// B-3: Analyzer after CreateTime must not defeat the honeytrap exception.
	b := mustDecode(t, alertBody(okTime+okSource+`<Analyzer id="honeytrap"/>`, `<Analyzer id="honeytrap"/>`+okTime+okSource))
	for _, ev := range b.Events {
		if ev.CreateTime != time.Date(2020, 1, 1, 10, 0, 0, 0, time.UTC) {
			t.Errorf("%v", ev.CreateTime)
		}
	}
}

func TestFieldNotes(t *testing.T) {
	long := strings.Repeat("ж", 40) // 80 bytes
	b, err := Decode(alertBody(okAnalyzer+okSource+`<CreateTime tz="+01">2020-01-01 10:00:00</CreateTime>`+
		`<AdditionalData meaning="username">`+long+`</AdditionalData>`+
		`<Request type="binary">QUJD=x</Request>`), Options{MaxFieldBytes: 7})
	if err != nil {
		t.Fatal(err)
	}
	ev := b.Events[0]
	if ev.Username != "жжж" || ev.CreateTime != time.Date(2020, 1, 1, 10, 0, 0, 0, time.UTC) || ev.Payload != nil {
		t.Errorf("username %q time %v payload %v", ev.Username, ev.CreateTime, ev.Payload)
	}
	notes := map[string]string{}
	for _, f := range ev.Fields {
		if strings.HasPrefix(f.Key, "_") {
			notes[f.Key] = f.Value
		}
	}
	want := map[string]string{"_truncated": "username", "_payload_invalid": "Request/binary", "_tz_invalid": "+01"}
	if !reflect.DeepEqual(notes, want) {
		t.Errorf("notes %v", notes)
	}
}

func TestPayloadLimit(t *testing.T) {
	b, err := Decode(alertBody(okAnalyzer+okTime+okSource+`<Request type="raw">R0VUIC8gSFRUUC8xLjENCkhvc3Q6IHgNCg0K</Request>`),
		Options{MaxPayloadBytes: 4})
	if err != nil {
		t.Fatal(err)
	}
	p := b.Events[0].Payload
	if p == nil || p.Data != nil || p.Size != 27 || p.MIME != "text/plain" || p.FuzzyHash == p.MD5 ||
		b.Events[0].RawHTTP != "GET / HTTP/1.1\r\nHost: x\r\n\r\n" {
		t.Errorf("payload %+v rawhttp %q", p, b.Events[0].RawHTTP)
	}
}

func TestIdenticalAlertsStayDistinct(t *testing.T) {
	a := okAnalyzer + okTime + okSource + okTarget
	b := mustDecode(t, alertBody(a, a, a))
	if len(b.Events) != 3 || b.Events[0].ID == b.Events[1].ID || b.Events[1].ID == b.Events[2].ID || b.Events[0].ID == b.Events[2].ID {
		t.Fatalf("ids %v", b.Events)
	}
	// Attribute order and whitespace between children do not matter; text does.
	pretty := mustDecode(t, alertBody("\n  "+okAnalyzer+"\n  "+okTime+"\n  "+
		`<Source protocol="tcp" port="1234" category="ipv4">8.8.8.8</Source>`+okTarget+"\n"))
	if pretty.Events[0].ID != b.Events[0].ID {
		t.Error("pretty-printed alert got another ID")
	}
	ports := mustDecode(t, alertBody(strings.Replace(a, `port="1234"`, `port="1235"`, 1)))
	if ports.Events[0].ID == b.Events[0].ID {
		t.Error("alerts differing in a port share an ID")
	}
}

func TestNestedAlertsAnyDepth(t *testing.T) {
	body := `<R><Authentication><username>u</username><token>t</token></Authentication><x><Alert>` + okAnalyzer + okTime + okSource +
		`<AdditionalData meaning="m">text<Alert><Analyzer id="inner"/>` + okTime + okSource + `</Alert>tail</AdditionalData></Alert></x></R>`
	b := mustDecode(t, []byte(body))
	if len(b.Events) != 2 || b.Events[0].PeerIdent != "cowrie-x" || b.Events[1].PeerIdent != "inner" ||
		b.Events[0].Fields[0].Value != "text" {
		t.Errorf("events %+v", b.Events)
	}
}

func TestHostileInput(t *testing.T) {
	ok := string(alertBody(okAnalyzer + okTime + okSource))
	for _, tc := range []struct {
		name string
		body string
		want error
	}{
		{"doctype", `<!DOCTYPE x [<!ENTITY a "aaaa">]>` + ok, ErrDTD},
		{"entity bomb", `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><lolz>&lol2;</lolz>`, ErrDTD},
		{"undefined entity", strings.Replace(ok, "<username>u", "<username>&xxe;", 1), ErrMalformed},
		{"invalid utf-8", strings.Replace(ok, "<username>u", "<username>\xff\xfe", 1), ErrMalformed},
		{"control char", strings.Replace(ok, "<username>u", "<username>\x01", 1), ErrMalformed},
		{"control char ref", strings.Replace(ok, "<username>u", "<username>&#1;", 1), ErrMalformed},
		{"latin1 declared", `<?xml version="1.0" encoding="ISO-8859-1"?>` + ok, ErrMalformed},
		{"unclosed", ok[:len(ok)-10], ErrMalformed},
		{"mismatched", strings.Replace(ok, "</Alert>", "</Alarm>", 1), ErrMalformed},
		{"two roots", ok + ok, ErrMalformed},
		{"empty", "", ErrMalformed},
		{"text only", "hello", ErrMalformed},
		{"too many alerts", string(alertBody(make([]string, 1001)...)), ErrTooManyAlerts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Decode([]byte(tc.body), Options{})
			if !errors.Is(err, tc.want) || b != nil {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if peba.ErrorCode(err) == peba.EINTERNAL {
				t.Errorf("error code of %v is internal", err)
			}
		})
	}
}

func TestManyAlertsAndHugeField(t *testing.T) {
	start := time.Now()
	_, err := Decode(alertBody(make([]string, 100000)...), Options{})
	if !errors.Is(err, ErrTooManyAlerts) || time.Since(start) > time.Second {
		t.Errorf("100k alerts: %v after %v", err, time.Since(start))
	}
	huge := strings.Repeat("A", 1<<20)
	b := mustDecode(t, alertBody(okAnalyzer+okTime+okSource+`<AdditionalData meaning="input">`+huge+`</AdditionalData>`))
	if len(b.Events[0].URL) != DefaultMaxFieldBytes || len(b.Events[0].Fields[0].Value) != DefaultMaxFieldBytes {
		t.Errorf("url %d bytes", len(b.Events[0].URL))
	}
}

func TestNumericCharRefs(t *testing.T) {
	b := mustDecode(t, alertBody(okAnalyzer+okTime+okSource+`<AdditionalData meaning="password">&#1072;&#128512;&amp;&lt;</AdditionalData>`))
	if b.Events[0].Password != "а😀&<" {
		t.Errorf("%q", b.Events[0].Password)
	}
}

func TestDecodeAuth(t *testing.T) {
	u, tok, ok, err := DecodeAuth(mustRead(t, filepath.Join(fixtures, "peba-samples/get-request-auth.xml")))
	if err != nil || !ok || u != "blabla" || tok != "blabla" {
		t.Errorf("%q %q %v %v", u, tok, ok, err)
	}
	u, tok, ok, err = DecodeAuth([]byte(`<a><Authentication><username>x</username></Authentication></a>`))
	if err != nil || ok || u != "x" || tok != "" {
		t.Errorf("%q %q %v %v", u, tok, ok, err)
	}
	// Only the root's direct child counts; the first one wins.
	u, _, ok, _ = DecodeAuth([]byte(`<a><b><Authentication><username>deep</username><token>t</token></Authentication></b>` +
		`<Authentication><username>first</username><username>second</username><token/></Authentication>` +
		`<Authentication><username>third</username></Authentication></a>`))
	if u != "first" || !ok {
		t.Errorf("%q %v", u, ok)
	}
	if _, _, _, err := DecodeAuth([]byte(`<a><Authentication>`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("err %v", err)
	}
	// Alerts do not count against any limit here.
	if _, _, ok, err := DecodeAuth(alertBody(make([]string, 2000)...)); err != nil || !ok {
		t.Errorf("%v %v", ok, err)
	}
}

func TestResult(t *testing.T) {
	for _, tc := range []struct{ status, text, want string }{
		{"OK", "", "<Result><StatusCode>OK</StatusCode><Text></Text></Result>"},
		{"Handling failed", "a<b>&c\nd\r\ne\x01", "<Result><StatusCode>Handling failed</StatusCode><Text>a&lt;b&gt;&amp;c d  e</Text></Result>"},
	} {
		if got := string(Result(tc.status, tc.text)); got != tc.want {
			t.Errorf("got %s", got)
		}
	}
}

// The HTTP handler reads bodies into recycled buffers (pebaapi.bodyBufs), so
// a decoded batch must not share memory with its body: overwriting the body
// after Decode must leave every decoded event as it was.
func TestDecodeKeepsNothingOfTheBody(t *testing.T) {
	files := append(glob(t, "peba-samples/*.xml"), glob(t, "ewsposter/*.xml")...)
	for _, f := range files {
		body := mustRead(t, f)
		got, err := Decode(body, Options{})
		if err != nil {
			continue // a malformed sample: nothing is kept
		}
		want := mustDecode(t, append([]byte(nil), body...))
		for i := range body {
			body[i] = 'x'
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: a decoded batch changed when its body was overwritten", filepath.Base(f))
		}
	}
}
