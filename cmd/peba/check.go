package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/peba-go/peba/config"
)

// runCheck is `peba check URL [--user U --token T]`: a functional smoke test
// of a running instance, what PEBA's test-putService.sh and
// test-getService.sh did (peba.md §11). It posts a small EWS batch of
// unique alerts, reads it back through the public and (with credentials)
// private endpoints, watches it arrive on the live feed, prints one
// PASS/FAIL line per step and fails if any step failed.
//
// Without --user the batch is community data (COMMUNITYUSER/TOKEN) and
// shows up in public statistics: 3 alerts from one random 6.0.0.0/8
// address, peerType "peba-check". With --user it is that user's private
// data, and the check also proves it is not visible anonymously.
func runCheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var user, token string
	var timeout time.Duration
	cfg, fs, err := config.Load("check", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&user, "user", "", "registered user: post private data and check the private endpoints")
		fs.StringVar(&token, "token", "", "token of --user")
		fs.DurationVar(&timeout, "timeout", 20*time.Second, "how long to wait for the batch to be readable")
	})
	if err != nil {
		return err
	}
	if fs.NArg() != 1 || (user == "") != (token == "") {
		fmt.Fprintln(stderr, "usage: peba check URL [--user U --token T] [--timeout 20s]")
		return errUsage
	}
	c := &checker{
		base: strings.TrimRight(fs.Arg(0), "/"), out: stdout,
		http: &http.Client{Timeout: 10 * time.Second}, timeout: timeout,
		user: user, token: token, private: user != "",
	}
	if !c.private {
		c.user, c.token = cfg.CommunityUser, cfg.CommunityToken
	}
	return c.run(ctx)
}

type checker struct {
	base, user, token string
	private           bool
	http              *http.Client
	timeout           time.Duration
	out               io.Writer
	failed, passed    int
}

// checkAlerts is the number of alerts in the test batch.
const checkAlerts = 3

func (c *checker) report(name string, start time.Time, err error) {
	d := time.Since(start).Round(time.Millisecond)
	if err != nil {
		c.failed++
		fmt.Fprintf(c.out, "FAIL  %-34s %v (%v)\n", name, err, d)
		return
	}
	c.passed++
	fmt.Fprintf(c.out, "PASS  %-34s (%v)\n", name, d)
}

func (c *checker) run(ctx context.Context) error {
	fmt.Fprintf(c.out, "peba check %s (as %s, %s data)\n", c.base, c.user, map[bool]string{true: "private", false: "community"}[c.private])
	t := time.Now()
	c.report("GET /healthz", t, c.expectBody(ctx, "GET", "/healthz", nil, "", 200, ""))
	t = time.Now()
	c.report("GET /alert/heartbeat", t, c.expectBody(ctx, "GET", "/alert/heartbeat", nil, "", 200, "me"))

	src := randomSource()
	// The feed is subscribed before the post so the live event cannot be
	// missed (the replay would also carry it).
	feedCtx, stopFeed := context.WithTimeout(ctx, c.timeout)
	defer stopFeed()
	feed := make(chan error, 1)
	feedReady := make(chan struct{})
	go func() { feed <- c.watchFeed(feedCtx, src, sync.OnceFunc(func() { close(feedReady) })) }()
	select {
	case <-feedReady:
	case <-feedCtx.Done():
	}

	t = time.Now()
	c.report("POST EWS batch ("+strconv.Itoa(checkAlerts)+" alerts)", t, c.expectBody(ctx, "POST", "/ews-0.1/alert/postSimpleMessage",
		strings.NewReader(checkBatch(c.user, c.token, src)), "", 200, "<StatusCode>OK</StatusCode>"))

	t = time.Now()
	c.report("live feed /api/v1/events/stream", t, <-feed)

	auth := ""
	if c.private {
		auth = "Bearer " + c.user + ":" + c.token
	}
	t = time.Now()
	c.report("read back /stats/attacker/IP", t, c.poll(ctx, func() error { return c.attackerCount(ctx, src, auth, checkAlerts) }))
	if c.private {
		t = time.Now()
		c.report("private data hidden from anonymous", t, c.attackerCount(ctx, src, "", 0))
		t = time.Now()
		body := `<EWS-SimpleMessage version="3.0"><Authentication><username>` + xmlEscape(c.user) + `</username><token>` +
			xmlEscape(c.token) + `</token></Authentication></EWS-SimpleMessage>`
		c.report("read back POST /alert/querySingleIP", t, c.querySingleIP(ctx, src, body))
	} else {
		fmt.Fprintf(c.out, "SKIP  %-34s (needs --user and --token)\n", "private endpoints")
	}
	fmt.Fprintf(c.out, "%d passed, %d failed\n", c.passed, c.failed)
	if c.failed > 0 {
		return fmt.Errorf("check failed: %d of %d steps", c.failed, c.failed+c.passed)
	}
	return nil
}

