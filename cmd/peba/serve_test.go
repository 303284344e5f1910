package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/config"
	"github.com/peba-go/peba/ews"
	"github.com/peba-go/peba/internal/testfixtures"
)

// instance is one `peba serve` running in-process on a free loopback port.
type instance struct {
	t       *testing.T
	dataDir string
	base    string
	cancel  context.CancelFunc
	done    chan error
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// pebaCmd runs a subcommand against dataDir and returns its stdout.
func pebaCmd(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append(args, "-datadir", dataDir)
	if err := run(context.Background(), args, env(nil), strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("peba %v: %v\n%s", args, err, errOut.String())
	}
	return out.String()
}

func startServe(t *testing.T, dataDir string, extra ...string) *instance {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{t: t, dataDir: dataDir, base: "http://" + addr, cancel: cancel, done: make(chan error, 1)}
	args := append([]string{"serve", "-bindhost", addr, "-datadir", dataDir, "-loglevel", "warn"}, extra...)
	go func() { in.done <- run(ctx, args, env(nil), nil, io.Discard, testLogWriter{t}) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(in.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-in.done:
			t.Fatalf("serve exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(in.stop)
	return in
}

func (in *instance) stop() {
	if in.cancel == nil {
		return
	}
	in.cancel()
	in.cancel = nil
	if err := <-in.done; err != nil {
		in.t.Errorf("serve: %v", err)
	}
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func postEWS(t *testing.T, url string, body []byte) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Post(url, "text/xml", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// storedIDs opens the (stopped) instance's store and returns every event by ID.
func storedEvents(t *testing.T, dataDir string) map[string]peba.Event {
	t.Helper()
	cfg, _, err := config.Load("test", []string{"-datadir", dataDir}, env(nil), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := map[string]peba.Event{}
	err = st.ExportEvents(context.Background(), func(e *peba.Event) error {
		if _, dup := out[e.ID]; dup {
			t.Errorf("event %s stored twice", e.ID)
		}
		out[e.ID] = *e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFixturesThroughTheRealIngestPath posts every real input (PEBA's sample
// posts, the 46 bodies of the real ewsposter, and its resends) to a running
// service and checks what was stored.
func TestFixturesThroughTheRealIngestPath(t *testing.T) {
	dir := t.TempDir()
	pebaCmd(t, dir, "user", "add", "harness-user", "-token", "s3cr3t&<tok%en>")
	pebaCmd(t, dir, "user", "add", "u1", "-token", "t1")
	pebaCmd(t, dir, "user", "add", "blabla", "-token", "blabla")
	in := startServe(t, dir)
	url := in.base + "/ews-0.1/alert/postSimpleMessage"

	want := map[string]bool{} // IDs that must be stored
	wantType := map[string]string{}
	post := func(file string, wantText string) {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		status, got, hdr := postEWS(t, url, body)
		if status != 200 || hdr.Get("Content-Type") != "text/xml; charset=utf-8" {
			t.Fatalf("%s: HTTP %d %q %s", file, status, hdr.Get("Content-Type"), got)
		}
		wantBody := "<Result><StatusCode>OK</StatusCode><Text>" + wantText + "</Text></Result>"
		if wantText == "*" {
			if !strings.HasPrefix(got, "<Result><StatusCode>OK</StatusCode><Text>") {
				t.Errorf("%s: answer %q", file, got)
			}
		} else if got != wantBody {
			t.Errorf("%s: answer %q, want %q", file, got, wantBody)
		}
		b, err := ews.Decode(body, ews.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Events {
			want[e.ID] = true
			wantType[e.ID] = e.PeerType
		}
	}

	for _, f := range testfixtures.Files(t, "peba-samples") {
		if filepath.Base(f) == "broken.xml" {
			post(f, "*")
			continue
		}
		post(f, "")
	}
	ewsposterIDs := map[string]bool{}
	before := len(want)
	for _, f := range testfixtures.Files(t, "ewsposter") {
		post(f, "")
	}
	for id := range want {
		ewsposterIDs[id] = true
	}
	if n := len(want) - before; n != 297 {
		t.Errorf("ewsposter fixtures gave %d distinct events, want 297", n)
	}
	for _, f := range testfixtures.Files(t, "ewsposter-resend") {
		post(f, "")
	}
	in.stop()

	stored := storedEvents(t, dir)
	for id := range want {
		if _, ok := stored[id]; !ok {
			t.Errorf("event %s (%s) not stored", id, wantType[id])
		}
	}
	if len(stored) != len(want) {
		t.Errorf("stored %d events, want exactly %d (resends must add nothing)", len(stored), len(want))
	}
	// Every module of the real ewsposter gets a proper type, and the
	// harness user's events are private data.
	perModule := map[string]int{}
	for _, e := range stored {
		if e.Submitter != "harness-user" {
			continue
		}
		perModule[e.PeerIdent]++
		if e.PeerType == "" || e.PeerType == "Unclassified" {
			t.Errorf("%s: peerType %q", e.PeerIdent, e.PeerType)
		}
		if e.Domain != peba.DomainPrivate {
			t.Errorf("%s: domain %v, want private", e.ID, e.Domain)
		}
	}
	if len(perModule) != 37 {
		t.Errorf("events from %d modules, want 37: %v", len(perModule), perModule)
	}
}

func TestIngestAnswers(t *testing.T) {
	dir := t.TempDir()
	in := startServe(t, dir, "-maxbodybytes", "65536")
	url := in.base + "/ews-0.1/alert/postSimpleMessage"
	good := testfixtures.Read(t, "peba-samples", "heralding.xml")
	cases := []struct {
		name   string
		body   []byte
		status int
		text   string // substring of the answer
	}{
		{"wrong token", bytes.Replace(good, []byte("foth{a5maiCee8fineu7"), []byte("nope"), 1), 403, "<StatusCode>Error</StatusCode>"},
		{"no credentials", []byte(`<EWS-SimpleMessage version="3.0"><Alert/></EWS-SimpleMessage>`), 403, "credentials"},
		{"malformed XML", []byte(`<EWS-SimpleMessage><Authentication>`), 400, "<StatusCode>Error</StatusCode>"},
		{"DTD", []byte(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><EWS-SimpleMessage>&a;</EWS-SimpleMessage>`), 400, "<StatusCode>Error</StatusCode>"},
		{"empty", nil, 400, "empty"},
		{"too large", bytes.Repeat([]byte("x"), 70000), 413, "exceeds"},
		{"ok", good, 200, "<Result><StatusCode>OK</StatusCode><Text></Text></Result>"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body, hdr := postEWS(t, url, c.body)
			if status != c.status || !strings.Contains(body, c.text) {
				t.Errorf("HTTP %d %q, want %d containing %q", status, body, c.status, c.text)
			}
			// ewsposter parses <StatusCode>(.*)</StatusCode>; without it, it
			// crashes and loses the batch.
			if !strings.Contains(body, "<StatusCode>") || hdr.Get("Content-Type") != "text/xml; charset=utf-8" {
				t.Errorf("answer without a Result body: %q %q", hdr.Get("Content-Type"), body)
			}
		})
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
	resp, err = http.Get(in.base + "/heartbeat")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "I'm alive" {
		t.Errorf("heartbeat: %d %q", resp.StatusCode, b)
	}
	resp, err = http.Get(in.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`peba_ews_posts_total{result="ok"} 1`, `peba_ews_posts_total{result="unauthorized"} 2`, "peba_ingest_commit_seconds_bucket", `peba_ews_alerts_total{result="accepted"} 4`} {
		if !strings.Contains(string(b), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
}

// serve runs the collector at defaultGCPercent, unless GOGC says otherwise.
func TestServeGCPercentUnlessGOGCIsSet(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	if !setGCPercent(func(string) string { return "" }) {
		t.Fatal("GOGC unset: the default was not set")
	}
	if p := debug.SetGCPercent(100); p != defaultGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", p, defaultGCPercent)
	}
	gogc := func(k string) string {
		if k == "GOGC" {
			return "200"
		}
		return ""
	}
	if setGCPercent(gogc) {
		t.Error("GOGC=200: the default was set over it")
	}
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC=200: GC percent changed to %d", p)
	}
}

// serve fixes malloc's mmap threshold, so that freed blocks from 128 KiB
// up go back to the system, unless the environment tunes malloc.
func TestServeMallocMmapThreshold(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("glibc only")
	}
	env := func(k, v string) func(string) string {
		return func(key string) string {
			if key == k {
				return v
			}
			return ""
		}
	}
	if os.Getenv("PEBA_TEST_MALLOC_CHILD") == "" {
		if setMallocThreshold(env("MALLOC_MMAP_THRESHOLD_", "65536")) || setMallocThreshold(env("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")) {
			t.Error("the environment tunes malloc: the threshold was set over it")
		}
		// The effect is checked in a process of its own: in this one, the
		// tests before have left free memory in malloc's heaps, from which
		// a block may come whatever the threshold.
		cmd := exec.Command(os.Args[0], "-test.run=^TestServeMallocMmapThreshold$", "-test.v")
		cmd.Env = append(os.Environ(), "PEBA_TEST_MALLOC_CHILD=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("in a new process: %v\n%s", err, out)
		}
		return
	}
	if !setMallocThreshold(env("", "")) {
		t.Fatal("the threshold was not set")
	}
	// Without a fixed threshold, glibc raises it to the size of a freed
	// mmapped block, and serves the next block of that size from the heap.
	if !secondAllocMmapped(256 << 10) {
		t.Error("a 256-KiB block freed and allocated again came from the heap, not mmap")
	}
}
