package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/peba-go/peba/geoip/geoiptest"
)

func runOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, env(nil), strings.NewReader(""), &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestCheckAgainstRunningInstance runs `peba check` against a real server,
// as community and as a registered user, and against a broken "server".
func TestCheckAgainstRunningInstance(t *testing.T) {
	dir := t.TempDir()
	pebaCmd(t, dir, "user", "add", "alice", "--token", "alice-check-token")
	in := startServe(t, dir)

	out, err := runOut(t, "check", in.base, "-timeout", "10s")
	if err != nil {
		t.Fatalf("community check failed: %v\n%s", err, out)
	}
	for _, want := range []string{"PASS  GET /healthz", "PASS  GET /alert/heartbeat", "PASS  POST EWS batch", "PASS  live feed", "PASS  read back /stats/attacker/IP", "SKIP  private endpoints", "5 passed, 0 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("community report lacks %q:\n%s", want, out)
		}
	}
	out, err = runOut(t, "check", in.base, "--user", "alice", "--token", "alice-check-token", "-timeout", "10s")
	if err != nil {
		t.Fatalf("private check failed: %v\n%s", err, out)
	}
	for _, want := range []string{"PASS  private data hidden from anonymous", "PASS  read back POST /alert/querySingleIP", "7 passed, 0 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("private report lacks %q:\n%s", want, out)
		}
	}
	// Wrong credentials: the post is refused, the check fails.
	out, err = runOut(t, "check", in.base, "--user", "alice", "--token", "wrong", "-timeout", "1s")
	if err == nil || !strings.Contains(out, "FAIL  POST EWS batch") {
		t.Errorf("bad credentials passed: %v\n%s", err, out)
	}

	if out, err := runOut(t, "health", in.base+"/healthz"); err != nil || out != "ok\n" {
		t.Errorf("health: %v %q", err, out)
	}
}

func TestCheckFailsOnBrokenServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusNotFound)
	}))
	defer srv.Close()
	out, err := runOut(t, "check", srv.URL, "-timeout", "500ms")
	if err == nil || !strings.Contains(out, "FAIL  GET /healthz") || !strings.Contains(out, "0 passed") {
		t.Errorf("broken server passed: %v\n%s", err, out)
	}
	if _, err := runOut(t, "health", srv.URL); err == nil {
		t.Error("health passed on a 404")
	}
	if _, err := runOut(t, "check"); err == nil {
		t.Error("check without URL accepted")
	}
}

func TestGeoIPCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := geoiptest.Write(t, dir, []geoiptest.Record{
		{Network: "89.160.20.0/24", Country: "SE", CountryName: "Sweden", Lat: 58.4167, Lon: 15.6167, ASN: 29518, Org: "Bredband2 AB"},
	})
	flags := []string{"-geoip_city", cfg.CityPath, "-geoip_country", cfg.CountryPath, "-geoip_asn", cfg.ASNPath}
	out, err := runOut(t, append([]string{"geoip", "info"}, flags...)...)
	if err != nil || strings.Count(out, "built ") != 3 || strings.Contains(out, "NOT LOADED") {
		t.Errorf("info: %v\n%s", err, out)
	}
	out, err = runOut(t, append([]string{"geoip", "lookup", "89.160.20.112"}, flags...)...)
	if err != nil || !strings.Contains(out, "country       SE (Sweden)") || !strings.Contains(out, "AS29518 Bredband2 AB") ||
		!strings.Contains(out, "89.160.20.0/24") {
		t.Errorf("lookup: %v\n%s", err, out)
	}
	out, err = runOut(t, append([]string{"geoip", "lookup", "10.1.2.3"}, flags...)...)
	if err != nil || !strings.Contains(out, "private range true") || !strings.Contains(out, "PIR") {
		t.Errorf("private lookup: %v\n%s", err, out)
	}
	if out, err := runOut(t, "geoip", "info"); err != nil || !strings.Contains(out, "no database loaded") {
		t.Errorf("info without databases: %v\n%s", err, out)
	}
	if _, err := runOut(t, "geoip", "lookup", "not-an-ip"); err == nil {
		t.Error("bad address accepted")
	}
}
