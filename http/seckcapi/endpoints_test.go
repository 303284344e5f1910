package seckcapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba/hpfeeds"
)

func TestAuthMe(t *testing.T) {
	h := newTestAPI(t, nil)
	basicCarol := "Basic " + base64.StdEncoding.EncodeToString([]byte("carol:"+carolToken))
	for _, c := range []struct{ auth, body string }{
		{"", `{"active":false}`},
		{alice, `{"active":true,"email":"alice@example.org","name":"alice","private":true,"roles":["user"]}`},
		{basicCarol, `{"active":true,"email":"","name":"carol","private":false,"roles":["user"]}`},
		{community, `{"active":true,"email":"","name":"community-01-user","private":false,"roles":["community"]}`},
		// The scheme is case-insensitive and blanks around the credentials are ignored (auth.ParseAuthorization).
		{"bearer  alice:" + aliceToken + " ", `{"active":true,"email":"alice@example.org","name":"alice","private":true,"roles":["user"]}`},
	} {
		expect(t, get(h, "/auth/me", c.auth), http.StatusOK, c.body)
	}
	for _, bad := range []string{"Bearer alice:wrong", "Bearer nobody:x", "Bearer alice", "Token abc", "Basic !!!", "Bearer " + strings.Repeat("a", 5000) + ":x",
		"Bearer", "Bearer :" + aliceToken, "Bearer alice:", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice"))} {
		w := get(h, "/auth/me", bad)
		expect(t, w, http.StatusUnauthorized, `{"error":"invalid credentials"}`)
		if w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%q: no WWW-Authenticate", bad)
		}
	}
	// Without an authenticator, credentials cannot be checked: refused.
	noAuth := newTestAPI(t, func(o *Options) { o.Auth = nil })
	expect(t, get(noAuth, "/auth/me", alice), http.StatusUnauthorized, `{"error":"invalid credentials"}`)
}

func TestHeadersCORSAndRouting(t *testing.T) {
	h := newTestAPI(t, nil)
	check := func(w interface{ Header() http.Header }, what string) {
		t.Helper()
		for k, v := range map[string]string{
			"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "X-Xss-Protection": "1; mode=block",
		} {
			if got := w.Header().Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", what, k, got, v)
			}
		}
	}
	w := get(h, "/feeds/status", "")
	check(w, "200")
	if w.Header().Get("Access-Control-Allow-Origin") != "*" || w.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("CORS without Origin: %v", w.Header())
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
	}
	w = do(h, http.MethodGet, "/feeds/status", map[string]string{"Origin": "https://globe.example"})
	if w.Header().Get("Access-Control-Allow-Origin") != "https://globe.example" || !strings.Contains(w.Header().Get("Vary"), "Origin") {
		t.Errorf("CORS with Origin: %v", w.Header())
	}

	// Preflight: 200, empty, only the headers we accept, sorted by code point.
	w = do(h, http.MethodOptions, "/stats/attacks", map[string]string{
		"Origin": "https://x.example", "Access-Control-Request-Method": "GET",
		"Access-Control-Request-Headers": "X-Foo, content-type, Authorization, Cookie",
	})
	check(w, "OPTIONS")
	if w.Code != http.StatusOK || w.Body.Len() != 0 ||
		w.Header().Get("Access-Control-Allow-Headers") != "Authorization, content-type" ||
		w.Header().Get("Access-Control-Allow-Methods") != "GET, HEAD, OPTIONS" || w.Header().Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Errorf("preflight: %d %q %v", w.Code, w.Body.String(), w.Header())
	}

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		w = do(h, m, "/auth/me", nil)
		expect(t, w, http.StatusMethodNotAllowed, `{"error":"method not allowed"}`)
		check(w, m)
		if w.Header().Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Errorf("%s: Allow %q", m, w.Header().Get("Allow"))
		}
	}
	// HEAD answers like GET without a body.
	w = do(h, http.MethodHead, "/feeds/status", nil)
	if w.Code != http.StatusOK {
		t.Errorf("HEAD: %d", w.Code)
	}

	// Unknown paths under the SecKC prefixes (and SecKC's strict slashes,
	// §2.4) are JSON 404s, with the security headers.
	for _, p := range []string{"/auth/me/", "/auth/status", "/auth", "/stats", "/stats/", "/stats/attacks/", "/sensors/",
		"/sensors/stats", "/feeds/events", "/feeds/channels", "/feeds/status/", "/geocode/", "/geocode", "/geocode/1.2.3.4/x",
		"/stats/attacker/", "/feeds/test/inject"} {
		w := get(h, p, "")
		expect(t, w, http.StatusNotFound, `{"error":"not found"}`)
		check(w, p)
	}
}