// poll retries fn until it succeeds or the timeout ends: ingest
// acknowledges after the journal append and applies to the store behind it.
func (c *checker) poll(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(c.timeout)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *checker) do(ctx context.Context, method, path string, body io.Reader, auth string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot build request: %w", err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/xml")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

func (c *checker) expectBody(ctx context.Context, method, path string, body io.Reader, auth string, status int, contains string) error {
	code, b, err := c.do(ctx, method, path, body, auth)
	if err != nil {
		return err
	}
	if code != status || !strings.Contains(string(b), contains) {
		return fmt.Errorf("HTTP %d %q, want %d containing %q", code, clipBody(b), status, contains)
	}
	return nil
}

func (c *checker) attackerCount(ctx context.Context, src netip.Addr, auth string, want int64) error {
	code, b, err := c.do(ctx, "GET", "/stats/attacker/"+src.String()+"?hours_ago=1", nil, auth)
	if err != nil {
		return err
	}
	var st struct {
		Data struct {
			Count int64 `json:"count"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal(b, &st) != nil {
		return fmt.Errorf("HTTP %d %q", code, clipBody(b))
	}
	if st.Data.Count != want {
		return fmt.Errorf("count %d, want %d", st.Data.Count, want)
	}
	return nil
}

// querySingleIP expects the test batch's alerts in PEBA's private answer
// (MAXALERTS, default 5, bounds it; the batch has 3).
func (c *checker) querySingleIP(ctx context.Context, src netip.Addr, body string) error {
	code, b, err := c.do(ctx, "POST", "/alert/querySingleIP?ci=0&ip="+src.String(), strings.NewReader(body), "")
	if err != nil {
		return err
	}
	if n := strings.Count(string(b), "<Alert>"); code != 200 || n != checkAlerts {
		return fmt.Errorf("HTTP %d with %d alerts, want %d: %q", code, n, checkAlerts, clipBody(b))
	}
	return nil
}

// watchFeed reads the SSE stream until an event from src arrives.
// ready is called once the stream is open, or when it failed to open.
func (c *checker) watchFeed(ctx context.Context, src netip.Addr, ready func()) error {
	defer ready()
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/api/v1/events/stream", nil)
	if err != nil {
		return fmt.Errorf("cannot build request: %w", err)
	}
	if c.private {
		req.Header.Set("Authorization", "Bearer "+c.user+":"+c.token)
	}
	// No client timeout: the stream stays open; ctx bounds it.
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	ready()
	want := `"src_ip":"` + src.String() + `"`
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data:") && strings.Contains(line, want) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return errors.New("no event from the test batch within the timeout")
	}
	return fmt.Errorf("stream ended: %v", sc.Err())
}

// randomSource is a random global address in 6.0.0.0/8, unique per run so
// read-backs find only this run's alerts.
func randomSource() netip.Addr {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return netip.AddrFrom4([4]byte{6, b[0], b[1], b[2]%254 + 1})
}

func checkBatch(user, token string, src netip.Addr) string {
	var b strings.Builder
	b.WriteString(`<EWS-SimpleMessage version="3.0"><Authentication><username>` + xmlEscape(user) +
		`</username><token>` + xmlEscape(token) + `</token></Authentication>`)
	now := time.Now().UTC()
	for i := range checkAlerts {
		fmt.Fprintf(&b, `<Alert><Analyzer id="peba-check"/><CreateTime tz="+0000">%s</CreateTime>`+
			`<Source category="ipv4" port="%d" protocol="tcp">%s</Source>`+
			`<Target category="ipv4" port="22" protocol="tcp">192.0.2.1</Target>`+
			`<Request type="description">peba-check</Request>`+
			`<AdditionalData meaning="username" type="string">peba-check</AdditionalData></Alert>`,
			now.Add(time.Duration(i)*time.Second).Format("2006-01-02 15:04:05"), 40000+i, src)
	}
	b.WriteString(`</EWS-SimpleMessage>`)
	return b.String()
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func clipBody(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// runHealth is `peba health [URL]`: exit status 0 when URL (default the
// local /healthz) answers 200. The container HEALTHCHECK uses it because
// the slim image has no curl.
func runHealth(ctx context.Context, args []string, stdout io.Writer) error {
	url := "http://127.0.0.1:9922/healthz"
	if len(args) > 0 {
		url = args[0]
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return fmt.Errorf("cannot build request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
