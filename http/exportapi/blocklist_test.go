package exportapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/cache"
)

// lines is a plain-text blocklist of the given addresses.
func lines(ips ...string) string {
	if len(ips) == 0 {
		return ""
	}
	return strings.Join(ips, "\n") + "\n"
}

// The plain-text list for each window and filter, counted from
// fixtureEvents. Text lists are sorted by address only (9.0.0.1 before
// 11.0.0.1: numerically, not as text; IPv4 before IPv6).
func TestBlocklistWindowsAndFilters(t *testing.T) {
	s := fixtureServer(t)
	for _, c := range []struct {
		name, authz, query string
		want               string
	}{
		// Default: 24h, community, global addresses only. 192.168.1.5 is
		// private, 11.0.0.1 older than 24h.
		{"default 24h", anonymous, "", lines("1.2.3.4", "9.0.0.1", "2a00:1450::1")},
		{"15m", anonymous, "window=15m", lines("1.2.3.4")},
		{"2h", anonymous, "window=2h", lines("1.2.3.4", "9.0.0.1")},
		{"24h", anonymous, "window=24h", lines("1.2.3.4", "9.0.0.1", "2a00:1450::1")},
		{"7d", anonymous, "window=7d", lines("1.2.3.4", "9.0.0.1", "11.0.0.1", "2a00:1450::1")},
		{"90m, a Go duration", anonymous, "window=90m", lines("1.2.3.4", "9.0.0.1")},
		{"9d reaches 5.6.7.8", anonymous, "window=9d", lines("1.2.3.4", "5.6.7.8", "9.0.0.1", "11.0.0.1", "2a00:1450::1")},
		{"with private ranges", anonymous, "window=15m&global_only=false", lines("1.2.3.4", "192.168.1.5")},
		{"min_count 2", anonymous, "min_count=2", lines("1.2.3.4", "9.0.0.1")},
		{"min_count 3", anonymous, "min_count=3", lines("1.2.3.4")},
		{"min_count above all", anonymous, "min_count=4", ""},
		{"type cowrie", anonymous, "window=7d&type=" + url.QueryEscape(cowrie), lines("1.2.3.4", "11.0.0.1")},
		{"type web, private ranges", anonymous, "type=Webpage&global_only=0", lines("192.168.1.5", "2a00:1450::1")},
		{"unknown type", anonymous, "type=nope", ""},
		// limit keeps the most frequent: 1.2.3.4 (3), then 9.0.0.1 (2).
		{"limit 2", anonymous, "limit=2", lines("1.2.3.4", "9.0.0.1")},
		{"community explicitly", anonymous, "domain=community", lines("1.2.3.4", "9.0.0.1", "2a00:1450::1")},
		// Entitlement: alice reads private data; the private events (last
		// 5 minutes) are 8.8.4.4 x4 and 1.2.3.4 x1.
		{"alice community", alice, "", lines("1.2.3.4", "9.0.0.1", "2a00:1450::1")},
		{"alice private", alice, "domain=private", lines("1.2.3.4", "8.8.4.4")},
		{"alice private min_count", alice, "domain=private&min_count=2", lines("8.8.4.4")},
		{"alice all 15m", alice, "domain=all&window=15m", lines("1.2.3.4", "8.8.4.4")},
		{"carol community", carol, "", lines("1.2.3.4", "9.0.0.1", "2a00:1450::1")},
		{"community credentials", community, "window=15m", lines("1.2.3.4")},
	} {
		for _, path := range []string{"/api/v1/blocklist?", "/api/v1/blocklist.txt?", "/api/v1/blocklist?format=txt&"} {
			r := s.get(t, c.authz, path+c.query)
			r.wantStatus(t, c.name, http.StatusOK)
			if r.body != c.want {
				t.Errorf("%s: GET %s%s =\n%q\nwant\n%q", c.name, path, c.query, r.body, c.want)
			}
			if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("%s: Content-Type %q", c.name, ct)
			}
		}
	}
}