func TestGeocode(t *testing.T) {
	h := newTestAPI(t, nil)
	const sweden = `{"city":{"geoname_id":2694762,"names":{"en":"Link\u00f6ping","ja":"\u30ea\u30f3\u30b7\u30a7\u30fc\u30d4\u30f3\u30b0"}},` +
		`"continent":{"code":"EU","geoname_id":6255148,"names":{"en":"Europe"}},` +
		`"country":{"geoname_id":2661886,"iso_code":"SE","names":{"en":"Sweden","ja":"\u30b9\u30a6\u30a7\u30fc\u30c7\u30f3"}},` +
		`"location":{"accuracy_radius":76,"latitude":58.4167,"longitude":15.6167,"time_zone":"Europe/Stockholm"},` +
		`"subdivisions":[{"geoname_id":2685867,"iso_code":"E","names":{"en":"\u00d6sterg\u00f6tland County"}}],` +
		`"traits":{"ip_address":"89.160.20.112","prefix_len":24}}`
	w := get(h, "/geocode/89.160.20.112", "")
	expect(t, w, http.StatusOK, sweden)
	if w.Header().Get("Cache-Control") != "public, max-age=3600" {
		t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
	}
	// IPv4-mapped IPv6 is the IPv4 address.
	expect(t, get(h, "/geocode/::ffff:89.160.20.112", ""), http.StatusOK, sweden)

	// What the Globe decodes (seckc.md §8).
	var globe struct {
		City     struct{ Names map[string]string } `json:"city"`
		Country  struct{ Names map[string]string } `json:"country"`
		Location struct{ Latitude, Longitude float64 }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &globe); err != nil || globe.City.Names["en"] != "Linköping" ||
		globe.Country.Names["en"] != "Sweden" || globe.Location.Latitude != 58.4167 || globe.Location.Longitude != 15.6167 {
		t.Errorf("Globe decode: %v %+v", err, globe)
	}

	for _, c := range []struct {
		path   string
		status int
		body   string
	}{
		{"/geocode/10.0.0.1", 404, `{"error":"No geolocation data found for IP: 10.0.0.1"}`},
		{"/geocode/8.8.8.8", 404, `{"error":"No geolocation data found for IP: 8.8.8.8"}`},
		{"/geocode/2001:db8::1", 404, `{"error":"No geolocation data found for IP: 2001:db8::1"}`},
		{"/geocode/2001:DB8:0::1", 404, `{"error":"No geolocation data found for IP: 2001:db8::1"}`},
		{"/geocode/999.1.1.1", 400, `{"error":"invalid IP address"}`},
		{"/geocode/fe80::1%25eth0", 400, `{"error":"invalid IP address"}`},
		{"/geocode/%3Cscript%3E", 400, `{"error":"invalid IP address"}`},
		{"/geocode/" + strings.Repeat("1", 100), 400, `{"error":"invalid IP address"}`},
	} {
		expect(t, get(h, c.path, ""), c.status, c.body)
	}
	noGeo := newTestAPI(t, func(o *Options) { o.Geo = nil })
	expect(t, get(noGeo, "/geocode/89.160.20.112", ""), http.StatusServiceUnavailable, `{"error":"GeoIP database unavailable"}`)
	// Bad credentials are refused here too.
	expect(t, get(h, "/geocode/89.160.20.112", "Bearer alice:nope"), http.StatusUnauthorized, `{"error":"invalid credentials"}`)
}

