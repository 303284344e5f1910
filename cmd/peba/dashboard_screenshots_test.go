package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDashboardScreenshots regenerates docs/dashboard-desktop.png and
// docs/dashboard-mobile.png from a service with realistic data: 30 days of
// synthetic history (peba bench gen) and live attacks posted through the
// ingest path while the screenshots are taken. It runs only on request:
//
//	PEBA_DASHBOARD_SCREENSHOTS=1 go test ./cmd/peba -run TestDashboardScreenshots -v
func TestDashboardScreenshots(t *testing.T) {
	if os.Getenv("PEBA_DASHBOARD_SCREENSHOTS") == "" {
		t.Skip("set PEBA_DASHBOARD_SCREENSHOTS=1 to regenerate the dashboard screenshots in docs/")
	}
	node := needBrowser(t)
	dir := t.TempDir()
	pebaCmd(t, dir, "bench", "gen", "-events", "80000", "-days", "30")
	city := writeDBIPCity(t, t.TempDir())
	in := startServe(t, dir, "-geoip_city", city)
	out, err := filepath.Abs("../../docs")
	if err != nil {
		t.Fatal(err)
	}

	// Live traffic: about 60 attacks a second from around the world to
	// seven sensors, by honeypot type with its usual ports.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		attackers := []geoPlace{geoCN, geoCN, geoCN, geoUS, geoUS, geoUSW, geoRU, geoRU, geoBR, geoIN, geoVN, geoNL, geoKR, geoID, geoIR, geoMX, geoNG, geoTR, geoFR, geoAR, geoAU}
		sensors := []string{"87.150.238.182", "64.10.20.30", "133.1.2.3", "139.4.5.6", "197.7.8.9", "200.1.1.1", "87.151.1.1"}
		kinds := []struct {
			ident string
			ports []int
			urls  []string
		}{
			{"cowrie-01", []int{22, 23, 2222}, nil},
			{"cowrie-01", []int{22}, nil},
			{"dionaea-01", []int{445, 1433, 3306, 21}, nil},
			{"honeytrap-01", []int{8080, 5555, 2375, 443}, nil},
			{"tanner-01", []int{80}, []string{"/", "/wp-login.php", "/.env", "/cgi-bin/luci", "/phpmyadmin/", "/boaform/admin/formLogin"}},
			{"heralding-01", []int{21, 110, 5432}, nil},
			{"rdpy-01", []int{3389}, nil},
			{"conpot-01", []int{502, 102}, nil},
			{"elasticpot-01", []int{9200}, nil},
		}
		r := rand.New(rand.NewPCG(7, 11))
		port := 1024
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var batch []testAlert
			for range 10 + r.IntN(10) {
				k := kinds[r.IntN(len(kinds))]
				src := attackers[r.IntN(len(attackers))]
				a := testAlert{ident: k.ident, srcPort: port, dst: sensors[r.IntN(len(sensors))], dstPort: k.ports[r.IntN(len(k.ports))],
					src: fmt.Sprintf("%s.%d.%d.%d", strings.SplitN(src.network, ".", 2)[0], 1+r.IntN(250), r.IntN(250), 1+r.IntN(250))}
				if k.urls != nil {
					a.url = k.urls[r.IntN(len(k.urls))]
				}
				port++
				batch = append(batch, a)
			}
			// Not mustPost: t.Fatal must not be called from this goroutine.
			if status, got, _ := postEWS(t, in.base+"/ews-0.1/alert/postSimpleMessage", ewsBody("community-01-user", "foth{a5maiCee8fineu7", batch)); status != 200 {
				t.Errorf("post: HTTP %d %s", status, got)
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	runNode(t, node, "screenshots.mjs", map[string]any{"base": in.base, "out": out}, 3*time.Minute)
}
