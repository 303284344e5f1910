package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// browserDir holds the Node scripts that drive Chromium and their
// package.json (playwright-core, pinned); node_modules is installed there by
// the tests and git-ignored.
const browserDir = "../../http/dashboard/testdata/browser"

// chromium is Debian's browser, which playwright-core drives over CDP.
const chromium = "/usr/bin/chromium"

// needBrowser returns node's path after installing playwright-core. It
// skips when chromium, node or npm is missing, unless PEBA_REQUIRE_BROWSER=1
// (CI) makes that a failure.
func needBrowser(t *testing.T) string {
	t.Helper()
	skip := t.Skip
	if os.Getenv("PEBA_REQUIRE_BROWSER") == "1" {
		skip = t.Fatal
	}
	if _, err := os.Stat(chromium); err != nil {
		skip("Chromium is not installed (" + chromium + "): the dashboard browser test needs Debian's chromium package (.ci/run installs it)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node is not installed: the dashboard browser test needs node and npm (.ci/run installs them)")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		skip("npm is not installed: the dashboard browser test needs node and npm (.ci/run installs them)")
	}
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core", "package.json")); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = browserDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install playwright-core: %v\n%s", err, out)
		}
	}
	return node
}

// geoPlace is one network of the test GeoIP database.
type geoPlace struct {
	network, code, name string
	lat, lon            float64
}

// Attackers and sensors of the tests. The addresses are global unicast
// (not private or documentation ranges), so the service looks them up.
var (
	geoCN  = geoPlace{"36.0.0.0/8", "CN", "China", 39.9042, 116.4074}
	geoUS  = geoPlace{"3.0.0.0/8", "US", "United States", 39.0438, -77.4874}
	geoBR  = geoPlace{"177.0.0.0/8", "BR", "Brazil", -23.5505, -46.6333}
	geoRU  = geoPlace{"5.0.0.0/8", "RU", "Russia", 55.7558, 37.6173}
	geoNZ  = geoPlace{"45.0.0.0/8", "NZ", "New Zealand", -41.2865, 174.7762}    // private events only
	geoDE  = geoPlace{"87.0.0.0/8", "DE", "Germany", 50.1109, 8.6821}           // sensor
	geoUSS = geoPlace{"64.0.0.0/8", "US", "United States", 40.7128, -74.0060}   // sensor
	geoFI  = geoPlace{"62.0.0.0/8", "FI", "Finland", 60.1699, 24.9384}          // private sensor
	geoJP  = geoPlace{"133.0.0.0/8", "JP", "Japan", 35.6762, 139.6503}          // sensor
	geoSG  = geoPlace{"139.0.0.0/8", "SG", "Singapore", 1.2903, 103.8519}       // sensor
	geoZA  = geoPlace{"197.0.0.0/8", "ZA", "South Africa", -33.9249, 18.4241}   // sensor
	geoBRS = geoPlace{"200.0.0.0/8", "BR", "Brazil", -22.9068, -43.1729}        // sensor
	geoAU  = geoPlace{"1.0.0.0/8", "AU", "Australia", -33.8688, 151.2093}       // attacker
	geoIN  = geoPlace{"49.0.0.0/8", "IN", "India", 19.0760, 72.8777}            // attacker
	geoVN  = geoPlace{"14.0.0.0/8", "VN", "Vietnam", 21.0278, 105.8342}         // attacker
	geoNL  = geoPlace{"185.0.0.0/8", "NL", "Netherlands", 52.3676, 4.9041}      // attacker
	geoKR  = geoPlace{"121.0.0.0/8", "KR", "South Korea", 37.5665, 126.9780}    // attacker
	geoID  = geoPlace{"103.0.0.0/8", "ID", "Indonesia", -6.2088, 106.8456}      // attacker
	geoIR  = geoPlace{"91.0.0.0/8", "IR", "Iran", 35.6892, 51.3890}             // attacker
	geoMX  = geoPlace{"187.0.0.0/8", "MX", "Mexico", 19.4326, -99.1332}         // attacker
	geoNG  = geoPlace{"102.0.0.0/8", "NG", "Nigeria", 6.5244, 3.3792}           // attacker
	geoTR  = geoPlace{"78.0.0.0/8", "TR", "Turkey", 41.0082, 28.9784}           // attacker
	geoUSW = geoPlace{"104.0.0.0/8", "US", "United States", 37.3541, -121.9552} // attacker
	geoFR  = geoPlace{"51.0.0.0/8", "FR", "France", 48.8566, 2.3522}            // attacker
	geoAR  = geoPlace{"181.0.0.0/8", "AR", "Argentina", -34.6037, -58.3816}     // attacker
)