// Anonymous callers and users not entitled to private data never get it:
// they are refused, not silently given the community list.
func TestBlocklistEntitlement(t *testing.T) {
	s := fixtureServer(t)
	for _, c := range []struct {
		name, authz, query string
		status             int
	}{
		{"anonymous private", anonymous, "domain=private", http.StatusUnauthorized},
		{"anonymous all", anonymous, "domain=all", http.StatusUnauthorized},
		{"carol private", carol, "domain=private", http.StatusForbidden},
		{"carol all", carol, "domain=all", http.StatusForbidden},
		{"community credentials all", community, "domain=all", http.StatusForbidden},
		// Wrong credentials are a 401 even for community data.
		{"wrong token", "Bearer alice:wrong", "", http.StatusUnauthorized},
		{"unknown user", "Bearer mallory:x", "", http.StatusUnauthorized},
		{"malformed header", "Bearer alice", "", http.StatusUnauthorized},
		{"unknown scheme", "Token alice:" + aliceToken, "", http.StatusUnauthorized},
	} {
		r := s.get(t, c.authz, "/api/v1/blocklist.json?"+c.query)
		r.wantStatus(t, c.name, c.status)
		if strings.Contains(r.body, "8.8.4.4") {
			t.Errorf("%s: private address in %s", c.name, r.body)
		}
		if got := r.header.Get("WWW-Authenticate"); (c.status == http.StatusUnauthorized) != (got == `Bearer realm="peba"`) {
			t.Errorf("%s: WWW-Authenticate %q", c.name, got)
		}
	}
	// Basic auth carries the same credentials.
	r := s.get(t, "Basic YWxpY2U6YWxpY2Utc2VjcmV0", "/api/v1/blocklist?domain=private") // alice:alice-secret
	r.wantStatus(t, "basic auth", http.StatusOK)
	if r.body != lines("1.2.3.4", "8.8.4.4") {
		t.Errorf("basic auth: %q", r.body)
	}
}

func TestBlocklistCSV(t *testing.T) {
	s := fixtureServer(t)
	want := "ip,count,first_seen,last_seen\n" +
		"1.2.3.4,3,2026-11-20T11:00:00Z,2026-11-20T13:50:00Z\n" +
		"9.0.0.1,2,2026-11-20T09:00:00Z,2026-11-20T13:40:00Z\n" +
		"192.168.1.5,2,2026-11-20T13:55:00Z,2026-11-20T13:55:00Z\n" +
		"2a00:1450::1,1,2026-11-20T02:00:00Z,2026-11-20T02:00:00Z\n"
	for _, path := range []string{"/api/v1/blocklist.csv?global_only=false", "/api/v1/blocklist?format=csv&global_only=false"} {
		r := s.get(t, anonymous, path)
		r.wantStatus(t, path, http.StatusOK)
		if r.body != want {
			t.Errorf("GET %s =\n%s\nwant\n%s", path, r.body, want)
		}
		if ct := r.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
	}
	// Both domains over 15 minutes: 8.8.4.4 x4 (private), 1.2.3.4 x2 (one
	// community, one private event).
	r := s.get(t, alice, "/api/v1/blocklist.csv?domain=all&window=15m")
	want = "ip,count,first_seen,last_seen\n" +
		"8.8.4.4,4,2026-11-20T13:56:00Z,2026-11-20T13:59:00Z\n" +
		"1.2.3.4,2,2026-11-20T13:50:00Z,2026-11-20T13:58:00Z\n"
	if r.body != want {
		t.Errorf("all domains:\n%s\nwant\n%s", r.body, want)
	}
}

