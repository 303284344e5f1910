package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/geoip/geoiptest"
	"github.com/peba-go/peba/internal/testfixtures"
	"github.com/peba-go/peba/pebadoc"
)

// A PEBA alert document as elasticdump writes it: the worked example of
// peba.md §4.12, with its recievedTime filled in.
const pebaDoc = `{"_index":"ews-2018.04.24-1","_type":"Alert","_id":"518ddeb1e5372e318cf15172fc32fae5","_score":1,"_source":` +
	`{"country":"PIR","countryName":"IANA Private IP Range","vulnid":"","originalRequestString":"","sourceEntryAS":"IANA",` +
	`"createTime":"2018-04-24 12:12:29","clientDomain":true,"peerIdent":"heralding-community-01","peerType":"Passwords(heralding)",` +
	`"client":"-","location":"0.0 , 0.0","locationDestination":"51.2993 , 9.491","sourceEntryIp":"172.21.0.1","sourceEntryPort":"43288",` +
	`"additionalData":"{\"protocol\": \"ssh\"}","targetEntryIp":"87.150.238.182","targetEntryPort":"22","targetCountry":"DE",` +
	`"targetCountryName":"Germany","targetEntryAS":"AS3320 Deutsche Telekom AG","username":"root","password":"1337","login":"",` +
	`"targetport":"tcp","clientVersion":"","sessionStart":"","sessionEnd":"","recievedTime":"2018-04-24 12:13:01","externalIP":"5.4.4.4",` +
	`"internalIP":"10.1.1.1","hostname":"liquidxtc","rawhttp":"-"}}`

func runCmd(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, env(nil), strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestImportPEBADocumentsIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	input := pebaDoc + "\n" + `{"_id":"broken"}` + "\n" + "not json\n"
	out, _, err := runCmd(t, input, "import", "-datadir", dir)
	if err != nil || !strings.Contains(out, "1 events imported, 0 already present, 2 invalid") {
		t.Fatalf("first import: %q %v", out, err)
	}
	out, _, err = runCmd(t, input, "import", "-datadir", dir, "-")
	if err != nil || !strings.Contains(out, "0 events imported, 1 already present") {
		t.Fatalf("second import: %q %v", out, err)
	}
	stored := storedEvents(t, dir)
	e, ok := stored["518ddeb1e5372e318cf15172fc32fae5"]
	if !ok || len(stored) != 1 {
		t.Fatalf("stored %v", stored)
	}
	// The stored fields are kept as PEBA stored them.
	if e.PeerType != "Passwords(heralding)" || e.Domain != peba.DomainCommunity || e.Username != "root" ||
		e.Dst.ASN != "AS3320 Deutsche Telekom AG" || e.Dst.Lat != 51.2993 || e.Hostname != "liquidxtc" ||
		e.CreateTime.Format("2006-01-02 15:04:05") != "2018-04-24 12:12:29" || e.SrcPort != 43288 {
		t.Errorf("imported event: %+v", e)
	}
}

