package pebaapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/cache"
	"github.com/peba-go/peba/duckdb"
	"github.com/peba-go/peba/http/clientip"
	"github.com/peba-go/peba/ingest"
	"github.com/peba-go/peba/ratelimit"
)

// opsAPI is a fresh store behind the real ingest pipeline (no journal:
// Submit returns after the store commit) and the PEBA routes.
type opsAPI struct {
	store *duckdb.Store
	h     http.Handler
}

func newOpsAPI(t *testing.T, mod func(*Config)) *opsAPI {
	t.Helper()
	st, err := duckdb.Open(filepath.Join(t.TempDir(), "peba.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	pipe := ingest.New(st, nil, nil, ingest.Options{Logger: log})
	t.Cleanup(func() { pipe.Close(context.Background()) })
	cfg := Config{MaxBodyBytes: 1 << 20, MaxAlerts: 5, BadIPTimespan: 120, CORSDomain: "http://x", DefaultResponse: "Nope"}
	if mod != nil {
		mod(&cfg)
	}
	authn := auth.New(auth.Credentials{User: communityUser, Token: communityToken}, st, auth.Options{})
	a := New(cfg, authn, pipe, st, st, log, nil)
	mux := http.NewServeMux()
	a.Register(mux)
	return &opsAPI{store: st, h: mux}
}

// ewsBatch is an EWS body with n alerts from sensor ident, unique per seq.
func ewsBatch(user, ident string, seq, n int) string {
	var b strings.Builder
	b.WriteString(`<EWS-SimpleMessage version="3.0"><Authentication><username>` + user + `</username><token>` + communityToken + `</token></Authentication>`)
	for i := range n {
		fmt.Fprintf(&b, `<Alert><Analyzer id="%s"/><CreateTime tz="+0000">2026-11-20 10:%02d:%02d</CreateTime>`+
			`<Source category="ipv4" port="%d" protocol="tcp">198.51.100.%d</Source>`+
			`<Target category="ipv4" port="22" protocol="tcp">192.0.2.1</Target>`+
			`<Request type="description">SSH Honeypot</Request></Alert>`, ident, seq%60, i%60, 1024+seq*100+i, 1+i%250)
	}
	b.WriteString(`</EWS-SimpleMessage>`)
	return b.String()
}

func postEWS(h http.Handler, body, remote string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/ews-0.1/alert/postSimpleMessage", strings.NewReader(body))
	r.RemoteAddr = remote
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func countEvents(t *testing.T, st *duckdb.Store) int64 {
	t.Helper()
	_, n, err := st.FindEvents(context.Background(), peba.EventFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRateLimitNothingLost posts like ewsposter does: a refused batch is
// resent after Retry-After until accepted. Every alert must end up stored,
// and refusals must carry 429, Retry-After and a Result body.
func TestRateLimitNothingLost(t *testing.T) {
	now := time.Unix(1e9, 0)
	clock := func() time.Time { return now }
	api := newOpsAPI(t, func(c *Config) {
		c.Limits.PerAddress = ratelimit.New(100, 150, 1000, clock) // alerts/s per address
		c.Limits.PerSensor = ratelimit.New(60, 60, 1000, clock)
	})
	const batches, per = 12, 50
	refused := 0
	for seq := range batches {
		for attempt := 0; ; attempt++ {
			if attempt > 20 {
				t.Fatalf("batch %d never accepted", seq)
			}
			w := postEWS(api.h, ewsBatch(communityUser, "sensor-"+strconv.Itoa(seq%2), seq, per), "203.0.113.9:4711", nil)
			if w.Code == http.StatusOK {
				if !strings.Contains(w.Body.String(), "<StatusCode>OK</StatusCode>") {
					t.Fatalf("200 without OK: %s", w.Body)
				}
				break
			}
			refused++
			if w.Code != http.StatusTooManyRequests {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if !strings.Contains(w.Body.String(), "<StatusCode>Error</StatusCode>") || !strings.Contains(w.Body.String(), "rate limit exceeded") {
				t.Fatalf("429 body %s", w.Body)
			}
			secs, err := strconv.Atoi(w.Header().Get("Retry-After"))
			if err != nil || secs < 1 || secs > 5 {
				t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
			}
			now = now.Add(time.Duration(secs) * time.Second)
		}
	}
	if refused == 0 {
		t.Fatal("the limit never applied: the test proves nothing")
	}
	if n := countEvents(t, api.store); n != batches*per {
		t.Fatalf("%d events stored, want %d (refused %d times)", n, batches*per, refused)
	}
	// Another address is not affected by the first one's debt.
	w := postEWS(api.h, ewsBatch(communityUser, "sensor-x", 99, 10), "203.0.113.10:1", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("other address: %d %s", w.Code, w.Body)
	}
}

func TestRateLimitPerUserAndTrustedProxy(t *testing.T) {
	now := time.Unix(1e9, 0)
	clock := func() time.Time { return now }
	trusted, _ := clientip.ParsePrefixes("10.0.0.0/8")
	api := newOpsAPI(t, func(c *Config) {
		c.Limits.PerAddress = ratelimit.New(10, 10, 1000, clock)
		c.Limits.PerUser = ratelimit.New(1, 100, 1000, clock) // 100 alerts, then 1/s
		c.Limits.ClientIP = clientip.New(trusted)
	})
	// Behind the trusted proxy each client has its own address bucket.
	for i := range 5 {
		xff := map[string]string{"X-Forwarded-For": "198.51.100." + strconv.Itoa(i)}
		if w := postEWS(api.h, ewsBatch(communityUser, "s", i, 10), "10.0.0.1:80", xff); w.Code != 200 {
			t.Fatalf("client %d behind proxy: %d %s", i, w.Code, w.Body)
		}
	}
	// ... and a client's debt is refused before its body is read.
	xff := map[string]string{"X-Forwarded-For": "198.51.100.0"}
	if w := postEWS(api.h, "not even XML", "10.0.0.1:80", xff); w.Code != http.StatusTooManyRequests {
		t.Fatalf("indebted address: %d %s", w.Code, w.Body)
	}
	// An untrusted peer's X-Forwarded-For is ignored: its own address counts.
	if w := postEWS(api.h, ewsBatch(communityUser, "s", 10, 10), "203.0.113.1:80", xff); w.Code != 200 {
		t.Fatalf("untrusted peer: %d", w.Code)
	}
	if w := postEWS(api.h, ewsBatch(communityUser, "s", 11, 10), "203.0.113.1:80", map[string]string{"X-Forwarded-For": "198.51.100.77"}); w.Code != http.StatusTooManyRequests {
		t.Fatalf("spoofed X-Forwarded-For escaped the limit: %d", w.Code)
	}
	// The user limit: the community user's budget is shared by addresses.
	now = now.Add(time.Hour)
	stored := 0
	for i := range 30 {
		w := postEWS(api.h, ewsBatch(communityUser, "s", 100+i, 10), "198.51.100."+strconv.Itoa(i)+":1", nil)
		if w.Code == http.StatusOK {
			stored++
		} else if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "for this user") {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	if stored != 10 {
		t.Fatalf("user limit let %d batches of 10 through, want 10 (burst 100)", stored)
	}
}

func TestBlockLists(t *testing.T) {
	api := newOpsAPI(t, func(c *Config) {
		c.Limits.Blocked = map[string]bool{"bad-sensor": true, "mallory": true}
		c.Limits.BlockedAddresses, _ = clientip.ParsePrefixes("192.0.2.0/24,2001:db8::/32")
	})
	for _, c := range []struct {
		body, remote, text string
	}{
		{ewsBatch(communityUser, "ok", 1, 1), "192.0.2.55:1", "this source address is blocked"},
		{"garbage", "[2001:db8::1]:1", "this source address is blocked"},
		{ewsBatch(communityUser, "bad-sensor", 2, 3), "198.51.100.1:1", `sensor "bad-sensor" is blocked`},
	} {
		w := postEWS(api.h, c.body, c.remote, nil)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "<StatusCode>Error</StatusCode><Text>"+c.text) {
			t.Errorf("%s: %d %s", c.remote, w.Code, w.Body)
		}
	}
	if n := countEvents(t, api.store); n != 0 {
		t.Fatalf("blocked batches stored %d events", n)
	}
	if w := postEWS(api.h, ewsBatch(communityUser, "good", 3, 2), "198.51.100.1:1", nil); w.Code != 200 {
		t.Fatalf("unblocked sensor refused: %d %s", w.Code, w.Body)
	}
}

// startMemcached runs a real memcached on a free loopback port, or skips;
// stop kills it.
func startMemcached(t *testing.T) (addr string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		t.Skip("memcached not installed (apt-get install -y memcached)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "16", "-u", "nobody")
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start memcached: %v", err)
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	t.Cleanup(stop)
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("memcached did not start")
	return "", nil
}

func heartbeat(t *testing.T, h http.Handler, wantStatus int, want string) {
	t.Helper()
	r := httptest.NewRequest("GET", "/alert/heartbeat", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	body, _ := io.ReadAll(w.Body)
	if w.Code != wantStatus || string(body) != want {
		t.Errorf("/alert/heartbeat: %d %q, want %d %q", w.Code, body, wantStatus, want)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Error("heartbeat may be cached")
	}
}

// TestAlertHeartbeat drives /alert/heartbeat through every backend state
// with a real memcached and a real store.
func TestAlertHeartbeat(t *testing.T) {
	mcAddr, stopMC := startMemcached(t)
	mc, err := cache.NewMemcached("hb:", mcAddr)
	if err != nil {
		t.Fatal(err)
	}
	withMC := func(c *Config) { c.Cache = mc; c.CacheHealth = mc.Ping }

	a := newOpsAPI(t, withMC)
	heartbeat(t, a.h, 200, "me")
	b := newOpsAPI(t, withMC)
	b.store.Close()
	heartbeat(t, b.h, 503, "m") // only memcached answers
	stopMC()
	heartbeat(t, a.h, 503, "e") // only the store answers
	heartbeat(t, b.h, 503, "flatline")

	// Without memcached the in-process cache cannot fail.
	c := newOpsAPI(t, nil)
	heartbeat(t, c.h, 200, "me")
	// PEBA's /heartbeat is unchanged.
	r := httptest.NewRequest("GET", "/heartbeat", nil)
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	if w.Code != 200 || w.Body.String() != "I'm alive" {
		t.Errorf("/heartbeat: %d %q", w.Code, w.Body)
	}
}
