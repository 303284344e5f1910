package livefeed_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// jsClientDir holds package.json and client.mjs; node_modules is installed
// there by the test and git-ignored.
const jsClientDir = "testdata/js"

// installJSClient runs npm install once (node_modules is kept as a cache).
// It skips only when node or npm is missing; a failing install fails.
func installJSClient(t *testing.T) string {
	t.Helper()
	// CI sets PEBA_REQUIRE_NODE=1 so that a missing node fails instead.
	skip := t.Skip
	if os.Getenv("PEBA_REQUIRE_NODE") == "1" {
		skip = t.Fatal
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node is not installed: the Socket.IO test needs node and npm (.ci/run installs them)")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		skip("npm is not installed: the Socket.IO test needs node and npm (.ci/run installs them)")
	}
	if _, err := os.Stat(filepath.Join(jsClientDir, "node_modules", "socket.io-client", "package.json")); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = jsClientDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install socket.io-client: %v\n%s", err, out)
		}
	}
	return node
}

type jsLine struct {
	Client    string         `json:"client"`
	Connected bool           `json:"connected"`
	Error     string         `json:"error"`
	Event     map[string]any `json:"event"`
	Transport string         `json:"transport"`
	Timeout   bool           `json:"timeout"`
}

// TestSocketIOWithJSClient is the proof: the real socket.io-client
// 4.x connects anonymously and authenticated (handshake auth payload and
// Authorization header; websocket and polling), receives the replay and a
// new event, and anonymous viewers get sanitized community events only.
func TestSocketIOWithJSClient(t *testing.T) {
	node := installJSClient(t)
	e := newEnvTimeout(t, time.Hour, 60*time.Second) // production's timeouts
	e.hub.Publish([]peba.Event{event("c1", peba.DomainCommunity), event("p1", peba.DomainPrivate)})

	spec := []map[string]any{
		{"name": "anon", "inject": true, "opts": map[string]any{}},
		{"name": "alice-ws", "opts": map[string]any{"transports": []string{"websocket"}, "auth": map[string]string{"token": aliceCred}}},
		{"name": "alice-poll", "opts": map[string]any{"transports": []string{"polling"}, "extraHeaders": map[string]string{"Authorization": "Bearer " + aliceCred}}},
		{"name": "bob", "opts": map[string]any{"auth": map[string]string{"token": bobCred}}},
		{"name": "wrong", "opts": map[string]any{"auth": map[string]string{"token": "alice:wrong"}}},
	}
	// Once the four good clients are connected and the injection had time
	// to arrive, publish the live events.
	got, connected, errs := runJSClients(t, node, e.srv.URL, "c-new", spec, 4, func() {
		deadline := time.Now().Add(5 * time.Second)
		for e.metric(t, "peba_livefeed_client_events_ignored_total") < 1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		// Three rounds: a socket's first live events after its replay (or
		// its upgrade) go through the engine, the later ones straight to
		// its websocket.
		e.hub.Publish([]peba.Event{event("p-new", peba.DomainPrivate), event("c-mid1", peba.DomainCommunity)})
		time.Sleep(50 * time.Millisecond)
		e.hub.Publish([]peba.Event{event("c-mid2", peba.DomainCommunity)})
		time.Sleep(50 * time.Millisecond)
		e.hub.Publish([]peba.Event{event("p-new2", peba.DomainPrivate), event("c-new", peba.DomainCommunity)})
	})

	// Replay, then the live events, each exactly once, in order; the
	// injected event reaches nobody.
	for client, want := range map[string]string{
		"anon": "c1,c-mid1,c-mid2,c-new", "bob": "c1,c-mid1,c-mid2,c-new",
		"alice-ws":   "c1,p1,p-new,c-mid1,c-mid2,p-new2,c-new",
		"alice-poll": "c1,p1,p-new,c-mid1,c-mid2,p-new2,c-new",
	} {
		if g := eventIDs(got[client]); g != want {
			t.Errorf("%s received %s, want %s", client, g, want)
		}
	}
	for _, client := range []string{"anon", "bob"} {
		for _, ev := range got[client] {
			assertAnonymous(t, ev)
		}
	}
	for _, ev := range got["alice-ws"] {
		if ev["dst_ip"] != "198.51.100.77" || ev["channel"] != "ews" || ev["identifier"] != "sensor-1" {
			t.Errorf("entitled payload incomplete: %v", ev)
		}
		if _, ok := ev["timestamp"].(float64); !ok {
			t.Errorf("timestamp is not a number: %v", ev)
		}
	}
	if errs["wrong"] != "invalid credentials" || connected["wrong"] {
		t.Errorf("wrong token: error %q, connected %v", errs["wrong"], connected["wrong"])
	}
	if n := e.metric(t, "peba_livefeed_client_events_ignored_total"); n != 1 {
		t.Errorf("ignored client events = %v, want 1", n)
	}
}

