package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	d1str0 "github.com/d1str0/hpfeeds"
)

type brokerIDs map[string]d1str0.Identity

func (db brokerIDs) Identify(ident string) (*d1str0.Identity, error) {
	id, ok := db[ident]
	if !ok {
		return nil, errors.New("unknown ident")
	}
	return &id, nil
}

// TestHpfeedsEventsAreStored runs the third-party broker of
// github.com/d1str0/hpfeeds, points `peba serve` at it, publishes a cowrie
// session with that library's own client, and finds the event in the store.
func TestHpfeedsEventsAreStored(t *testing.T) {
	addr := freeAddr(t)
	_, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	broker := &d1str0.Broker{Name: "test", Port: port, DB: brokerIDs{
		"peba":   {Ident: "peba", Secret: "s3", SubChannels: []string{"cowrie.sessions"}},
		"sensor": {Ident: "sensor", Secret: "s4", PubChannels: []string{"cowrie.sessions"}},
	}}
	// The library offers no way to stop its broker; it ends with the test process.
	go broker.ListenAndServe()
	waitTCP(t, addr)

	dir := t.TempDir()
	in := startServe(t, dir, "-hpfeeds_host", "127.0.0.1", "-hpfeeds_port", portText,
		"-hpfeeds_ident", "peba", "-hpfeeds_secret", "s3", "-hpfeeds_channels", "cowrie.sessions")

	pub := d1str0.NewClient("127.0.0.1", port, "sensor", "s4")
	if err := pub.Connect(); err != nil {
		t.Fatal(err)
	}
	// No pub.Close(): in d1str0/hpfeeds v0.1.6, Close sets the connection to
	// nil and the read loop then calls Close on it again (nil dereference).
	// The connection ends with the test process.
	ch := make(chan []byte, 1)
	pub.Publish("cowrie.sessions", ch)
	payload := []byte(`{"session":"a1b2c3d4e5f6","startTime":"2025-01-10T12:00:00.123456Z","peerIP":"203.0.113.7","peerPort":51234,` +
		`"hostIP":"10.0.0.5","hostPort":2222,"loggedin":["root","123456"],"credentials":[["root","123456"]],"commands":["uname -a"],"protocol":"ssh"}`)
	// hpfeeds delivers only to subscribers connected at publish time, and
	// does not confirm subscriptions: publish until the metric shows the
	// message arrived.
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(metrics(t, in.base), "peba_hpfeeds_messages_total 1") {
		if time.Now().After(deadline) {
			t.Fatalf("no hpfeeds message received:\n%s", grepLines(metrics(t, in.base), "peba_hpfeeds"))
		}
		if strings.Contains(metrics(t, in.base), "peba_hpfeeds_connected_brokers 1") {
			ch <- payload
			time.Sleep(300 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the commit follows the receipt
	in.stop()
	found := 0
	for _, e := range storedEvents(t, dir) {
		if e.Origin == "hpfeeds" && e.SrcIP.String() == "203.0.113.7" && e.PeerType == "SSH/console(cowrie)" {
			found++
		}
	}
	if found != 1 {
		t.Fatalf("found %d hpfeeds events, want 1", found)
	}
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept connections", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func metrics(t *testing.T, base string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