func TestAttacks(t *testing.T) {
	h := newTestAPI(t, nil)
	const anonDay = `[{"channel":"Service(adbhoney)","date":"20261120","hourly":{"13":2}},{"channel":"SSH/console(cowrie)","date":"20261120","hourly":{"14":1}}]`
	expect(t, get(h, "/stats/attacks?date=20261120", ""), 200, anonDay)
	expect(t, get(h, "/stats/attacks?date=2026-11-20", ""), 200, anonDay)
	expect(t, get(h, "/stats/attacks?date=20261120", carol), 200, anonDay) // community-only
	// Entitled: the private cowrie event counts; the busiest channel is first.
	expect(t, get(h, "/stats/attacks?date=20261120", alice), 200,
		`[{"channel":"SSH/console(cowrie)","date":"20261120","hourly":{"14":2}},{"channel":"Service(adbhoney)","date":"20261120","hourly":{"13":2}}]`)
	expect(t, get(h, "/stats/attacks?channel=Network(Dionaea)", ""), 200,
		`[{"channel":"Network(Dionaea)","date":"20261119","hourly":{"10":1}}]`)
	expect(t, get(h, "/stats/attacks?channel=SSH/console(cowrie)&date=20261120", alice), 200,
		`[{"channel":"SSH/console(cowrie)","date":"20261120","hourly":{"14":2}}]`)
	expect(t, get(h, "/stats/attacks?date=19990101", ""), 200, `[]`)
	expect(t, get(h, "/stats/attacks?channel=cowrie.sessions", ""), 200, `[]`)

	for _, q := range []string{"", "?date=", "?date=&channel=", "?foo=1"} {
		expect(t, get(h, "/stats/attacks"+q, ""), 400, `{"error":"date or channel parameter required"}`)
	}
	for _, d := range []string{"2026112", "20261320", "2026-11-31", "2026/11/20", "abc", "2026-1-20", "+2026-11-2", "202611200"} {
		expect(t, get(h, "/stats/attacks?date="+d, ""), 400, `{"error":"date must be YYYYMMDD or YYYY-MM-DD"}`)
	}
	for _, ch := range []string{strings.Repeat("x", 256), "%ff%fe"} {
		expect(t, get(h, "/stats/attacks?channel="+ch, ""), 400, `{"error":"invalid channel"}`)
	}
}

func TestAttackers(t *testing.T) {
	h := newTestAPI(t, nil)
	expect(t, get(h, "/stats/attackers?hours_ago=48", ""), 200,
		`{"data":[{"count":1,"honeypot":"Service(adbhoney)","source_ip":"2001:db8:85a3::8a2e:370:7334"},{"count":1,"honeypot":"Network(Dionaea)","source_ip":"81.2.69.142"},`+
			`{"count":1,"honeypot":"SSH/console(cowrie)","source_ip":"89.160.20.112"},{"count":1,"honeypot":"Service(adbhoney)","source_ip":"89.160.20.112"}],`+
			`"meta":{"options":{"hours_ago":"48"},"query":"top_attackers","size":4}}`)
	// Default 24 h: the dionaea event (28 h ago) is out. Equal counts sort
	// by address text, so the IPv6 source comes first.
	expect(t, get(h, "/stats/attackers?limit=2", alice), 200,
		`{"data":[{"count":1,"honeypot":"Service(adbhoney)","source_ip":"2001:db8:85a3::8a2e:370:7334"},{"count":1,"honeypot":"SSH/console(cowrie)","source_ip":"81.2.69.142"}],`+
			`"meta":{"options":{"limit":"2"},"query":"top_attackers","size":2}}`)
	w := get(h, "/stats/attackers", "")
	if strings.Contains(w.Body.String(), "81.2.69.142") {
		t.Errorf("anonymous sees the private event's source: %s", w.Body.String())
	}
	for _, q := range []string{"hours_ago=abc", "hours_ago=0", "hours_ago=-1", "hours_ago=99999999999", "hours_ago=1.5", "limit=0", "limit=1001"} {
		w := get(h, "/stats/attackers?"+q, "")
		if w.Code != 400 || !strings.HasPrefix(w.Body.String(), `{"code":400,"error":"`) {
			t.Errorf("%s: %d %s", q, w.Code, w.Body.String())
		}
	}
	expect(t, get(h, "/stats/attackers?hours_ago=x", ""), 400, `{"error":"hours_ago must be an integer from 1 to 8784"}`)
}

