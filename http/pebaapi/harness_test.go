package pebaapi

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/cache"
	"github.com/peba-go/peba/duckdb"
	"github.com/peba-go/peba/ews"
	"github.com/peba-go/peba/geoip"
	"github.com/peba-go/peba/geoip/geoiptest"
	"github.com/peba-go/peba/ingest"
	"github.com/peba-go/peba/internal/testfixtures"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// Fixed times of the fixture store: the ewsposter fixtures were created on
// 2026-11-20 (sensor clock), so the service "runs" shortly after.
var (
	apiNow       = time.Date(2026, 11, 20, 14, 5, 0, 0, time.UTC)
	recvToday    = time.Date(2026, 11, 20, 14, 0, 0, 0, time.UTC)
	recvPrivate  = time.Date(2026, 11, 20, 13, 30, 0, 0, time.UTC)
	recvYestrday = time.Date(2026, 11, 19, 10, 0, 0, 0, time.UTC)
)

const (
	communityUser  = "community-01-user"
	communityToken = "foth{a5maiCee8fineu7"
	aliceToken     = "alice-secret"
	carolToken     = "carol-secret"
)

// fixture is a store filled through the real ingest path (ews.Decode ->
// ingest.Pipeline with GeoIP -> DuckDB), shared by the tests of this
// package (it is read-only after filling).
type fixture struct {
	dir   string
	store *duckdb.Store
	authn *auth.Authenticator
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  string
)

func getFixture(t *testing.T) *fixture {
	t.Helper()
	fixOnce.Do(func() { fix, fixErr = buildFixture(t) })
	if fix == nil {
		t.Fatalf("fixture: %s", fixErr)
	}
	return fix
}

func sha512Hex(s string) string {
	sum := sha512.Sum512([]byte(s))
	return hex.EncodeToString(sum[:])
}

func buildFixture(t *testing.T) (*fixture, string) {
	dir, err := os.MkdirTemp("", "pebaapi-fixture-")
	if err != nil {
		return nil, err.Error()
	}
	st, err := duckdb.Open(filepath.Join(dir, "peba.duckdb"), duckdb.Options{})
	if err != nil {
		return nil, err.Error()
	}
	ctx := context.Background()
	// Legacy sha512 hashes keep the tests fast (argon2id is deliberately slow).
	for _, u := range []peba.User{
		{Name: "alice", TokenHash: sha512Hex(aliceToken)},
		{Name: "carol", TokenHash: sha512Hex(carolToken), CommunityOnly: true},
	} {
		if err := st.CreateUser(ctx, &u); err != nil {
			return nil, err.Error()
		}
	}
	geoCfg := geoiptest.Write(t, dir, []geoiptest.Record{
		{Network: "89.160.20.0/24", Country: "SE", CountryName: "Sweden", Lat: 58.4167, Lon: 15.6167, ASN: 29518, Org: "Bredband2 AB"},
		{Network: "81.2.69.0/24", Country: "GB", CountryName: "United Kingdom", Lat: 51.5142, Lon: -0.0931, ASN: 20712, Org: "Andrews & Arnold"},
		{Network: "2.125.160.0/24", Country: "GB", CountryName: "United Kingdom", Lat: 51.75, Lon: -1.25},
		{Network: "175.16.199.0/24", Country: "CN", CountryName: "China", Lat: 43.88, Lon: 125.3228},
		{Network: "67.43.156.0/24", Country: "BT", CountryName: "Bhutan", Lat: 27.5, Lon: 90.5},
		{Network: "216.160.83.0/24", Country: "US", CountryName: "United States", Lat: 47.2513, Lon: -122.3149},
	})
	geo, err := geoip.Open(geoCfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err.Error()
	}
	defer geo.Close()
	var mu sync.Mutex
	recv := recvToday
	pipe := ingest.New(st, geo, nil, ingest.Options{Logger: slog.New(slog.DiscardHandler), Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return recv
	}})
	submit := func(sub string, names []string, domain peba.Domain, at time.Time) string {
		mu.Lock()
		recv = at
		mu.Unlock()
		for _, name := range names {
			b, err := ews.Decode(testfixtures.Read(t, sub, name), ews.Options{})
			if err != nil {
				return name + ": " + err.Error()
			}
			if _, err := pipe.Submit(ctx, domain, b.Events); err != nil {
				return name + ": " + err.Error()
			}
		}
		return ""
	}
	var community []string
	for _, f := range testfixtures.Files(t, "ewsposter") {
		community = append(community, filepath.Base(f))
	}
	for _, s := range []string{
		submit("ewsposter", community, peba.DomainCommunity, recvToday),
		submit("peba-samples", []string{"heralding.xml", "alarmcowrie.xml"}, peba.DomainCommunity, recvYestrday),
		submit("peba-samples", []string{"alarmdionaea.xml", "glastopf.xml", "honeytrap.xml", "conpot.xml"}, peba.DomainPrivate, recvPrivate),
	} {
		if s != "" {
			return nil, s
		}
	}
	if err := pipe.Close(ctx); err != nil {
		return nil, err.Error()
	}
	authn := auth.New(auth.Credentials{User: communityUser, Token: communityToken}, st, auth.Options{})
	return &fixture{dir: dir, store: st, authn: authn}, ""
}

// newTestAPI returns the routes over the fixture store with the fixed
// clock; c nil disables the response cache.
func newTestAPI(t *testing.T, c cache.Cache) http.Handler {
	return newTestAPIStats(t, getFixture(t).store, c)
}

func newTestAPIStats(t *testing.T, stats peba.Stats, c cache.Cache) http.Handler {
	f := getFixture(t)
	a := New(Config{
		MaxBodyBytes: 1 << 20, MaxAlerts: 5, BadIPTimespan: 120,
		CORSDomain: "http://sicherheitstacho.eu", DefaultResponse: "Nope",
		Cache: c, Now: func() time.Time { return apiNow },
	}, f.authn, nil, f.store, stats, slog.New(slog.DiscardHandler), nil)
	mux := http.NewServeMux()
	a.Register(mux)
	return mux
}

// authBody is PEBA's XML credentials document (peba.md §2.2).
func authBody(user, token string) string {
	return `<EWS-SimpleMessage version="2.0"><Authentication><username>` + user +
		`</username><token>` + token + `</token></Authentication></EWS-SimpleMessage>`
}

type req struct {
	method, target, body string
	header               map[string]string
}

func do(h http.Handler, rq req) *httptest.ResponseRecorder {
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	r := httptest.NewRequest(rq.method, rq.target, body)
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// dump is a response as stored in a golden file: status, the headers a
// client depends on, a blank line, the exact body.
func dump(w *httptest.ResponseRecorder) []byte {
	var b bytes.Buffer
	b.WriteString(http.StatusText(w.Code) + " " + itoa(w.Code) + "\n")
	var names []string
	for _, k := range []string{"Content-Type", "Cache-Control", "Location", "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials"} {
		if w.Header().Get(k) != "" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString(k + ": " + w.Header().Get(k) + "\n")
	}
	b.WriteString("\n")
	b.Write(w.Body.Bytes())
	return b.Bytes()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".txt")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if fix != nil {
		fix.store.Close()
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}
