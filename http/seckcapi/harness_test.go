package seckcapi

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/duckdb"
	"github.com/peba-go/peba/ews"
	"github.com/peba-go/peba/geoip"
	"github.com/peba-go/peba/hpfeeds"
	"github.com/peba-go/peba/hub"
	"github.com/peba-go/peba/ingest"
	"github.com/peba-go/peba/internal/testfixtures"
)

// The service "runs" at apiNow; the fixture events are received shortly
// before (and one the day before).
var (
	apiNow      = time.Date(2026, 11, 20, 14, 5, 0, 0, time.UTC)
	recvEWS     = time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	recvCowrie  = time.Date(2026, 11, 20, 14, 0, 0, 250000000, time.UTC)
	recvPrivate = time.Date(2026, 11, 20, 14, 1, 0, 0, time.UTC)
	recvDionaea = time.Date(2026, 11, 19, 10, 0, 0, 0, time.UTC)
)

const (
	communityUser  = "community-01-user"
	communityToken = "community-token"
	aliceToken     = "alice-secret"
	carolToken     = "carol-secret"
)

// Hpfeeds payloads as the honeypots publish them (seckc.md §7.2).
const (
	cowriePayload = `{"session":"a1b2c3d4e5f6","startTime":"2026-11-20T13:59:50.000000Z","endTime":"2026-11-20T13:59:59.000000Z",` +
		`"peerIP":"89.160.20.112","peerPort":51234,"hostIP":"216.160.83.56","hostPort":22,"loggedin":["root","123456"],` +
		`"credentials":[["root","123456"]],"commands":["uname -a"],"unknownCommands":[],"urls":[],"version":"SSH-2.0-Go","ttylog":null,"hashes":[],"protocol":"ssh"}`
	privatePayload = `{"session":"ffff0000","startTime":"2026-11-20T14:00:55.000000Z","endTime":"2026-11-20T14:00:58.000000Z",` +
		`"peerIP":"81.2.69.142","peerPort":40000,"hostIP":"216.160.83.58","hostPort":2222,"loggedin":["admin","hunter2"],` +
		`"credentials":[],"commands":[],"unknownCommands":[],"urls":[],"version":"SSH-2.0-libssh","ttylog":null,"hashes":[],"protocol":"ssh"}`
	dionaeaPayload = `{"connection_type":"accept","connection_transport":"tcp","connection_protocol":"smbd",` +
		`"remote_host":"81.2.69.142","remote_port":50112,"remote_hostname":"","local_host":"216.160.83.57","local_port":445}`
)