func TestAttacker(t *testing.T) {
	h := newTestAPI(t, nil)
	expect(t, get(h, "/stats/attacker/81.2.69.142", ""), 200,
		`{"data":{"count":1,"first_seen":"2026-11-19T10:00:00","honeypots":["Network(Dionaea)"],"ip":"81.2.69.142","last_seen":"2026-11-19T10:00:00","num_sensors":1,"ports":[445]},`+
			`"meta":{"options":{},"query":"attacker_stats"}}`)
	expect(t, get(h, "/stats/attacker/81.2.69.142", alice), 200,
		`{"data":{"count":2,"first_seen":"2026-11-19T10:00:00","honeypots":["Network(Dionaea)","SSH/console(cowrie)"],"ip":"81.2.69.142","last_seen":"2026-11-20T14:01:00","num_sensors":2,"ports":[445,2222]},`+
			`"meta":{"options":{},"query":"attacker_stats"}}`)
	// Microseconds as Python's isoformat prints them; hours_ago echoed.
	expect(t, get(h, "/stats/attacker/89.160.20.112?hours_ago=2", ""), 200,
		`{"data":{"count":2,"first_seen":"2026-11-20T13:00:00","honeypots":["SSH/console(cowrie)","Service(adbhoney)"],"ip":"89.160.20.112","last_seen":"2026-11-20T14:00:00.250000","num_sensors":2,"ports":[22,5555]},`+
			`"meta":{"options":{"hours_ago":"2"},"query":"attacker_stats"}}`)
	const none = `{"data":{"count":0,"first_seen":null,"honeypots":[],"ip":"8.8.8.8","last_seen":null,"num_sensors":0,"ports":[]},"meta":{"options":{},"query":"attacker_stats"}}`
	expect(t, get(h, "/stats/attacker/8.8.8.8", ""), 200, none)
	expect(t, get(h, "/stats/attacker/::ffff:8.8.8.8", ""), 200, none)
	for _, p := range []string{"/stats/attacker/8.8.8", "/stats/attacker/abc", "/stats/attacker/1.2.3.4%20"} {
		expect(t, get(h, p, ""), 400, `{"error":"invalid IP address"}`)
	}
	expect(t, get(h, "/stats/attacker/8.8.8.8?hours_ago=0", ""), 400, `{"error":"hours_ago must be an integer from 1 to 8784"}`)
}

