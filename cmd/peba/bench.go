package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peba-go/peba/ews"
)

const benchUsage = `Usage:
  peba bench ingest [-url URL] [-clients 8] [-batch 100] [-duration 30s] [-user U -token T] [-decode-only]

Posts ewsposter-shaped EWS batches (unique alerts: nothing is de-duplicated away) to a running service
with N concurrent clients, each waiting for the answer before its next POST, as ewsposter does. Reports
alerts/s, POST latency percentiles and the server's peak RSS (from its /metrics). -decode-only measures
the same bodies through the EWS decoder in-process: the ceiling the end-to-end figure compares with.
`

func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "gen" {
		return runBenchGen(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "query" {
		return runBenchQuery(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "ingest" {
		fmt.Fprint(stderr, benchUsage+"\n"+benchGenUsage+"\n"+benchQueryUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:9922/ews-0.1/alert/postSimpleMessage", "ingest URL")
	clients := fs.Int("clients", 8, "concurrent clients")
	batch := fs.Int("batch", 100, "alerts per POST")
	duration := fs.Duration("duration", 30*time.Second, "how long to post")
	user := fs.String("user", "community-01-user", "EWS username")
	token := fs.String("token", "foth{a5maiCee8fineu7", "EWS token")
	decodeOnly := fs.Bool("decode-only", false, "measure the decoder in-process instead of posting")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
	rate := fs.Float64("rate", 0, "alerts per second to send, paced over all clients (0: as fast as answers come)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *clients < 1 || *batch < 1 || *duration <= 0 {
		return errors.New("clients, batch and duration must be positive")
	}
	gen := &bodyGen{user: *user, token: *token, batch: *batch, seed: *seed}
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	var (
		mu        sync.Mutex
		latencies []time.Duration
		alerts    atomic.Int64
		failures  atomic.Int64
		firstErr  atomic.Value
		wg        sync.WaitGroup
	)
	client := &http.Client{Timeout: 60 * time.Second}
	metricsURL := strings.Replace(*url, "/ews-0.1/alert/postSimpleMessage", "/metrics", 1)
	var peakRSS atomic.Int64
	if !*decodeOnly {
		go func() {
			for ctx.Err() == nil {
				if rss := scrapeRSS(client, metricsURL); rss > peakRSS.Load() {
					peakRSS.Store(rss)
				}
				time.Sleep(500 * time.Millisecond)
			}
		}()
	}
	start := time.Now()
	// With -rate, batch k goes at start + k*every: a fixed offered load,
	// so that runs of different servers are compared at the same rate.
	var sent atomic.Int64
	every := time.Duration(0)
	if *rate > 0 {
		every = time.Duration(float64(*batch) / *rate * float64(time.Second))
	}
	for c := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			var body []byte
			for ctx.Err() == nil {
				// A refused batch is sent again, as ewsposter resends what it
				// spooled: the run's alerts are each acknowledged once.
				if body == nil {
					if every > 0 {
						at := start.Add(time.Duration(sent.Add(1)-1) * every)
						select {
						case <-time.After(time.Until(at)):
						case <-ctx.Done():
						}
						if ctx.Err() != nil {
							break
						}
					}
					body = gen.next(c)
				}
				t := time.Now()
				var err error
				if *decodeOnly {
					var b *ews.Batch
					b, err = ews.Decode(body, ews.Options{})
					if err == nil && len(b.Events) != *batch {
						err = fmt.Errorf("decoded %d events, want %d", len(b.Events), *batch)
					}
				} else {
					err = post(client, *url, body)
				}
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				local = append(local, time.Since(t))
				alerts.Add(int64(*batch))
				body = nil
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	mode := "http"
	if *decodeOnly {
		mode = "decode-only"
	}
	fmt.Fprintf(stdout, "mode=%s clients=%d batch=%d duration=%s\n", mode, *clients, *batch, elapsed.Round(time.Millisecond))
	fmt.Fprintf(stdout, "alerts=%d alerts/s=%.0f posts=%d failures=%d\n", alerts.Load(), float64(alerts.Load())/elapsed.Seconds(), len(latencies), failures.Load())
	fmt.Fprintf(stdout, "latency p50=%s p90=%s p99=%s max=%s\n", pct(0.50), pct(0.90), pct(0.99), pct(1))
	if !*decodeOnly {
		fmt.Fprintf(stdout, "server peak RSS=%.1f MiB (sampled from /metrics every 0.5 s)\n", float64(peakRSS.Load())/(1<<20))
	}
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(stdout, "first error: %s\n", e)
	}
	return nil
}

func post(c *http.Client, url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("<StatusCode>OK</StatusCode>")) {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return nil
}

func scrapeRSS(c *http.Client, url string) int64 {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	return 0
}

// bodyGen writes EWS bodies shaped like ewsposter's (same elements, order and
// typical sizes as the fixtures) with unique alerts: the run's sequence
// number goes into the source port (see next), so no alert repeats.
type bodyGen struct {
	user, token string
	batch       int
	seed        uint64
	seq         atomic.Int64
}

var benchModules = []struct {
	id, desc, proto string
	port            int
}{
	{"cowrie-community-01", "SSH Honeypot Cowrie", "tcp", 22},
	{"dionaea-community-01", "Network Honeyport Dionaea v0.1.0", "tcp", 445},
	{"honeytrap-community-01", "NetworkHoneypot Honeytrap v1.1", "tcp", 80},
	{"heralding-community-01", "Heralding Honeypot", "tcp", 21},
	{"endlessh-community-01", "Endlessh Honeypot", "tcp", 22},
}

func (g *bodyGen) next(client int) []byte {
	n := g.seq.Add(1)
	r := rand.New(rand.NewPCG(g.seed, uint64(n)))
	// Built with appends, not fmt: the generator shares the machine with the
	// server under test, so its own CPU cost must stay small.
	b := make([]byte, 0, g.batch*760+256)
	b = append(b, `<EWS-SimpleMessage version="3.0"><Authentication><username>`...)
	b = appendEscaped(b, g.user)
	b = append(b, `</username><token>`...)
	b = appendEscaped(b, g.token)
	b = append(b, `</token></Authentication>`...)
	// Create times are the sending time, as ewsposter's are minutes at
	// most before it posts: a fixed past date would make every event late
	// for the created-time buckets (which the stores treat as a rare,
	// costlier case). Alerts stay unique through the source port, the
	// alert's position in the whole run modulo 64,000: two alerts of one
	// second never share it below 64,000 alerts/s.
	base := time.Now().UTC().Truncate(time.Second)
	m := benchModules[int(n)%len(benchModules)]
	for i := range g.batch {
		b = append(b, `<Alert><Analyzer id="`...)
		b = append(b, m.id...)
		b = append(b, `"/><CreateTime tz="+0000">`...)
		b = base.Add(time.Duration(i)*time.Millisecond).AppendFormat(b, "2006-01-02 15:04:05")
		b = append(b, `</CreateTime><Source category="ipv4" port="`...)
		b = strconv.AppendInt(b, 1024+(n*int64(g.batch)+int64(i))%64000, 10)
		b = append(b, `" protocol="`...)
		b = append(b, m.proto...)
		b = append(b, `">`...)
		// Zipf-like source addresses: a few hot ones, a long tail.
		if r.IntN(10) < 3 {
			b = appendIPv4(b, 45, 10+r.IntN(3), r.IntN(4), 1+r.IntN(5))
		} else {
			b = appendIPv4(b, 1+r.IntN(222), r.IntN(256), r.IntN(256), 1+r.IntN(254))
		}
		b = append(b, `</Source><Target category="ipv4" port="`...)
		b = strconv.AppendInt(b, int64(m.port), 10)
		b = append(b, `" protocol="`...)
		b = append(b, m.proto...)
		b = append(b, `">81.2.69.142</Target><Request type="description">`...)
		b = append(b, m.desc...)
		b = append(b, `</Request>`...)
		if m.port == 22 || m.port == 21 {
			b = append(b, `<AdditionalData type="string" meaning="username">root</AdditionalData><AdditionalData type="string" meaning="password">pass`...)
			b = strconv.AppendInt(b, int64(r.IntN(1000)), 10)
			b = append(b, `</AdditionalData><AdditionalData type="string" meaning="login">Fail</AdditionalData>`...)
		}
		b = append(b, `<AdditionalData type="string" meaning="sessionid">`...)
		b = strconv.AppendInt(b, n, 16)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `</AdditionalData><AdditionalData type="string" meaning="hostname">ews-bench</AdditionalData>`+
			`<AdditionalData type="string" meaning="externalIP">81.2.69.142</AdditionalData>`+
			`<AdditionalData type="string" meaning="internalIP">10.10.0.5</AdditionalData>`+
			`<AdditionalData type="string" meaning="uuid">6f1c2a7e-5b3d-4c8e-9a0f-0e5a4a2e55`...)
		b = strconv.AppendInt(b, int64(client%100), 10)
		b = append(b, `</AdditionalData></Alert>`...)
	}
	return append(b, `</EWS-SimpleMessage>`...)
}

func appendIPv4(b []byte, a, c, d, e int) []byte {
	for i, o := range [4]int{a, c, d, e} {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendInt(b, int64(o), 10)
	}
	return b
}

func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		default:
			b = append(b, s[i])
		}
	}
	return b
}