// fixture is a store filled through the real ingest path (ews.Decode and
// hpfeeds.Normalize -> ingest.Pipeline with GeoIP -> DuckDB), whose
// commits are published to a real hub. Read-only after filling.
type fixture struct {
	dir    string
	store  *duckdb.Store
	authn  *auth.Authenticator
	geo    *geoip.DB
	hub    *hub.Hub
	closed *duckdb.Store // a closed store: every query fails
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

// writeCityDB writes a GeoLite2-City database with full records (names in
// several languages, city, subdivisions), as the real one has.
func writeCityDB(t testing.TB, path string) error {
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-City", RecordSize: 28, IncludeReservedNetworks: true})
	if err != nil {
		return err
	}
	names := func(kv ...string) mmdbtype.Map {
		m := mmdbtype.Map{}
		for i := 0; i < len(kv); i += 2 {
			m[mmdbtype.String(kv[i])] = mmdbtype.String(kv[i+1])
		}
		return m
	}
	europe := mmdbtype.Map{"code": mmdbtype.String("EU"), "geoname_id": mmdbtype.Uint32(6255148), "names": names("en", "Europe")}
	for cidr, rec := range map[string]mmdbtype.Map{
		"89.160.20.0/24": {
			"city":      mmdbtype.Map{"geoname_id": mmdbtype.Uint32(2694762), "names": names("en", "Linköping", "ja", "リンシェーピング")},
			"continent": europe,
			"country":   mmdbtype.Map{"geoname_id": mmdbtype.Uint32(2661886), "iso_code": mmdbtype.String("SE"), "names": names("en", "Sweden", "ja", "スウェーデン")},
			"location":  mmdbtype.Map{"accuracy_radius": mmdbtype.Uint16(76), "latitude": mmdbtype.Float64(58.4167), "longitude": mmdbtype.Float64(15.6167), "time_zone": mmdbtype.String("Europe/Stockholm")},
			"subdivisions": mmdbtype.Slice{mmdbtype.Map{
				"geoname_id": mmdbtype.Uint32(2685867), "iso_code": mmdbtype.String("E"), "names": names("en", "Östergötland County"),
			}},
		},
		"81.2.69.0/24": {
			"continent": europe,
			"country":   mmdbtype.Map{"iso_code": mmdbtype.String("GB"), "names": names("en", "United Kingdom")},
			"location":  mmdbtype.Map{"latitude": mmdbtype.Float64(51.5142), "longitude": mmdbtype.Float64(-0.0931)},
		},
		"216.160.83.0/24": {
			"city":     mmdbtype.Map{"names": names("en", "Milton")},
			"country":  mmdbtype.Map{"iso_code": mmdbtype.String("US"), "names": names("en", "United States")},
			"location": mmdbtype.Map{"latitude": mmdbtype.Float64(47.2513), "longitude": mmdbtype.Float64(-122.3149)},
			"postal":   mmdbtype.Map{"code": mmdbtype.String("98354")},
		},
	} {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return err
		}
		if err := tree.Insert(n, rec); err != nil {
			return err
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func buildFixture(t *testing.T) (*fixture, string) {
	dir, err := os.MkdirTemp("", "seckcapi-fixture-")
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
		{Name: "alice", TokenHash: sha512Hex(aliceToken), Email: "alice@example.org"},
		{Name: "carol", TokenHash: sha512Hex(carolToken), CommunityOnly: true},
	} {
		if err := st.CreateUser(ctx, &u); err != nil {
			return nil, err.Error()
		}
	}
	cityPath := filepath.Join(dir, "city.mmdb")
	if err := writeCityDB(t, cityPath); err != nil {
		return nil, err.Error()
	}
	geo, err := geoip.Open(geoip.Config{CityPath: cityPath}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err.Error()
	}
	// The hub's clock stands still at apiNow: every event stays replayable.
	h := hub.New(hub.Options{Now: func() time.Time { return apiNow }})
	var mu sync.Mutex
	recv := recvEWS
	pipe := ingest.New(st, geo, nil, ingest.Options{
		Logger: slog.New(slog.DiscardHandler), OnCommit: h.Publish,
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return recv
		},
	})
	submit := func(at time.Time, d peba.Domain, evs []peba.Event) string {
		mu.Lock()
		recv = at
		mu.Unlock()
		if _, err := pipe.Submit(ctx, d, evs); err != nil {
			return err.Error()
		}
		return ""
	}
	hp := func(channel, ident, payload string, at time.Time) []peba.Event {
		evs, err := hpfeeds.Normalize(channel, ident, []byte(payload), at)
		if err != nil {
			t.Errorf("normalize %s: %v", channel, err)
		}
		return evs
	}
	b, err := ews.Decode(testfixtures.Read(t, "ewsposter", "0001.xml"), ews.Options{})
	if err != nil {
		return nil, err.Error()
	}
	// Submitted in receive order, as a live pipeline would see them.
	for _, s := range []string{
		submit(recvDionaea, peba.DomainCommunity, hp("dionaea.connections", "sensor-dionaea", dionaeaPayload, recvDionaea)),
		submit(recvEWS, peba.DomainCommunity, b.Events),
		submit(recvCowrie, peba.DomainCommunity, hp("cowrie.sessions", "4b7c1c1e-uuid", cowriePayload, recvCowrie)),
		submit(recvPrivate, peba.DomainPrivate, hp("cowrie.sessions", "private-sensor", privatePayload, recvPrivate)),
	} {
		if s != "" {
			return nil, s
		}
	}
	if err := pipe.Close(ctx); err != nil {
		return nil, err.Error()
	}
	closed, err := duckdb.Open(filepath.Join(dir, "closed.duckdb"), duckdb.Options{})
	if err != nil {
		return nil, err.Error()
	}
	closed.Close()
	authn := auth.New(auth.Credentials{User: communityUser, Token: communityToken}, st, auth.Options{})
	return &fixture{dir: dir, store: st, authn: authn, geo: geo, hub: h, closed: closed}, ""
}

// newTestAPI returns the routes over the fixture with the fixed clock;
// edit, if not nil, changes the options first.
func newTestAPI(t *testing.T, edit func(*Options)) http.Handler {
	f := getFixture(t)
	opt := Options{
		Auth: f.authn, Stats: f.store, Events: f.store, Geo: f.geo, Hub: f.hub,
		Now: func() time.Time { return apiNow }, Logger: slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&opt)
	}
	mux := http.NewServeMux()
	New(opt).Register(mux)
	return mux
}

// Credentials for the Authorization header.
var (
	alice     = "Bearer alice:" + aliceToken
	carol     = "Bearer carol:" + carolToken
	community = "Bearer " + communityUser + ":" + communityToken
)

// get requests target with the Authorization header auth ("" for none).
func get(h http.Handler, target, auth string) *httptest.ResponseRecorder {
	return do(h, http.MethodGet, target, map[string]string{"Authorization": auth})
}

func do(h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		if v != "" {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// expect checks status and exact body (with Flask's trailing newline).
func expect(t *testing.T, w *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if w.Code != status {
		t.Errorf("status %d, want %d (body %s)", w.Code, status, w.Body.String())
	}
	if strings.HasPrefix(body, `{"error":`) {
		// Error answers carry the documented envelope (seckc.md §2.4):
		// the status as "code" and the service clock as "timestamp".
		body = `{"code":` + strconv.Itoa(status) + "," + body[1:len(body)-1] + `,"timestamp":"` + apiNow.Format(time.RFC3339) + `"}`
	}
	if got := strings.TrimSuffix(w.Body.String(), "\n"); got != body {
		t.Errorf("body:\n got %s\nwant %s", got, body)
	}
	if !strings.HasSuffix(w.Body.String(), "\n") {
		t.Error("body lacks the trailing newline")
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		fix.geo.Close()
		fix.hub.Close()
		fix.store.Close()
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}