func TestSensors(t *testing.T) {
	h := newTestAPI(t, nil)
	const gb = `{"country":{"iso_code":"GB","names":{"en":"United Kingdom"}},"latitude":51.5142,"location":{"latitude":51.5142,"longitude":-0.0931},"longitude":-0.0931}`
	const us = `{"country":{"iso_code":"US","names":{"en":"United States"}},"latitude":47.2513,"location":{"latitude":47.2513,"longitude":-122.3149},"longitude":-122.3149}`
	w := get(h, "/sensors/locations", "")
	expect(t, w, 200, `[`+
		`{"location":`+gb+`,"sensor_data":{"events":2,"honeypot":"Service(adbhoney)","honeypots":["Service(adbhoney)"]}},`+
		`{"location":`+us+`,"sensor_data":{"events":1,"honeypot":"SSH/console(cowrie)","honeypots":["SSH/console(cowrie)"]}},`+
		`{"location":`+us+`,"sensor_data":{"events":1,"honeypot":"Network(Dionaea)","honeypots":["Network(Dionaea)"]}}]`)
	// Community-only users see the anonymous view.
	if c := get(h, "/sensors/locations", carol); c.Body.String() != w.Body.String() {
		t.Errorf("carol sees more than anonymous: %s", c.Body.String())
	}
	w = get(h, "/sensors/locations", alice)
	if w.Code != 200 {
		t.Fatalf("entitled: %d %s", w.Code, w.Body.String())
	}
	var items []struct {
		Location   *struct{ Latitude float64 } `json:"location"`
		SensorData map[string]any              `json:"sensor_data"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &items); err != nil || len(items) != 4 {
		t.Fatalf("entitled: %v, %d items", err, len(items))
	}
	want := `{"events":2,"honeypot":"Service(adbhoney)","honeypots":["Service(adbhoney)"],"hostname":"ews-harness","identifier":"adbhoney-community-01",` +
		`"identifiers":["adbhoney-community-01"],"ip":"81.2.69.142","last_seen":"2026-11-20T13:00:00","name":"ews-harness","uuid":"6f1c2a7e-5b3d-4c8e-9a0f-0e5a4a2e5501"}`
	if got, _ := json.Marshal(items[0].SensorData); string(got) != want {
		t.Errorf("T-Pot sensor:\n got %s\nwant %s", got, want)
	}
	if items[3].SensorData["ip"] != "216.160.83.58" || items[3].SensorData["identifier"] != "private-sensor" {
		t.Errorf("private sensor: %v", items[3].SensorData)
	}
	if strings.Contains(w.Body.String(), "secret") || strings.Contains(w.Body.String(), "publish") {
		t.Error("sensor secrets or publish lists in the answer")
	}

	// Store failure: 503 with a generic message, never 500 or the error text.
	broken := newTestAPI(t, func(o *Options) { o.Stats = getFixture(t).closed })
	for _, p := range []string{"/sensors/locations", "/stats/attacks?date=20261120", "/stats/attackers"} {
		w := get(broken, p, "")
		expect(t, w, http.StatusServiceUnavailable, `{"error":"service temporarily unavailable, retry later"}`)
		if w.Header().Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", p)
		}
	}
	broken = newTestAPI(t, func(o *Options) { o.Events = getFixture(t).closed })
	expect(t, get(broken, "/stats/attacker/8.8.8.8", ""), http.StatusServiceUnavailable, `{"error":"service temporarily unavailable, retry later"}`)
}

// globeEvents is what the SecKC Globe decodes (seckc.md §8): a wrong JSON
// type anywhere fails its whole decode.
type globeEvents struct {
	Count         int     `json:"count"`
	Authenticated bool    `json:"authenticated"`
	ServerTime    float64 `json:"server_time"`
	Events        []struct {
		CachedAt  string         `json:"cached_at"`
		Timestamp float64        `json:"timestamp"`
		Event     map[string]any `json:"event"`
	} `json:"events"`
}

func decodeGlobe(t *testing.T, body []byte) globeEvents {
	t.Helper()
	var g globeEvents
	if err := json.Unmarshal(body, &g); err != nil {
		t.Fatalf("Globe decode: %v: %s", err, body)
	}
	return g
}

func TestRecent(t *testing.T) {
	h := newTestAPI(t, nil)
	// The newest two community events, sanitized: no sensor addresses,
	// hostnames, UUIDs, credentials or domain (docs/livefeed.md).
	expect(t, get(h, "/feeds/events/recent?limit=2", ""), 200, `{"authenticated":false,"count":2,"events":[`+
		`{"cached_at":"2026-11-20 13:00:00 UTC","event":{"channel":"ews","createTime":"2026-11-20T08:01:45Z","dst_country":"GB","dst_latitude":51.5142,"dst_longitude":-0.0931,"dst_port":5555,"event_id":"c57334dd13bb8a1c74840aba3850fcbf",`+
		`"identifier":"adbhoney-community-01","peerIdent":"adbhoney-community-01","peerType":"Service(adbhoney)","protocol":"tcp","src_asn":"IANA","src_country":"PIR",`+
		`"src_country_name":"IANA Private IP Range","src_ip":"2001:db8:85a3::8a2e:370:7334","src_port":40001,"timestamp":1795179600},"timestamp":1795179600},`+
		`{"cached_at":"2026-11-20 14:00:00 UTC","event":{"channel":"hpfeeds","clientVersion":"SSH-2.0-Go","createTime":"2026-11-20T13:59:50Z","dst_country":"US","dst_latitude":47.2513,"dst_longitude":-122.3149,"dst_port":22,`+
		`"event_id":"593838ba936be01e6debb73f74926e2a","identifier":"4b7c1c1e-uuid","latitude":58.4167,"longitude":15.6167,"peerIdent":"4b7c1c1e-uuid",`+
		`"peerType":"SSH/console(cowrie)","protocol":"tcp","src_country":"SE","src_country_name":"Sweden","src_ip":"89.160.20.112","src_port":51234,`+
		`"timestamp":1795183200.25},"timestamp":1795183200.25}],"server_time":1795183500}`)

	w := get(h, "/feeds/events/recent", "")
	anon := decodeGlobe(t, w.Body.Bytes())
	if anon.Authenticated || anon.Count != 4 || len(anon.Events) != 4 {
		t.Fatalf("anonymous: %+v", anon)
	}
	for _, leak := range []string{"216.160.83.5", "ews-harness", "10.10.0.5", "6f1c2a7e", "hunter2", "123456", `"private"`, "dst_ip", "hostIP"} {
		if strings.Contains(w.Body.String(), leak) {
			t.Errorf("anonymous answer contains %q", leak)
		}
	}
	for _, cred := range []string{carol, community} {
		if c := get(h, "/feeds/events/recent", cred); c.Body.String() != w.Body.String() {
			t.Errorf("%s sees more than anonymous", cred)
		}
	}

	w = get(h, "/feeds/events/recent", alice)
	full := decodeGlobe(t, w.Body.Bytes())
	if !full.Authenticated || full.Count != 5 {
		t.Fatalf("entitled: %+v", full)
	}
	last := full.Events[4].Event
	if last["domain"] != "private" || last["dst_ip"] != "216.160.83.58" || last["password"] != "hunter2" {
		t.Errorf("entitled view is not the full event: %v", last)
	}
	// Receive-time order, event timestamp = outer timestamp.
	for i, e := range full.Events {
		if e.Event["timestamp"] != e.Timestamp || (i > 0 && e.Timestamp < full.Events[i-1].Timestamp) {
			t.Errorf("event %d: timestamps %v / %v", i, e.Event["timestamp"], e.Timestamp)
		}
	}

	// since is strict (>), as SecKC and the Globe's since=%.1f polling.
	cowrie := float64(recvCowrie.UnixMicro()) / 1e6
	for _, c := range []struct {
		q    string
		auth string
		n    int
	}{
		{"since=1795183200.2", "", 1},
		{"since=1795183200.25", "", 0},
		{"since=1795183200.3", alice, 1},
		{"since=0", "", 4},
		{"since=1e9", "", 4},
		{"limit=0", alice, 5},
		{"limit=1000", alice, 5},
		{"limit=1", "", 1},
	} {
		w := get(h, "/feeds/events/recent?"+c.q, c.auth)
		g := decodeGlobe(t, w.Body.Bytes())
		if w.Code != 200 || g.Count != c.n || len(g.Events) != c.n {
			t.Errorf("%s: %d count %d, want %d", c.q, w.Code, g.Count, c.n)
		}
		if c.q == "since=1795183200.2" && g.Events[0].Timestamp != cowrie {
			t.Errorf("since: got %v", g.Events[0].Timestamp)
		}
	}
	for _, q := range []string{"since=abc", "since=nan", "since=inf", "since=-inf", "since=0x"} {
		expect(t, get(h, "/feeds/events/recent?"+q, ""), 400, `{"error":"since must be a number of seconds since 1970"}`)
	}
	for _, q := range []string{"limit=-1", "limit=abc", "limit=1.5"} {
		expect(t, get(h, "/feeds/events/recent?"+q, ""), 400, `{"error":"limit must be a non-negative integer"}`)
	}
}

func TestStatus(t *testing.T) {
	h := newTestAPI(t, nil)
	expect(t, get(h, "/feeds/status", ""), 200, `{"cached_events":4,"retention_seconds":300,"server_time":1795183500,"status":"active","valid_events":4}`)
	expect(t, get(h, "/feeds/status", alice), 200, `{"cached_events":5,"retention_seconds":300,"server_time":1795183500,"status":"active","valid_events":5}`)

	since := time.Date(2026, 11, 20, 14, 0, 0, 0, time.UTC)
	states := []hpfeeds.BrokerState{{
		Addr: "broker.internal:10000", Ident: "peba-relay", Status: hpfeeds.StatusBackoff, Since: since,
		LastError: "dial tcp 10.1.2.3:10000: connection refused", LastErrorTime: since, Messages: 7, Errors: 3, Connects: 1,
	}}
	hp := newTestAPI(t, func(o *Options) { o.Hpfeeds = func() []hpfeeds.BrokerState { return states } })
	expect(t, get(hp, "/feeds/status", ""), 200, `{"cached_events":4,"hpfeeds":[{"messages":7,"since":1795183200,"status":"backoff"}],`+
		`"retention_seconds":300,"server_time":1795183500,"status":"disconnected","valid_events":4}`)
	expect(t, get(hp, "/feeds/status", alice), 200, `{"cached_events":5,"hpfeeds":[{"addr":"broker.internal:10000","connects":1,"errors":3,"ident":"peba-relay",`+
		`"last_error":"dial tcp 10.1.2.3:10000: connection refused","last_error_time":1795183200,"messages":7,"since":1795183200,"status":"backoff"}],`+
		`"retention_seconds":300,"server_time":1795183500,"status":"disconnected","valid_events":5}`)
	states[0].Status = hpfeeds.StatusConnected
	if w := get(hp, "/feeds/status", ""); !strings.Contains(w.Body.String(), `"status":"active"`) {
		t.Errorf("connected broker: %s", w.Body.String())
	}
}
