package exportapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/duckdb"
)

// The API "runs" at now; the fixture events lie before it.
var now = time.Date(2026, 11, 20, 14, 0, 0, 0, time.UTC)

const (
	communityUser  = "community-01-user"
	communityToken = "community-token"
	aliceToken     = "alice-secret" // alice: a registered user, may read private data
	carolToken     = "carol-secret" // carol: registered, community-only
)

// Readers of the API, as their Authorization headers.
var (
	anonymous = ""
	alice     = "Bearer alice:" + aliceToken
	carol     = "Bearer carol:" + carolToken
	community = "Bearer " + communityUser + ":" + communityToken
)

const (
	cowrie  = "SSH/console(cowrie)"
	dionaea = "Network(Dionaea)"
	web     = "Webpage"
)

// fixEvent is one event of the fixture: id, domain, age (before now),
// peer type and source address; the rest is filled by mkEvent.
type fixEvent struct {
	id     string
	d      peba.Domain
	age    time.Duration
	ptype  string
	src    string
	sensor int // which of the sensors below
}

const (
	m = time.Minute
	h = time.Hour
	d = 24 * time.Hour
)

// fixtureEvents: the blocklist expectations in blocklist_test.go are
// counted from this table.
var fixtureEvents = []fixEvent{
	{"c01", peba.DomainCommunity, 10 * m, cowrie, "1.2.3.4", 0},
	{"c02", peba.DomainCommunity, 1 * h, cowrie, "1.2.3.4", 0},
	{"c03", peba.DomainCommunity, 3 * h, cowrie, "1.2.3.4", 1},
	{"c04", peba.DomainCommunity, 20 * m, dionaea, "9.0.0.1", 1},
	{"c05", peba.DomainCommunity, 5 * h, dionaea, "9.0.0.1", 1},
	{"c06", peba.DomainCommunity, 30 * h, cowrie, "11.0.0.1", 0},
	{"c07", peba.DomainCommunity, 2 * d, cowrie, "11.0.0.1", 0},
	{"c08", peba.DomainCommunity, 5 * m, web, "192.168.1.5", 1},
	{"c09", peba.DomainCommunity, 5 * m, web, "192.168.1.5", 1}, // same receive time as c08
	{"c10", peba.DomainCommunity, 12 * h, web, "2a00:1450::1", 1},
	{"c11", peba.DomainCommunity, 8 * d, web, "5.6.7.8", 0},
	{"p01", peba.DomainPrivate, 1 * m, cowrie, "8.8.4.4", 2},
	{"p02", peba.DomainPrivate, 2 * m, cowrie, "8.8.4.4", 2},
	{"p03", peba.DomainPrivate, 3 * m, cowrie, "8.8.4.4", 2},
	{"p04", peba.DomainPrivate, 4 * m, cowrie, "8.8.4.4", 2},
	{"p05", peba.DomainPrivate, 2 * m, dionaea, "1.2.3.4", 2},
}

// sensors of the fixture: hostname, peer ident base, target address.
var sensors = []struct{ host, ident, dst string }{
	{"tpot-berlin", "cowrie-01", "81.2.0.1"},
	{"tpot-paris", "dionaea-07", "81.2.0.2"},
	{"private-sensor", "cowrie-p", "10.9.8.7"},
}

func mkEvent(f fixEvent) peba.Event {
	s := sensors[f.sensor]
	e := peba.Event{
		ID: f.id, Domain: f.d, Submitter: communityUser, Origin: "ews",
		ReceivedTime: now.Add(-f.age), CreateTime: now.Add(-f.age - time.Second),
		PeerIdent: s.ident, PeerType: f.ptype, SensorUUID: "uuid-" + s.host, Hostname: s.host,
		ExternalIP: s.dst, InternalIP: "172.20.0.2",
		SrcIP: netip.MustParseAddr(f.src), SrcPort: 40000, DstIP: netip.MustParseAddr(s.dst), DstPort: 22,
		Transport: "tcp", URL: "/x?id=" + f.id, Username: "root", Password: "hunter2", Login: "Fail",
		RawHTTP:        "GET / HTTP/1.1\r\nHost: " + s.dst + "\r\n\r\n",
		AdditionalData: []peba.Attr{{Key: "hostIP", Value: s.dst}},
		Src:            peba.Geo{Country: "DE", CountryName: "Germany", ASN: "AS3320 Deutsche Telekom AG", Lat: 51.3, Lon: 9.5},
		Dst:            peba.Geo{Country: "FR", CountryName: "France", ASN: "AS3215 Orange", Lat: 48.86, Lon: 2.34},
	}
	if f.d == peba.DomainPrivate {
		e.Submitter = "alice"
	}
	if f.id == "c10" {
		e.SrcPort, e.DstPort = peba.NoPort, peba.NoPort
	}
	return e
}

// newStore opens a DuckDB store in a temp dir holding evs and the users
// alice (may read private data) and carol (community-only).
func newStore(t testing.TB, evs []peba.Event) *duckdb.Store {
	t.Helper()
	st, err := duckdb.Open(filepath.Join(t.TempDir(), "peba.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	for _, u := range []struct {
		name, token   string
		communityOnly bool
	}{{"alice", aliceToken, false}, {"carol", carolToken, true}} {
		hash, err := auth.HashToken(u.token)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(ctx, &peba.User{Name: u.name, TokenHash: hash, CommunityOnly: u.communityOnly, Created: now}); err != nil {
			t.Fatal(err)
		}
	}
	if len(evs) > 0 {
		if _, err := st.AppendEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// fixtureEventsAll returns fixtureEvents as stored events.
func fixtureEventsAll() []peba.Event {
	evs := make([]peba.Event, len(fixtureEvents))
	for i, f := range fixtureEvents {
		evs[i] = mkEvent(f)
	}
	return evs
}

// server is the API over a store, on a real HTTP server, at the fixed
// clock now.
type server struct {
	*httptest.Server
	store *duckdb.Store
}

// newServer serves the API over st; events, if not nil, replaces the
// store as the event finder (to observe or interrupt an export).
func newServer(t testing.TB, st *duckdb.Store, events EventFinder) *server {
	t.Helper()
	if events == nil {
		events = st
	}
	authn := auth.New(auth.Credentials{User: communityUser, Token: communityToken}, st, auth.Options{})
	api := New(Options{Auth: authn, Sources: st, Events: events, Now: func() time.Time { return now }})
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &server{Server: srv, store: st}
}

// fixtureServer serves fixtureEvents.
func fixtureServer(t testing.TB) *server {
	return newServer(t, newStore(t, fixtureEventsAll()), nil)
}

// response is a finished request.
type response struct {
	status int
	header http.Header
	body   string
}

// get requests path (with query) as the reader whose Authorization header
// is authz ("" for anonymous), with extra header pairs.
func (s *server) get(t testing.TB, authz, path string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest("GET", s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// wantStatus fails unless r has status; for errors it also checks the
// JSON error body and that the message contains each of msgs.
func (r response) wantStatus(t testing.TB, what string, status int, msgs ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.status, status, r.body)
	}
	if status < 400 {
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: error Content-Type %q", what, ct)
	}
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
		t.Fatalf("%s: error body %q is not {\"error\": ...}", what, r.body)
	}
	for _, m := range msgs {
		if !strings.Contains(e.Error, m) {
			t.Errorf("%s: error %q does not mention %q", what, e.Error, m)
		}
	}
}
