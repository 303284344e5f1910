package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// pebaDocAt is a PEBA alert document (peba.md §5.1 fields) received at t.
func pebaDocAt(id string, t time.Time, community bool, peerType, src, country, countryName, url string) string {
	ts := t.UTC().Format("2006-01-02 15:04:05")
	return fmt.Sprintf(`{"_index":"ews-%s-1","_type":"Alert","_id":%q,"_source":{"country":%q,"countryName":%q,`+
		`"vulnid":"","originalRequestString":%q,"sourceEntryAS":"AS3320 Deutsche Telekom AG","createTime":%q,"clientDomain":%t,`+
		`"peerIdent":"x-community-01","peerType":%q,"client":"-","location":"51.2993 , 9.491","locationDestination":"0.0 , 0.0",`+
		`"sourceEntryIp":%q,"sourceEntryPort":"4242","additionalData":"{}","targetEntryIp":"81.2.69.142","targetEntryPort":"22",`+
		`"targetCountry":"GB","targetCountryName":"United Kingdom","targetEntryAS":"-","username":"root","password":"123456",`+
		`"login":"Fail","targetport":"tcp","clientVersion":"","sessionStart":"","sessionEnd":"","recievedTime":%q,`+
		`"externalIP":"81.2.69.142","internalIP":"172.20.0.2","hostname":"tpot-1","rawhttp":"-"}}`,
		t.UTC().Format("2006.01.02"), id, country, countryName, url, ts, community, peerType, src, ts)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v: %s", url, err, b)
	}
}

// TestImportedPEBADocumentsServeTheStatisticsAPI migrates PEBA documents with
// `peba import` and reads them back through PEBA's endpoints (peba.md §3).
func TestImportedPEBADocumentsServeTheStatisticsAPI(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC().Add(-30 * time.Second)
	lines := []string{
		pebaDocAt("c1", now, true, "SSH/console(cowrie)", "87.150.238.111", "DE", "Germany", ""),
		pebaDocAt("c2", now.Add(-2*time.Minute), true, "SSH/console(cowrie)", "87.150.238.111", "DE", "Germany", ""),
		pebaDocAt("c3", now.Add(-3*time.Minute), true, "Network(Dionaea)", "8.8.8.8", "US", "United States", "Attack on port 445"),
		pebaDocAt("p1", now.Add(-1*time.Minute), false, "Network(honeytrap)", "1.2.3.4", "AU", "Australia", "Attack on port 80/tcp"),
	}
	out, _, err := runCmd(t, strings.Join(lines, "\n")+"\n", "import", "-datadir", dir)
	if err != nil || !strings.Contains(out, "4 events imported") {
		t.Fatalf("%q %v", out, err)
	}
	in := startServe(t, dir, "-responsecache", "off")

	var count map[string]any
	getJSON(t, in.base+"/alert/retrieveAlertsCount?time=10&out=json", &count)
	if count["AlertCount"] != 3.0 { // community only: the private document is not shown
		t.Errorf("retrieveAlertsCount: %v", count)
	}
	var withType struct {
		AlertCountPerType map[string]int
		AlertCountTotal   int
	}
	getJSON(t, in.base+"/alert/retrieveAlertsCountWithType?time=10", &withType)
	if withType.AlertCountTotal != 3 || withType.AlertCountPerType["SSH/console(cowrie)"] != 2 || withType.AlertCountPerType["Network(Dionaea)"] != 1 {
		t.Errorf("retrieveAlertsCountWithType: %+v", withType)
	}
	var ticker struct {
		Alerts []map[string]any `json:"alerts"`
	}
	getJSON(t, in.base+"/alert/retrieveAlertsJson", &ticker)
	if len(ticker.Alerts) != 3 || ticker.Alerts[0]["id"] != "c1" || ticker.Alerts[0]["requestString"] != `Username: &quot;root&quot; | Password: &quot;123456&quot; | Status: Fail` ||
		ticker.Alerts[0]["sourceLat"] != "51.2993" || ticker.Alerts[0]["destLat"] != "50.708021" {
		t.Errorf("retrieveAlertsJson: %+v", ticker.Alerts)
	}
	var top []struct {
		AttacksPerCountry []struct {
			Code    string `json:"code"`
			Count   int    `json:"count"`
			Country string `json:"country"`
		} `json:"attacksPerCountry"`
	}
	getJSON(t, in.base+"/alert/topCountriesAttacks", &top)
	if len(top) != 1 || len(top[0].AttacksPerCountry) != 2 || top[0].AttacksPerCountry[0].Code != "DE" || top[0].AttacksPerCountry[0].Count != 2 || top[0].AttacksPerCountry[0].Country != "Germany" {
		t.Errorf("topCountriesAttacks: %+v", top)
	}
}