func TestBlocklistJSON(t *testing.T) {
	s := fixtureServer(t)
	r := s.get(t, anonymous, "/api/v1/blocklist.json?window=7d&type="+url.QueryEscape(cowrie)+"&limit=1")
	r.wantStatus(t, "json", http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	want := `{"from":"2026-11-13T14:00:00Z","to":"2026-11-20T14:00:00Z","window":"7d","domain":"community",` +
		`"type":"SSH/console(cowrie)","min_count":1,"global_only":true,"count":1,"truncated":true,` +
		`"sources":[{"ip":"1.2.3.4","count":3,"first_seen":"2026-11-20T11:00:00Z","last_seen":"2026-11-20T13:50:00Z"}]}` + "\n"
	if r.body != want {
		t.Errorf("json =\n%s\nwant\n%s", r.body, want)
	}
	if r.header.Get("X-Blocklist-Count") != "1" || r.header.Get("X-Blocklist-Truncated") != "true" {
		t.Errorf("headers %v", r.header)
	}
	// Same order as csv: count descending (8.8.4.4 x4, 1.2.3.4 x3 of both
	// domains, 9.0.0.1 x1), then address; nothing cut.
	r = s.get(t, alice, "/api/v1/blocklist?format=json&domain=all&window=2h")
	var doc blocklistDoc
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, src := range doc.Sources {
		got = append(got, src.IP)
	}
	if strings.Join(got, " ") != "8.8.4.4 1.2.3.4 9.0.0.1" || doc.Truncated || doc.Count != 3 || doc.Domain != "all" || doc.Window != "2h0m0s" {
		t.Errorf("json all domains: %+v", doc)
	}
	// An empty list is an empty array, not null.
	r = s.get(t, anonymous, "/api/v1/blocklist.json?min_count=100")
	if !strings.Contains(r.body, `"sources":[]`) || r.header.Get("X-Blocklist-Count") != "0" {
		t.Errorf("empty json: %s", r.body)
	}
}

// Two runs over the same data give the same bytes and ETag; the ETag
// answers If-None-Match with 304; caching headers distinguish anonymous
// from authenticated callers.
func TestBlocklistStableAndCacheable(t *testing.T) {
	s := fixtureServer(t)
	for _, path := range []string{"/api/v1/blocklist.txt?window=7d", "/api/v1/blocklist.csv?window=7d&global_only=false", "/api/v1/blocklist.json?window=9d"} {
		a := s.get(t, anonymous, path)
		b := s.get(t, anonymous, path)
		if a.body != b.body || a.header.Get("ETag") == "" || a.header.Get("ETag") != b.header.Get("ETag") {
			t.Errorf("%s: two runs differ: %q %q / %q %q", path, a.header.Get("ETag"), b.header.Get("ETag"), a.body, b.body)
		}
		if cc := a.header.Get("Cache-Control"); cc != "public, max-age=60" {
			t.Errorf("%s: anonymous Cache-Control %q", path, cc)
		}
		nm := s.get(t, anonymous, path, "If-None-Match", a.header.Get("ETag"))
		if nm.status != http.StatusNotModified || nm.body != "" {
			t.Errorf("%s: If-None-Match: %d %q", path, nm.status, nm.body)
		}
		other := s.get(t, anonymous, path, "If-None-Match", `"0"`)
		if other.status != http.StatusOK || other.body != a.body {
			t.Errorf("%s: stale If-None-Match: %d", path, other.status)
		}
	}
	r := s.get(t, alice, "/api/v1/blocklist")
	if cc := r.header.Get("Cache-Control"); cc != "private, max-age=60" || !strings.Contains(r.header.Get("Vary"), "Authorization") {
		t.Errorf("authenticated: Cache-Control %q, Vary %q", cc, r.header.Get("Vary"))
	}
}

// Bad input is a 400 whose message names the parameter, never a 500.
func TestBlocklistBadParameters(t *testing.T) {
	s := fixtureServer(t)
	for _, c := range []struct{ path, param string }{
		{"/api/v1/blocklist?window=0", "window"},
		{"/api/v1/blocklist?window=-1h", "window"},
		{"/api/v1/blocklist?window=91d", "window"},
		{"/api/v1/blocklist?window=2161h", "window"},
		{"/api/v1/blocklist?window=abc", "window"},
		{"/api/v1/blocklist?window=1.5d", "window"},
		{"/api/v1/blocklist?window=99999999999d", "window"},
		{"/api/v1/blocklist?window=24h&window=2h", "window"},
		{"/api/v1/blocklist?min_count=0", "min_count"},
		{"/api/v1/blocklist?min_count=-3", "min_count"},
		{"/api/v1/blocklist?min_count=x", "min_count"},
		{"/api/v1/blocklist?min_count=99999999999999999999", "min_count"},
		{"/api/v1/blocklist?limit=0", "limit"},
		{"/api/v1/blocklist?limit=1000001", "limit"},
		{"/api/v1/blocklist?domain=dtag", "domain"},
		{"/api/v1/blocklist?global_only=maybe", "global_only"},
		{"/api/v1/blocklist?format=xml", "format"},
		{"/api/v1/blocklist.txt?format=json", "format"},
		{"/api/v1/blocklist?type=" + strings.Repeat("x", 300), "type"},
		{"/api/v1/blocklist?type=%ff", "type"},
		{"/api/v1/blocklist?min-count=2", "min-count"},
		{"/api/v1/blocklist.csv?ci=0", "ci"},
	} {
		r := s.get(t, anonymous, c.path)
		r.wantStatus(t, c.path, http.StatusBadRequest, c.param)
	}
	// The window may reach the maximum exactly.
	s.get(t, anonymous, "/api/v1/blocklist?window=90d").wantStatus(t, "90d", http.StatusOK)
}

// A store that cannot answer is a 503 with Retry-After, not a 500.
func TestBlocklistStoreDown(t *testing.T) {
	st := newStore(t, nil)
	s := newServer(t, st, nil)
	// Authenticate once while the store is up: the token check is cached.
	s.get(t, alice, "/api/v1/blocklist").wantStatus(t, "up", http.StatusOK)
	st.Close()
	for _, authz := range []string{anonymous, alice} {
		r := s.get(t, authz, "/api/v1/blocklist.json")
		r.wantStatus(t, "store closed", http.StatusServiceUnavailable)
		if r.header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
	}
}

// countingSources is the real store, counting Sources calls.
type countingSources struct {
	peba.SourceLister
	calls atomic.Int32
}

func (c *countingSources) Sources(ctx context.Context, w peba.Window, q peba.SourceQuery) ([]peba.Source, error) {
	c.calls.Add(1)
	return c.SourceLister.Sources(ctx, w, q)
}

// With a response cache, a repeated blocklist costs no query; callers who
// may see other domains never share an entry.
func TestBlocklistResponseCache(t *testing.T) {
	st := newStore(t, fixtureEventsAll())
	src := &countingSources{SourceLister: st}
	authn := auth.New(auth.Credentials{User: communityUser, Token: communityToken}, st, auth.Options{})
	api := New(Options{Auth: authn, Sources: src, Events: st, Now: func() time.Time { return now }, Cache: cache.NewMemory(1<<20, nil)})
	mux := http.NewServeMux()
	api.Register(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	s := &server{Server: hs, store: st}

	first := s.get(t, anonymous, "/api/v1/blocklist.csv?window=15m")
	again := s.get(t, carol, "/api/v1/blocklist.csv?window=15m") // same domains: shared
	if first.body != again.body || again.header.Get("X-Blocklist-Count") != "1" || again.header.Get("X-Blocklist-Truncated") != "false" {
		t.Errorf("cached answer differs: %q %v", again.body, again.header)
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("%d queries for two identical requests, want 1", n)
	}
	all := s.get(t, alice, "/api/v1/blocklist.csv?window=15m&domain=all")
	if !strings.Contains(all.body, "8.8.4.4") || src.calls.Load() != 2 {
		t.Errorf("domain=all: %d queries, body %q", src.calls.Load(), all.body)
	}
	// The community answer stays free of private data after that.
	if r := s.get(t, anonymous, "/api/v1/blocklist.csv?window=15m"); strings.Contains(r.body, "8.8.4.4") || r.body != first.body {
		t.Errorf("anonymous after alice: %q", r.body)
	}
	// Another format or parameter is another entry.
	s.get(t, anonymous, "/api/v1/blocklist.txt?window=15m")
	s.get(t, anonymous, "/api/v1/blocklist.csv?window=16m")
	if n := src.calls.Load(); n != 4 {
		t.Errorf("%d queries, want 4", n)
	}
}
