package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestDashboardRouting: `peba serve` serves the dashboard at / by default
// (PEBA's handler keeps the other methods of /), and PEBA's redirect of /
// to CORSDOMAIN comes back with DASHBOARDPATH elsewhere or DASHBOARD=off.
func TestDashboardRouting(t *testing.T) {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, url string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	isPage := func(resp *http.Response, body string) bool {
		return resp.StatusCode == 200 && strings.Contains(body, "<title>peba") && resp.Header.Get("Content-Security-Policy") != ""
	}
	isPEBARedirect := func(resp *http.Response) bool {
		return resp.StatusCode == http.StatusFound && resp.Header.Get("Location") == "http://sicherheitstacho.eu"
	}

	in := startServe(t, t.TempDir())
	if resp, body := do("GET", in.base+"/"); !isPage(resp, body) {
		t.Errorf("default GET /: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, _ := do("POST", in.base+"/"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("default POST /: %d, want PEBA's 405", resp.StatusCode)
	}
	in.stop()

	in = startServe(t, t.TempDir(), "-dashboardpath", "/dashboard/")
	if resp, _ := do("GET", in.base+"/"); !isPEBARedirect(resp) {
		t.Errorf("DASHBOARDPATH=/dashboard/: GET / is %d %q, want PEBA's redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := do("GET", in.base+"/dashboard/"); !isPage(resp, body) {
		t.Errorf("GET /dashboard/: %d", resp.StatusCode)
	}
	in.stop()

	in = startServe(t, t.TempDir(), "-dashboard", "off")
	if resp, _ := do("GET", in.base+"/"); !isPEBARedirect(resp) {
		t.Errorf("DASHBOARD=off: GET / is %d, want PEBA's redirect", resp.StatusCode)
	}
	if resp, _ := do("GET", in.base+"/assets/"); resp.StatusCode != 404 {
		t.Errorf("DASHBOARD=off: /assets/ is %d", resp.StatusCode)
	}
}