var allPlaces = []geoPlace{geoCN, geoUS, geoBR, geoRU, geoNZ, geoDE, geoUSS, geoFI, geoJP, geoSG, geoZA, geoBRS,
	geoAU, geoIN, geoVN, geoNL, geoKR, geoID, geoIR, geoMX, geoNG, geoTR, geoUSW, geoFR, geoAR}

// writeDBIPCity writes a City database of the type DB-IP Lite has
// ("DBIP-City-Lite"), so the dashboard must show DB-IP's attribution.
func writeDBIPCity(t *testing.T, dir string) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "DBIP-City-Lite", RecordSize: 28, BuildEpoch: time.Now().Unix()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range allPlaces {
		_, n, err := net.ParseCIDR(p.network)
		if err != nil {
			t.Fatal(err)
		}
		err = tree.Insert(n, mmdbtype.Map{
			"country":  mmdbtype.Map{"iso_code": mmdbtype.String(p.code), "names": mmdbtype.Map{"en": mmdbtype.String(p.name)}},
			"location": mmdbtype.Map{"latitude": mmdbtype.Float64(p.lat), "longitude": mmdbtype.Float64(p.lon)},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "dbip-city-lite.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

// testAlert is one EWS alert as ewsposter sends it.
type testAlert struct {
	ident    string // Analyzer id: selects the honeypot type (cowrie-01 -> SSH/console(cowrie))
	src, dst string
	srcPort  int
	dstPort  int
	url      string
	hostname string
}

// ewsBody renders alerts as an EWS-SimpleMessage with the given credentials.
// Create times are now (UTC), so the per-day chart counts them today.
func ewsBody(user, token string, alerts []testAlert) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<EWS-SimpleMessage version=\"3.0\"><Authentication><username>%s</username><token>%s</token></Authentication>\n",
		html.EscapeString(user), html.EscapeString(token))
	now := time.Now().UTC().Format("2006-01-02 15:04:05")
	for _, a := range alerts {
		fmt.Fprintf(&b, `<Alert><Analyzer id="%s"/><CreateTime tz="+0000">%s</CreateTime>`, a.ident, now)
		fmt.Fprintf(&b, `<Source category="ipv4" port="%d" protocol="tcp">%s</Source>`, a.srcPort, a.src)
		fmt.Fprintf(&b, `<Target category="ipv4" port="%d" protocol="tcp">%s</Target>`, a.dstPort, a.dst)
		if a.url != "" {
			fmt.Fprintf(&b, `<Request type="url">%s</Request>`, html.EscapeString(a.url))
		}
		if a.hostname != "" {
			fmt.Fprintf(&b, `<AdditionalData meaning="hostname" type="string">%s</AdditionalData>`, html.EscapeString(a.hostname))
		}
		b.WriteString("</Alert>\n")
	}
	b.WriteString("</EWS-SimpleMessage>\n")
	return b.Bytes()
}

// repeatAlerts makes n alerts from addresses of src's network (distinct
// source ports, so each is a distinct event) to dst.
func repeatAlerts(n int, ident string, src geoPlace, dst string, dstPort int, url string, port0 int) []testAlert {
	base := strings.SplitN(src.network, ".", 2)[0]
	out := make([]testAlert, n)
	for i := range out {
		out[i] = testAlert{ident: ident, src: fmt.Sprintf("%s.%d.%d.%d", base, 10+i%200, 20+i/200%200, 30+i%7),
			srcPort: port0 + i, dst: dst, dstPort: dstPort, url: url}
	}
	return out
}

func mustPost(t *testing.T, base string, body []byte) {
	t.Helper()
	status, got, _ := postEWS(t, base+"/ews-0.1/alert/postSimpleMessage", body)
	if status != 200 || !strings.Contains(got, "<StatusCode>OK</StatusCode>") {
		t.Fatalf("post: HTTP %d %s", status, got)
	}
}

// waitCount polls retrieveAlertStats until the 24 h count reaches n: ingest
// acknowledges after the journal, the store applies shortly after.
func waitCount(t *testing.T, base, auth, ci string, n int64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		// A fresh time parameter each round: retrieveAlertsCount is cached
		// per time value, and this must not fill the cache the page reads.
		req, _ := http.NewRequest("GET", base+"/alert/retrieveAlertsCount?out=json&time="+strconv.Itoa(1440+int(time.Now().UnixNano()%1000))+"&ci="+ci, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ AlertCount int64 }
		_ = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if v.AlertCount >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store has %d events (ci=%s), want %d", v.AlertCount, ci, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runNode runs a script of browserDir with a JSON spec and streams its
// output into the test log. The script exits non-zero when an assertion
// fails; its messages say which.
func runNode(t *testing.T, node, script string, spec any, timeout time.Duration) {
	t.Helper()
	specJSON, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(specFile, specJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, specFile)
	cmd.Dir = browserDir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		t.Log(l)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s", script, timeout)
	}
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
}

// TestDashboardInBrowser is the dashboard's end-to-end proof (issue 6): a
// real `peba serve` fed through the EWS ingest path with community and
// private events, and headless Chromium (playwright-core) loading the page.
// dashboard.test.mjs asserts that the map draws an arc per posted event
// (replayed and live), that counters and charts show the posted numbers,
// that the anonymous view has no trace of private data (not on the page,
// not in anything it fetched or streamed) while a signed-in user sees it,
// that a burst of events is sampled instead of freezing the page, and that
// the connection indicator follows the connection.
func TestDashboardInBrowser(t *testing.T) {
	node := needBrowser(t)
	dir := t.TempDir()
	const user, token = "alice", "alice-dashboard-token"
	pebaCmd(t, dir, "user", "add", user, "--token", token)
	city := writeDBIPCity(t, t.TempDir())
	in := startServe(t, dir, "-geoip_city", city)

	const de, us = "87.150.238.182", "64.1.2.3" // community sensors (DE, US)
	// Private events carry markers that exist nowhere else: a source
	// address, a sensor hostname, and countries (NZ attacker, FI sensor).
	const markerIP, markerHost = "45.67.89.123", "secret-sensor-7"
	community := append(append(
		repeatAlerts(5, "cowrie-01", geoCN, de, 22, "", 40000),
		repeatAlerts(3, "dionaea-01", geoUS, us, 445, "", 41000)...),
		repeatAlerts(2, "tanner-01", geoBR, de, 80, "/wp-login.php", 42000)...)
	private := make([]testAlert, 4)
	for i := range private {
		private[i] = testAlert{ident: "heralding-01", src: markerIP, srcPort: 43000 + i, dst: "62.1.1.1", dstPort: 21, hostname: markerHost}
	}
	mustPost(t, in.base, ewsBody("community-01-user", "foth{a5maiCee8fineu7", community))
	mustPost(t, in.base, ewsBody(user, token, private))
	waitCount(t, in.base, "", "", 10)
	waitCount(t, in.base, user+":"+token, "0", 4)

	// Posted by the script while the page is open.
	liveCommunity := repeatAlerts(3, "cowrie-01", geoRU, de, 22, "", 44000)
	livePrivate := []testAlert{{ident: "heralding-01", src: markerIP, srcPort: 45000, dst: "62.1.1.1", dstPort: 21, hostname: markerHost}}
	var burst []string
	for i := range 2 {
		var b []testAlert
		for j, p := range []geoPlace{geoCN, geoUS, geoRU, geoBR, geoIN, geoVN, geoNL, geoKR, geoID, geoTR} {
			b = append(b, repeatAlerts(100, "honeytrap-01", p, []string{de, us, "133.1.2.3", "139.4.5.6"}[j%4], 8080, "", 46000+i*2000+j*100)...)
		}
		burst = append(burst, string(ewsBody("community-01-user", "foth{a5maiCee8fineu7", b)))
	}

	spec := map[string]any{
		"base": in.base, "user": user, "token": token,
		"markers":       []string{markerIP, markerHost, "New Zealand", "Finland"},
		"markerIP":      markerIP,
		"liveCommunity": string(ewsBody("community-01-user", "foth{a5maiCee8fineu7", liveCommunity)),
		"livePrivate":   string(ewsBody(user, token, livePrivate)),
		"burst":         burst,
		"burstEvents":   2000,
		// What the anonymous page must show for the events posted before
		// it opened (community only).
		"anon": map[string]any{
			"day": 10, "hour": 10,
			"src":   [][]any{{"CN", 5}, {"US", 3}, {"BR", 2}},
			"dst":   [][]any{{"DE", 7}, {"US", 3}},
			"types": map[string]int{"SSH/console(cowrie)": 5, "Network(Dionaea)": 3, "Webpage": 2},
			"ports": [][]any{{"22", 5}, {"445", 3}, {"80", 2}},
			"urls":  [][]any{{"/wp-login.php", 2}},
		},
		// Signed in, after the live posts: private only, then both.
		"private": map[string]any{"day": 5, "src": [][]any{{"NZ", 5}}, "dst": [][]any{{"FI", 5}},
			"types": map[string]int{"Passwords(heralding)": 5}},
		"both": map[string]any{"day": 18, "src": [][]any{{"CN", 5}, {"NZ", 5}, {"RU", 3}, {"US", 3}, {"BR", 2}}},
	}
	runNode(t, node, "dashboard.test.mjs", spec, 2*time.Minute)
}
