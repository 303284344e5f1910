package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/ews"
	"github.com/peba-go/peba/internal/testfixtures"
)

// The export API as `peba serve` wires it, over events that came in
// through the real ingest path: community posts (the community
// credentials) and private ones (a registered user). Blocklists list the
// global source addresses of each domain for the callers entitled to it;
// the NDJSON export holds every event; the OpenAPI document is served.
func TestServeExportAPI(t *testing.T) {
	dir := t.TempDir()
	const userToken = "s3cr3t&<tok%en>"
	pebaCmd(t, dir, "user", "add", "harness-user", "-token", userToken)
	pebaCmd(t, dir, "user", "add", "carol", "-token", "carol-token", "-community-only")
	in := startServe(t, dir)

	files := testfixtures.Files(t, "ewsposter")[:20]
	want := map[peba.Domain]map[string]bool{peba.DomainCommunity: {}, peba.DomainPrivate: {}}
	ids := map[string]bool{}
	for i, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := peba.DomainPrivate
		if i%2 == 0 { // every other file is posted as community data
			d = peba.DomainCommunity
			body = []byte(strings.Replace(string(body), "<username>harness-user</username><token>s3cr3t&amp;&lt;tok%en&gt;</token>",
				"<username>community-01-user</username><token>foth{a5maiCee8fineu7</token>", 1))
		}
		if status, got, _ := postEWS(t, in.base+"/ews-0.1/alert/postSimpleMessage", body); status != 200 {
			t.Fatalf("%s: HTTP %d %s", f, status, got)
		}
		b, err := ews.Decode(body, ews.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Events {
			ids[e.ID] = true
			if peba.IsGlobal(e.SrcIP) {
				want[d][e.SrcIP.String()] = true
			}
		}
	}
	if len(want[peba.DomainCommunity]) == 0 || len(want[peba.DomainPrivate]) == 0 {
		t.Fatal("fixtures give no global source addresses in a domain")
	}

	get := func(authz, path string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", in.base+path, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	user := "Bearer harness-user:" + userToken
	// The events are committed behind the acknowledgement: wait until the
	// export holds them all.
	var lines []string
	for range 200 {
		_, _, body := get(user, "/api/v1/events/export?domain=all")
		lines = strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		if len(lines) == len(ids) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, l := range lines {
		var e struct{ ID, Domain string }
		if err := json.Unmarshal([]byte(l), &e); err != nil || !ids[e.ID] {
			t.Fatalf("export line %q: %v", l, err)
		}
	}
	if len(lines) != len(ids) {
		t.Fatalf("export has %d events, want %d", len(lines), len(ids))
	}

	t.Logf("%d events, %d community and %d private addresses", len(lines), len(want[peba.DomainCommunity]), len(want[peba.DomainPrivate]))
	sorted := func(set map[string]bool) string {
		var as []netip.Addr
		for s := range set {
			as = append(as, netip.MustParseAddr(s))
		}
		slices.SortFunc(as, netip.Addr.Compare)
		var b strings.Builder
		for _, a := range as {
			b.WriteString(a.String() + "\n")
		}
		return b.String()
	}
	both := map[string]bool{}
	for _, set := range want {
		for a := range set {
			both[a] = true
		}
	}
	for _, c := range []struct {
		name, authz, query string
		status             int
		want               string
	}{
		{"anonymous", "", "", 200, sorted(want[peba.DomainCommunity])},
		{"user, private", user, "?domain=private", 200, sorted(want[peba.DomainPrivate])},
		{"user, all", user, "?domain=all", 200, sorted(both)},
		{"anonymous, private", "", "?domain=private", 401, ""},
		{"community-only user, private", "Bearer carol:carol-token", "?domain=private", 403, ""},
		{"wrong token", "Bearer harness-user:nope", "", 401, ""},
	} {
		status, hdr, body := get(c.authz, "/api/v1/blocklist.txt"+c.query)
		if status != c.status || (status == 200 && body != c.want) {
			t.Errorf("%s: HTTP %d\n%s\nwant %d\n%s", c.name, status, body, c.status, c.want)
		}
		if status == 401 && hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", c.name)
		}
	}

	// The first page of a search as the export starts it.
	status, _, body := get(user, "/api/v1/events?domain=all&limit=1")
	var page struct {
		Events     []json.RawMessage
		NextCursor string `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(body), &page); status != 200 || err != nil || len(page.Events) != 1 || page.NextCursor == "" ||
		string(page.Events[0]) != lines[0] {
		t.Errorf("search: HTTP %d %v %s", status, err, body)
	}
	status, hdr, body := get("", "/api/v1/openapi.json")
	if status != 200 || hdr.Get("Content-Type") != "application/json" || !json.Valid([]byte(body)) {
		t.Errorf("openapi.json: HTTP %d %q", status, hdr.Get("Content-Type"))
	}
}