func TestExportImportRoundTripThroughTheService(t *testing.T) {
	dir := t.TempDir()
	geoDir := t.TempDir()
	geoCfg := geoiptest.Write(t, geoDir, []geoiptest.Record{
		{Network: "81.2.69.0/24", Country: "GB", CountryName: "United Kingdom", Lat: 51.5142, Lon: -0.0931, ASN: 20712, Org: "Andrews & Arnold Ltd"},
		{Network: "2001:480::/32", Country: "US", CountryName: "United States", Lat: 37.751, Lon: -97.822, ASN: 7018, Org: "AT&T"},
	})
	pebaCmd(t, dir, "user", "add", "harness-user", "-token", "s3cr3t&<tok%en>")
	in := startServe(t, dir, "-geoip_city", geoCfg.CityPath, "-geoip_asn", geoCfg.ASNPath, "-geoip_country", geoCfg.CountryPath)
	for _, f := range testfixtures.Files(t, "ewsposter") {
		body, _ := os.ReadFile(f)
		if status, got, _ := postEWS(t, in.base+"/ews-0.1/alert/postSimpleMessage", body); status != 200 {
			t.Fatalf("%s: %d %s", f, status, got)
		}
	}
	in.stop()
	original := storedEvents(t, dir)
	enriched := 0
	for _, e := range original {
		// ewsposter replaces private targets by the sensor's external address.
		if e.DstIP.String() == "81.2.69.142" {
			if e.Dst.Country != "GB" || e.Dst.ASN != "AS20712 Andrews & Arnold Ltd" || e.Dst.Lat != 51.5142 {
				t.Fatalf("target not enriched: %+v", e.Dst)
			}
			enriched++
		}
	}
	if enriched < 250 {
		t.Fatalf("only %d of %d events enriched", enriched, len(original))
	}

	out, _, err := runCmd(t, "", "export", "-datadir", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		lines++
	}
	if lines != len(original) {
		t.Fatalf("export wrote %d lines for %d events", lines, len(original))
	}
	// Restore into an empty data directory: every event comes back equal.
	restored := t.TempDir()
	file := filepath.Join(t.TempDir(), "backup.ndjson")
	os.WriteFile(file, []byte(out), 0o600)
	if _, _, err := runCmd(t, "", "import", "-datadir", restored, file); err != nil {
		t.Fatal(err)
	}
	back := storedEvents(t, restored)
	for id, e := range original {
		b, ok := back[id]
		if !ok {
			t.Fatalf("event %s missing after restore", id)
		}
		e.Payload, b.Payload = nil, nil
		if !equalEvents(e, b) {
			t.Fatalf("event %s changed:\n%+v\n%+v", id, e, b)
		}
	}
}

// equalEvents compares every field through the lossless export encoding.
func equalEvents(a, b peba.Event) bool {
	la, errA := pebadoc.MarshalEvent(&a)
	lb, errB := pebadoc.MarshalEvent(&b)
	return errA == nil && errB == nil && bytes.Equal(la, lb)
}

func TestUserImportFromPEBA(t *testing.T) {
	dir := t.TempDir()
	// sha512("blabla") and md5("blabla"): PEBA's two hash formats.
	sum := sha512.Sum512([]byte("blabla"))
	users := `{"_index":"users","_type":"wsUser","_id":"x1","_source":{"peerName":"blabla","token":"` +
		hex.EncodeToString(sum[:]) + `","getOnly":false,"community":false,"email":"a@b.de"}}` + "\n" +
		`{"_id":"x2","_source":{"peerName":"legacy","token":"df5ea29924d39c3be8785734f13169c6","getOnly":true,"community":true,"email":"ex@amle.com"}}` + "\n" +
		`{"_id":"x3","_source":{"peerName":"plain","token":"not-a-hash"}}` + "\n"
	out, _, err := runCmd(t, users, "user", "import", "-datadir", dir, "-")
	if err != nil || !strings.Contains(out, "imported 2 users, 1 skipped") {
		t.Fatalf("%q %v", out, err)
	}
	list, _, _ := runCmd(t, "", "user", "list", "-datadir", dir)
	if !strings.Contains(list, "legacy\tex@amle.com\ttrue\ttrue\tmd5 (PEBA legacy)") || !strings.Contains(list, "blabla\ta@b.de\tfalse\tfalse\tsha512 (PEBA)") {
		t.Fatalf("list:\n%s", list)
	}
	// The imported md5 user can submit, but it is get-only: 403.
	in := startServe(t, dir)
	body := bytes.Replace(testfixtures.Read(t, "peba-samples", "heralding.xml"), []byte("community-01-user"), []byte("legacy"), 1)
	body = bytes.Replace(body, []byte("foth{a5maiCee8fineu7"), []byte("blabla"), 1)
	if status, got, _ := postEWS(t, in.base+"/ews-0.1/alert/postSimpleMessage", body); status != 403 || !strings.Contains(got, "may read but not submit") {
		t.Fatalf("get-only user: %d %s", status, got)
	}
}
