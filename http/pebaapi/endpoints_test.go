package pebaapi

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

var (
	aliceBody   = authBody("alice", aliceToken)
	aliceBearer = map[string]string{"Authorization": "Bearer alice:" + aliceToken}
	aliceBasic  = map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+aliceToken))}
	carolBearer = map[string]string{"Authorization": "Bearer carol:" + carolToken}
)

func get(target string) req { return req{method: http.MethodGet, target: target} }
func getAs(target string, h map[string]string) req {
	return req{method: http.MethodGet, target: target, header: h}
}
func post(target, body string) req { return req{method: http.MethodPost, target: target, body: body} }
func postAs(target string, h map[string]string) req {
	return req{method: http.MethodPost, target: target, header: h}
}

// endpointCases covers every endpoint and every parameter branch
// (peba.md §3, §7); each answer is pinned byte for byte in
// testdata/golden/<name>.txt.
var endpointCases = []struct {
	name string
	req  req
}{
	{"root", get("/")},
	{"root_post", post("/", "")},
	{"heartbeat", get("/heartbeat")},

	{"ips_xml", post("/alert/retrieveIPs", aliceBody)},
	{"ips_json", post("/alert/retrieveIPs?out=json", aliceBody)},
	{"ips_alias", post("/ews-0.1/alert/retrieveIPs?out=json", aliceBody)},
	{"ips_ci0", post("/alert/retrieveIPs?out=json&ci=0", aliceBody)},
	{"ips_ci-1", post("/alert/retrieveIPs?out=json&ci=-1", aliceBody)},
	{"ips_bearer", postAs("/alert/retrieveIPs?out=json&ci=-1", aliceBearer)},
	{"ips_community_only_ci0", postAs("/alert/retrieveIPs?out=json&ci=0", carolBearer)},
	{"ips_xml_empty", postAs("/alert/retrieveIPs?ci=0", carolBearer)},
	{"ips_no_body", post("/alert/retrieveIPs", "")},
	{"ips_malformed", post("/alert/retrieveIPs", "<EWS-SimpleMessage><Authentication><username>alice")},
	{"ips_missing_token", post("/alert/retrieveIPs", "<a><Authentication><username>alice</username></Authentication></a>")},
	{"ips_nested_auth", post("/alert/retrieveIPs", "<a><b>"+aliceBody+"</b></a>")},
	{"ips_wrong_token", post("/alert/retrieveIPs", authBody("alice", "nope"))},
	{"ips_community_creds", post("/alert/retrieveIPs", authBody(communityUser, communityToken))},
	{"ips_doctype", post("/alert/retrieveIPs", `<!DOCTYPE a [<!ENTITY x "alice">]>`+aliceBody)},
	{"ips_bad_header", postAs("/alert/retrieveIPs", map[string]string{"Authorization": "Bearer alice"})},
	{"ips_get", get("/alert/retrieveIPs")},
	{"ips15m", post("/alert/retrieveIPs15m?out=json&ci=-1", aliceBody)},
	{"ips15m_alias", post("/ews-0.1/alert/retrieveIPs15m", aliceBody)},

	{"cyber", post("/alert/retrieveAlertsCyber", aliceBody)},
	{"cyber_ci-1", post("/alert/retrieveAlertsCyber?ci=-1&topx=1000", aliceBody)},
	{"cyber_noauth", post("/alert/retrieveAlertsCyber", "")},

	{"single", post("/alert/querySingleIP?ip=175.16.199.3", aliceBody)},
	{"single_not_a_source", post("/alert/querySingleIP?ip=81.2.69.142", aliceBody)},
	{"single_ci-1", post("/alert/querySingleIP?ip=89.160.20.112&ci=-1", aliceBody)},
	{"single_private_ip", post("/alert/querySingleIP?ip=10.0.0.1", aliceBody)},
	{"single_leading_zero", post("/alert/querySingleIP?ip=081.2.69.142", aliceBody)},
	{"single_garbage", post("/alert/querySingleIP?ip=abc", aliceBody)},
	{"single_missing", post("/alert/querySingleIP", aliceBody)},
	{"single_ipv6", post("/alert/querySingleIP?ip=2a01:4f8::1", aliceBody)},
	{"single_noauth", post("/alert/querySingleIP?ip=81.2.69.142", "")},

	{"count_missing", get("/alert/retrieveAlertsCount")},
	{"count_empty", get("/alert/retrieveAlertsCount?time=")},
	{"count_garbage_xml", get("/alert/retrieveAlertsCount?time=abc")},
	{"count_garbage_json", get("/alert/retrieveAlertsCount?time=abc&out=json")},
	{"count_negative", get("/alert/retrieveAlertsCount?time=-1&out=json")},
	{"count_10", get("/alert/retrieveAlertsCount?time=10")},
	{"count_10_json", get("/alert/retrieveAlertsCount?time=10&out=json")},
	{"count_day", get("/alert/retrieveAlertsCount?time=day&out=json")},
	{"count_huge", get("/alert/retrieveAlertsCount?time=99999999999999999999999&out=json")},
	{"count_ci0_anonymous", get("/alert/retrieveAlertsCount?time=day&out=json&ci=0")},
	{"count_ci0_alice", getAs("/alert/retrieveAlertsCount?time=day&out=json&ci=0", aliceBearer)},
	{"count_ci-1_alice", getAs("/alert/retrieveAlertsCount?time=day&out=json&ci=-1", aliceBasic)},
	{"count_ci-1_carol", getAs("/alert/retrieveAlertsCount?time=day&out=json&ci=-1", carolBearer)},
	{"count_ci_garbage", get("/alert/retrieveAlertsCount?time=day&out=json&ci=abc")},
	{"count_bad_auth", getAs("/alert/retrieveAlertsCount?time=day", map[string]string{"Authorization": "Bearer alice:wrong"})},

	{"withtype_missing", get("/alert/retrieveAlertsCountWithType")},
	{"withtype_garbage", get("/alert/retrieveAlertsCountWithType?time=abc")},
	{"withtype_10", get("/alert/retrieveAlertsCountWithType?time=10")},
	{"withtype_day_ci-1", getAs("/alert/retrieveAlertsCountWithType?time=day&ci=-1", aliceBearer)},
	{"withtype_huge", get("/alert/retrieveAlertsCountWithType?time=99999999999999999999")},

	{"json", get("/alert/retrieveAlertsJson")},
	{"json_ci0_anonymous", get("/alert/retrieveAlertsJson?ci=0")},
	{"json_ci0_alice", getAs("/alert/retrieveAlertsJson?ci=0", aliceBearer)},

	{"permonth", get("/alert/datasetAlertsPerMonth")},
	{"permonth_days2", get("/alert/datasetAlertsPerMonth?days=2")},
	{"permonth_days0", get("/alert/datasetAlertsPerMonth?days=0")},
	{"permonth_empty", get("/alert/datasetAlertsPerMonth?days=")},
	{"permonth_garbage", get("/alert/datasetAlertsPerMonth?days=abc")},
	{"permonth_negative", get("/alert/datasetAlertsPerMonth?days=-1")},
	{"permonth_ci-1", getAs("/alert/datasetAlertsPerMonth?ci=-1", aliceBearer)},

	{"types", get("/alert/datasetAlertTypesPerMonth")},
	{"types_garbage", get("/alert/datasetAlertTypesPerMonth?days=x")},
	{"types_ci-1", getAs("/alert/datasetAlertTypesPerMonth?ci=-1&days=3", aliceBearer)},

	{"alertstats", get("/alert/retrieveAlertStats")},
	{"alertstats_ci-1", getAs("/alert/retrieveAlertStats?ci=-1", aliceBearer)},

	{"countries", get("/alert/topCountriesAttacks")},
	{"countries_topx1", get("/alert/topCountriesAttacks?topx=1")},
	{"countries_topx0", get("/alert/topCountriesAttacks?topx=0")},
	{"countries_topx_empty", get("/alert/topCountriesAttacks?topx=")},
	{"countries_topx_garbage", get("/alert/topCountriesAttacks?topx=abc")},
	{"countries_topx_huge", get("/alert/topCountriesAttacks?topx=99999999999999999999")},
	{"countries_month1", get("/alert/topCountriesAttacks?monthOffset=1")},
	{"countries_offset_alias", get("/alert/topCountriesAttacks?offset=1")},
	{"countries_month_garbage", get("/alert/topCountriesAttacks?monthOffset=abc")},
	{"countries_month_negative", get("/alert/topCountriesAttacks?monthOffset=-1")},
	{"countries_month_huge", get("/alert/topCountriesAttacks?monthOffset=99999999999999999999")},
	{"countries_ci-1", getAs("/alert/topCountriesAttacks?ci=-1", aliceBearer)},

	{"latlon", get("/alert/retrieveLatLonAttacks")},
	{"latlon_dst", get("/alert/retrieveLatLonAttacks?direction=dst")},
	{"latlon_topx2", get("/alert/retrieveLatLonAttacks?topx=2")},
	{"latlon_offset1", get("/alert/retrieveLatLonAttacks?offset=1")},
	{"latlon_direction_garbage", get("/alert/retrieveLatLonAttacks?direction=up")},
	{"latlon_direction_empty", get("/alert/retrieveLatLonAttacks?direction=")},
	{"latlon_topx_garbage", get("/alert/retrieveLatLonAttacks?topx=-3")},
	{"latlon_offset_garbage", get("/alert/retrieveLatLonAttacks?offset=1.5")},
	{"latlon_offset_huge", get("/alert/retrieveLatLonAttacks?offset=99999999999999999999")},

	{"tpot_today", get("/alert/TpotStats")},
	{"tpot_yesterday", get("/alert/TpotStats?day=20261119")},
	{"tpot_explicit_today", get("/alert/TpotStats?day=20261120")},
	{"tpot_future", get("/alert/TpotStats?day=20261121")},
	{"tpot_short", get("/alert/TpotStats?day=2026112")},
	{"tpot_invalid_date", get("/alert/TpotStats?day=20261131")},
	{"tpot_garbage", get("/alert/TpotStats?day=abcdefgh")},
	{"tpot_year0", get("/alert/TpotStats?day=00000101")},
	{"tpot_ci_ignored", getAs("/alert/TpotStats?ci=0", aliceBearer)},

	{"getstats", get("/alert/getStats")},
	{"getstats_values", get("/alert/getStats?values=Network%28Dionaea%29%2CSSH%252Fconsole%2528cowrie%2529,Bogus&gte=2026-11-19+00:00:00&lt=2026-11-21+00:00:00")},
	{"getstats_value_alias", get("/alert/getStats?value=Passwords(heralding)&gte=2026-11-19%2000:00:00")},
	{"getstats_lt_exclusive", get("/alert/getStats?gte=2026-11-19+00:00:00&lt=2026-11-20+00:00:00")},
	{"getstats_bad_dates", get("/alert/getStats?gte=yesterday&lt=2026-13-01+00:00:00")},
	{"getstats_nothing", get("/alert/getStats?gte=2020-01-01+00:00:00&lt=2020-01-03+00:00:00")},
	{"getstats_ci-1", getAs("/alert/getStats?gte=2026-11-19+00:00:00&values=Network(Dionaea)&ci=-1", aliceBearer)},

	{"tops_ports", get("/alert/tops?type=destports&topx=3")},
	{"tops_urls", get("/alert/tops?type=urls")},
	{"tops_days7", get("/alert/tops?type=destports&days=7&topx=2")},
	{"tops_days28", get("/alert/tops?type=destports&days=28&topx=1")},
	{"tops_days_garbage", get("/alert/tops?type=destports&days=2")},
	{"tops_type_missing", get("/alert/tops")},
	{"tops_topx0", get("/alert/tops?type=destports&topx=0")},
	{"tops_topx31", get("/alert/tops?type=destports&topx=31")},
	{"tops_topx_garbage", get("/alert/tops?type=destports&topx=1e3")},
	{"tops_ci0_anonymous", get("/alert/tops?type=destports&ci=0")},
	{"tops_ci0_alice", getAs("/alert/tops?type=destports&ci=0&topx=2", aliceBearer)},

	{"cors_preflight", req{method: http.MethodOptions, target: "/alert/retrieveAlertsJson", header: map[string]string{"Origin": "http://sicherheitstacho.eu", "Access-Control-Request-Headers": "content-type"}}},
	{"cors_origin", getAs("/alert/retrieveAlertStats", map[string]string{"Origin": "http://sicherheitstacho.eu"})},
	{"cors_other_origin", getAs("/alert/retrieveAlertStats", map[string]string{"Origin": "http://evil.example"})},
}