// runJSClients runs client.mjs with spec until every client has received
// stopID or failed to connect, calling connected (on its own goroutine)
// once n clients are connected. It returns the events each client
// received, in order, which clients connected, and their connect errors.
func runJSClients(t *testing.T, node, url, stopID string, spec []map[string]any, n int, connected func()) (
	got map[string][]map[string]any, up map[string]bool, errs map[string]string) {
	t.Helper()
	specJSON, _ := json.Marshal(spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs", url, stopID, string(specJSON))
	cmd.Dir = jsClientDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got, up, errs = map[string][]map[string]any{}, map[string]bool{}, map[string]string{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		t.Logf("js: %s", sc.Text())
		var l jsLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		switch {
		case l.Timeout:
			t.Fatal("JS clients timed out")
		case l.Error != "":
			errs[l.Client] = l.Error
		case l.Connected:
			if up[l.Client] = true; len(up) == n {
				go connected()
			}
		case l.Event != nil:
			got[l.Client] = append(got[l.Client], l.Event)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	return got, up, errs
}

// eventIDs returns the event_id of each event, comma-separated.
func eventIDs(evs []map[string]any) string {
	var s []string
	for _, ev := range evs {
		id, _ := ev["event_id"].(string)
		s = append(s, id)
	}
	return strings.Join(s, ",")
}

// The Socket.IO broadcaster is subscribed to the hub only while it has
// viewers (without any, the hub copies only its replay of each
// publication). A viewer after an idle spell, the first one or one after
// the last left, still gets the replay, then the live events: each event
// once, in order, private ones only to the entitled.
func TestSocketIOReplayAcrossIdleSpells(t *testing.T) {
	node := installJSClient(t)
	e := newEnvTimeout(t, time.Hour, 60*time.Second)
	subscribers := func() float64 { return e.metric(t, "peba_livefeed_subscribers") }
	if n := subscribers(); n != 0 {
		t.Fatalf("subscribers = %v before any viewer, want 0", n)
	}
	e.hub.Publish([]peba.Event{event("c1", peba.DomainCommunity), event("p1", peba.DomainPrivate)})
	got, _, errs := runJSClients(t, node, e.srv.URL, "c2",
		[]map[string]any{{"name": "first", "opts": map[string]any{"transports": []string{"websocket"}}}}, 1,
		func() { e.hub.Publish([]peba.Event{event("c2", peba.DomainCommunity)}) })
	if len(errs) > 0 {
		t.Fatalf("connect errors: %v", errs)
	}
	if g := eventIDs(got["first"]); g != "c1,c2" {
		t.Errorf("first viewer received %s, want c1,c2", g)
	}

	// The viewer has gone; the broadcaster notices at the next
	// publication and unsubscribes.
	community := []string{"c1", "c2"}
	for i := 0; subscribers() != 0; i++ {
		if i == 300 {
			t.Fatalf("the broadcaster is still subscribed without viewers (subscribers = %v)", subscribers())
		}
		id := fmt.Sprintf("idle%d", i)
		e.hub.Publish([]peba.Event{event(id, peba.DomainCommunity)})
		community = append(community, id)
		time.Sleep(10 * time.Millisecond)
	}
	e.hub.Publish([]peba.Event{event("c3", peba.DomainCommunity), event("p3", peba.DomainPrivate)})
	community = append(community, "c3", "c4")

	got, _, errs = runJSClients(t, node, e.srv.URL, "c4", []map[string]any{
		{"name": "anon", "opts": map[string]any{"transports": []string{"polling"}}},
		{"name": "alice", "opts": map[string]any{"transports": []string{"websocket"}, "auth": map[string]string{"token": aliceCred}}},
	}, 2, func() {
		e.hub.Publish([]peba.Event{event("p4", peba.DomainPrivate), event("c4", peba.DomainCommunity)})
	})
	if len(errs) > 0 {
		t.Fatalf("connect errors: %v", errs)
	}
	if g, want := eventIDs(got["anon"]), strings.Join(community, ","); g != want {
		t.Errorf("anonymous viewer after the idle spell received\n%s, want\n%s", g, want)
	}
	all := append([]string{"c1", "p1"}, community[1:len(community)-2]...)
	all = append(all, "c3", "p3", "p4", "c4")
	if g, want := eventIDs(got["alice"]), strings.Join(all, ","); g != want {
		t.Errorf("entitled viewer after the idle spell received\n%s, want\n%s", g, want)
	}
}
