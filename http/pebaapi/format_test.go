package pebaapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/peba-go/peba"
)

// The [verified] examples of peba.md §2.1, §3 and §7, byte for byte.
func TestXMLVerifiedExamples(t *testing.T) {
	f := func(root *node, want string) {
		t.Helper()
		if got := string(xmlDoc(root)); got != want {
			t.Errorf("got\n%s\nwant\n%s", got, want)
		}
	}
	f(elem("EWSSimpleIPInfo", elem("Sources", elem("Source", leaf("Address", "87.150.238.111"), leaf("Count", "41")))),
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?><EWSSimpleIPInfo>\n  <Sources>\n    <Source>\n      <Address>87.150.238.111</Address>\n      <Count>41</Count>\n    </Source>\n  </Sources>\n</EWSSimpleIPInfo>")
	f(elem("EWSSimpleIPInfo", elem("Sources")), "<?xml version=\"1.0\" encoding=\"UTF-8\"?><EWSSimpleIPInfo>\n  <Sources />\n</EWSSimpleIPInfo>")
	f(elem("EWSSimpleIPInfo", leaf("AlertCount", "44")), "<?xml version=\"1.0\" encoding=\"UTF-8\"?><EWSSimpleIPInfo>\n  <AlertCount>44</AlertCount>\n</EWSSimpleIPInfo>")
	f(elem("A", leaf("Request", "a&b<c>d\"e'\x00\xff")), "<?xml version=\"1.0\" encoding=\"UTF-8\"?><A>\n  <Request>a&amp;b&lt;c&gt;d\"e'\uFFFD\uFFFD</Request>\n</A>")
}

func TestJSONVerifiedExamples(t *testing.T) {
	f := func(v any, want string) {
		t.Helper()
		if got := string(jsonBody(v)); got != want+"\n" {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
	f(map[string]bool{"AlertCount": false}, `{"AlertCount":false}`)
	f(struct {
		PerType map[string]int64 `json:"AlertCountPerType"`
		Total   int64            `json:"AlertCountTotal"`
	}{map[string]int64{"Passwords(heralding)": 43, "Network(Dionaea)": 1}, 44},
		`{"AlertCountPerType":{"Network(Dionaea)":1,"Passwords(heralding)":43},"AlertCountTotal":44}`)
	f(map[string]any{"2019-01-21 00:00:00": map[string]any{"UTCtimeFrom": "2019-01-21 00:00:00", "UTCtimeTo": "2019-01-21 23:59:59",
		"comm_ratio_Network(Dionaea)": pyFloat(100.1), "comm_totalRatio": pyFloat(12.5)},
		"2019-01-22 00:00:00": map[string]any{"UTCtimeFrom": "2019-01-22 00:00:00", "UTCtimeTo": "2019-01-22 23:59:59",
			"comm_ratio_Network(Dionaea)": pyFloat(90.5), "comm_totalRatio": pyFloat(11.0)}},
		`{"2019-01-21 00:00:00":{"UTCtimeFrom":"2019-01-21 00:00:00","UTCtimeTo":"2019-01-21 23:59:59","comm_ratio_Network(Dionaea)":100.1,"comm_totalRatio":12.5},"2019-01-22 00:00:00":{"UTCtimeFrom":"2019-01-22 00:00:00","UTCtimeTo":"2019-01-22 23:59:59","comm_ratio_Network(Dionaea)":90.5,"comm_totalRatio":11.0}}`)
	// Non-ASCII as \u escapes (surrogate pairs above U+FFFF); <>& as is.
	f("Zürich <&> 😀", `"Z\u00fcrich <&> \ud83d\ude00"`)
	f("Nope", `"Nope"`)
}

func TestPyFloat(t *testing.T) {
	for in, want := range map[float64]string{
		0: "0.0", 50: "50.0", 51.2993: "51.2993", -0.0931: "-0.0931", 9.491: "9.491", 1e16: "1e+16",
		0.0001: "0.0001", 0.00001: "1e-05", 123456789012345680: "1.2345678901234568e+17", 1234567: "1234567.0", 22: "22.0",
	} {
		if got := pyFloat(in).String(); got != want {
			t.Errorf("pyFloat(%v) = %q, want %q", in, got, want)
		}
	}
	if got := pyFloat(math.Copysign(0, -1)).String(); got != "-0.0" {
		t.Errorf("negative zero: %q", got)
	}
}

func TestNopeForms(t *testing.T) {
	a := New(Config{DefaultResponse: "Nope"}, nil, nil, nil, nil, slog.New(slog.DiscardHandler), nil)
	for _, c := range []struct {
		res         response
		ctype, body string
	}{
		{a.nopeHTML(), "text/html; charset=utf-8", "Nope"},
		{a.nopeXML(), "text/xml; charset=utf-8", "Nope"},
		{a.nopeJSON(), "application/json", "\"Nope\"\n"},
	} {
		if c.res.ctype != c.ctype || string(c.res.body) != c.body {
			t.Errorf("got %q %q, want %q %q", c.res.ctype, c.res.body, c.ctype, c.body)
		}
		// Round trip through the cache encoding.
		back, ttl, ok := decodeCached(encodeCached(c.res, 60e9))
		if !ok || ttl != 60e9 || back.ctype != c.res.ctype || string(back.body) != string(c.res.body) {
			t.Errorf("cache round trip: %+v %v %v", back, ttl, ok)
		}
	}
}

// peba.md §3.9 [verified]: the ticker's requestString and Bonn rules.
func TestTickerRules(t *testing.T) {
	her := peba.Event{PeerType: "Passwords(heralding)", Username: "root", Password: "pass%20word"}
	if got := requestString(&her); got != "Username: &quot;root&quot; | Password: &quot;pass word&quot;" {
		t.Errorf("heralding: %q", got)
	}
	cow := peba.Event{PeerType: "SSH/console(cowrie)", URL: "\nuname -a\ncat /proc/cpuinfo"}
	if got := requestString(&cow); got != "uname -a; cat /proc/cpuinfo" {
		t.Errorf("cowrie: %q", got)
	}
	// B-16 fixed: no characters cut from input without a leading newline.
	cve := peba.Event{PeerType: "SSH/console(cowrie)", URL: "(CVE-2017-999) ls\nid"}
	if got := requestString(&cve); got != "(CVE-2017-999) ls; id" {
		t.Errorf("cowrie CVE: %q", got)
	}
	cowLogin := peba.Event{PeerType: "SSH/console(cowrie)", Password: "x", Login: "Success"}
	if got := requestString(&cowLogin); got != "Username: &lt;none&gt; | Password: &quot;x&quot; | Status: Success" {
		t.Errorf("cowrie login: %q", got)
	}
	web := peba.Event{PeerType: "Webpage", URL: "/index.php?a=%3Cscript%3E&b=1"}
	if got := requestString(&web); got != "/index.php?a=&lt;script&gt;&amp;b=1" {
		t.Errorf("webpage: %q", got)
	}
	if lat, lng := bonn(peba.Geo{}); lat != "50.708021" || lng != "7.129191" {
		t.Errorf("Bonn: %s %s", lat, lng)
	}
	if lat, lng := bonn(peba.Geo{Lat: 51.0585, Lon: 8.7833}); lat != "51.0585" || lng != "8.7833" {
		t.Errorf("real location: %s %s", lat, lng)
	}
}

func TestParams(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "007": 7, "999": 999, "1000": 1000, "1001": 1000, "99999999999999999999999": 1000} {
		if got, ok := decimal(in, 1000); !ok || got != want {
			t.Errorf("decimal(%q) = %d %v, want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-1", "+1", " 1", "1.5", "1e3", "abc", "٣"} {
		if _, ok := decimal(in, 1000); ok {
			t.Errorf("decimal(%q) accepted", in)
		}
	}
	for in, want := range map[string]bool{
		"8.8.8.8": true, "224.0.0.1": true, "10.1.2.3": false, "100.64.0.1": false, "192.0.2.1": false,
		"127.0.0.1": false, "255.255.255.255": false, "198.18.0.1": false, "2a01:4f8::1": true, "fe80::1": false,
	} {
		if got := isGlobal(netip.MustParseAddr(in)); got != want {
			t.Errorf("isGlobal(%s) = %v", in, got)
		}
	}
	for in, want := range map[string]string{"a%20b": "a b", "%zz%4": "%zz%4", "%C3%BC": "ü", "%FF": "\uFFFD", "a+b": "a+b"} {
		if got := pyUnquote(in); got != want {
			t.Errorf("pyUnquote(%q) = %q, want %q", in, got, want)
		}
	}
	if got := pyUnquotePlus("2019-01-21+00%3A00%3A00"); got != "2019-01-21 00:00:00" {
		t.Errorf("pyUnquotePlus: %q", got)
	}
}

func TestBodyCredentials(t *testing.T) {
	f := func(body string, wantUser, wantToken string, wantErr error) {
		t.Helper()
		u, tok, err := bodyCredentials(strings.NewReader(body))
		if err != wantErr || u != wantUser || tok != wantToken {
			t.Errorf("%.60q: got %q %q %v", body, u, tok, err)
		}
	}
	f(authBody("u", "t"), "u", "t", nil)
	f("<x><Authentication><token>t</token><username>u</username></Authentication></x>", "u", "t", nil)
	f("  \n", "", "", errNoCredentials)
	f("<x><Authentication><username>u</username></Authentication></x>", "", "", errBadCredentials)
	f("<x><Authentication><username>u", "", "", errBadCredentials)
	f(strings.Repeat("<a>", maxAuthBody), "", "", errBadCredentials)
}

// Every JSON golden body has its object keys sorted at every level, as
// Flask's jsonify writes them (peba.md §2.1).
func TestGoldenJSONKeysSorted(t *testing.T) {
	h := newTestAPI(t, nil)
	for _, tc := range endpointCases {
		w := do(h, tc.req)
		if w.Header().Get("Content-Type") != ctJSON {
			continue
		}
		if !keysSorted(json.NewDecoder(strings.NewReader(w.Body.String()))) {
			t.Errorf("%s: keys not sorted: %.200s", tc.name, w.Body.String())
		}
	}
}

func keysSorted(d *json.Decoder) bool {
	type frame struct {
		obj     bool
		last    string
		started bool
		wantKey bool
	}
	var st []*frame
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		var top *frame
		if len(st) > 0 {
			top = st[len(st)-1]
		}
		if top != nil && top.obj && top.wantKey {
			if k, ok := tok.(string); ok {
				if top.started && k <= top.last {
					return false
				}
				top.last, top.started, top.wantKey = k, true, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			st = append(st, &frame{obj: true, wantKey: true})
			continue
		case json.Delim('['):
			st = append(st, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			st = st[:len(st)-1]
		}
		if len(st) > 0 && st[len(st)-1].obj {
			st[len(st)-1].wantKey = true
		}
	}
}