func TestEndpointsGolden(t *testing.T) {
	h := newTestAPI(t, nil)
	seen := map[string]bool{}
	for _, tc := range endpointCases {
		if seen[tc.name] {
			t.Fatalf("duplicate case %s", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			w := do(h, tc.req)
			if w.Code >= 500 {
				t.Errorf("status %d: invalid input must never give a 5xx", w.Code)
			}
			golden(t, tc.name, dump(w))
		})
	}
}

// Huge numbers are clamped, never overflow and never fail (B-24 spirit).
func TestHugeParametersClamp(t *testing.T) {
	h := newTestAPI(t, nil)
	for _, p := range [][2]string{
		{"/alert/datasetAlertsPerMonth?days=99999999999999999999", "/alert/datasetAlertsPerMonth?days=3650"},
		{"/alert/datasetAlertTypesPerMonth?days=100000", "/alert/datasetAlertTypesPerMonth?days=3650"},
	} {
		huge, clamped := do(h, get(p[0])), do(h, get(p[1]))
		if huge.Code != 200 || huge.Body.String() != clamped.Body.String() {
			t.Errorf("%s: status %d, body differs from %s", p[0], huge.Code, p[1])
		}
		// The 2017 fixtures lie inside ten years: the gap-filled days run
		// from 2017-02-22 to 2026-11-20.
		if !strings.Contains(huge.Body.String(), `"2017-02-23 00:00:00":`) || !strings.Contains(huge.Body.String(), `"2026-11-20 00:00:00":`) {
			t.Errorf("%s: gap-filled range missing: %.200s", p[0], huge.Body.String())
		}
	}
}
