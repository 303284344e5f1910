package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

const benchQueryUsage = `Usage:
  peba bench query [-base http://127.0.0.1:9922] [-n 50] [-user U -token T] [-ip A.B.C.D]

Requests every PEBA statistics endpoint N times, one request at a time, and prints p50/p99 latency per
endpoint. Run the server with -responsecache off to measure the store, or on to measure cache hits.
-user/-token (a registered user) enable the authenticated POST endpoints. -ip is an address without events
in data from bench gen; querySingleIP is also asked for a frequent and an infrequent source of that data.
The machine's load average is printed first: the figures are only comparable at a similar load.
`

type benchReq struct {
	name, method, path string
	auth               bool
}

func benchRequests(ip string) []benchReq {
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Format("20060102")
	return []benchReq{
		{"retrieveAlertsCount?time=10", "GET", "/alert/retrieveAlertsCount?time=10", false},
		{"retrieveAlertsCount?time=day&out=json", "GET", "/alert/retrieveAlertsCount?time=day&out=json", false},
		{"retrieveAlertsCountWithType?time=1", "GET", "/alert/retrieveAlertsCountWithType?time=1", false},
		{"retrieveAlertsJson", "GET", "/alert/retrieveAlertsJson", false},
		{"retrieveAlertStats", "GET", "/alert/retrieveAlertStats", false},
		{"datasetAlertsPerMonth", "GET", "/alert/datasetAlertsPerMonth", false},
		{"datasetAlertTypesPerMonth", "GET", "/alert/datasetAlertTypesPerMonth", false},
		{"topCountriesAttacks", "GET", "/alert/topCountriesAttacks", false},
		{"retrieveLatLonAttacks?direction=src", "GET", "/alert/retrieveLatLonAttacks?direction=src", false},
		{"retrieveLatLonAttacks?direction=dst", "GET", "/alert/retrieveLatLonAttacks?direction=dst", false},
		{"TpotStats?day=yesterday", "GET", "/alert/TpotStats?day=" + yesterday, false},
		{"getStats", "GET", "/alert/getStats?values=SSH/console(cowrie),Network(Dionaea)", false},
		{"tops?type=urls&days=1", "GET", "/alert/tops?type=urls&days=1", false},
		{"tops?type=destports&days=7", "GET", "/alert/tops?type=destports&days=7", false},
		{"tops?type=destports&days=28", "GET", "/alert/tops?type=destports&days=28", false},
		{"retrieveIPs", "POST", "/alert/retrieveIPs", true},
		{"retrieveIPs15m", "POST", "/alert/retrieveIPs15m", true},
		{"retrieveAlertsCyber", "POST", "/alert/retrieveAlertsCyber", true},
		{"querySingleIP", "POST", "/alert/querySingleIP?ip=" + ip, true},
		// Sources of the generated data (bench gen): the most frequent one,
		// and one with a few events spread over the days.
		{"querySingleIP?ip=hot", "POST", "/alert/querySingleIP?ip=" + genSrcAddr(0).String(), true},
		{"querySingleIP?ip=cold", "POST", "/alert/querySingleIP?ip=" + genSrcAddr(20_000).String(), true},
		{"heartbeat", "GET", "/heartbeat", false},
	}
}

func runBenchQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("base", "http://127.0.0.1:9922", "server base URL")
	n := fs.Int("n", 50, "requests per endpoint")
	user := fs.String("user", "", "registered user for the POST endpoints")
	token := fs.String("token", "", "its token")
	ip := fs.String("ip", "47.227.115.99", "address for querySingleIP")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return errors.New("-n must be positive")
	}
	client := &http.Client{Timeout: 60 * time.Second}
	authBody := `<EWS-SimpleMessage version="2.0"><Authentication><username>` + string(appendEscaped(nil, *user)) +
		`</username><token>` + string(appendEscaped(nil, *token)) + `</token></Authentication></EWS-SimpleMessage>`
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(stdout, "load average: %s\n", strings.Join(strings.Fields(string(b))[:3], " "))
	}
	fmt.Fprintf(stdout, "| endpoint | p50 ms | p99 ms | max ms | status | bytes |\n|---|---|---|---|---|---|\n")
	for _, q := range benchRequests(*ip) {
		if q.auth && *user == "" {
			continue
		}
		var lat []time.Duration
		status, size := 0, 0
		for range *n {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var body io.Reader
			if q.method == "POST" {
				body = strings.NewReader(authBody)
			}
			req, err := http.NewRequestWithContext(ctx, q.method, *base+q.path, body)
			if err != nil {
				return err
			}
			t := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			lat = append(lat, time.Since(t))
			status, size = resp.StatusCode, len(b)
		}
		slices.Sort(lat)
		ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }
		p99 := lat[min(len(lat)-1, len(lat)*99/100)]
		fmt.Fprintf(stdout, "| %s | %s | %s | %s | %d | %d |\n", q.name, ms(lat[len(lat)/2]), ms(p99), ms(lat[len(lat)-1]), status, size)
	}
	return nil
}
