package hpfeeds_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	d1str0 "github.com/d1str0/hpfeeds"
	"github.com/peba-go/peba/hpfeeds"
)

// The proof of the client runs against the broker of github.com/d1str0/hpfeeds
// (v0.1.6), an implementation that is not ours. That broker cannot be stopped
// (ListenAndServe keeps its listener private), so each broker runs in a child
// process (this test binary re-executed) and a "restart" kills the process,
// which drops every connection exactly as a crashed broker does.

const brokerEnv = "PEBA_HPFEEDS_TEST_BROKER_PORT"

func TestMain(m *testing.M) {
	if port := os.Getenv(brokerEnv); port != "" {
		serveBroker(port)
	}
	os.Exit(m.Run())
}

type identities map[string]d1str0.Identity

func (db identities) Identify(ident string) (*d1str0.Identity, error) {
	id, ok := db[ident]
	if !ok {
		return nil, errors.New("unknown ident")
	}
	return &id, nil
}

// serveBroker runs the third-party broker in this (child) process.
func serveBroker(port string) {
	p, err := strconv.Atoi(port)
	if err != nil {
		os.Exit(2)
	}
	db := identities{
		"sub": {Ident: "sub", Secret: "sub-secret", SubChannels: []string{"cowrie.sessions", "probe"}},
		"pub": {Ident: "pub", Secret: "pub-secret", PubChannels: []string{"cowrie.sessions", "probe"}},
	}
	err = (&d1str0.Broker{Name: "d1str0-test", Port: p, DB: db}).ListenAndServe()
	fmt.Fprintln(os.Stderr, "broker:", err)
	os.Exit(1)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// startBroker starts the broker process on port and waits until it accepts.
// The returned func kills it (idempotent).
func startBroker(t *testing.T, port string) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), brokerEnv+"="+port)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	t.Cleanup(kill)
	waitFor(t, 5*time.Second, "broker to listen", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return kill
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// publisher is a separate hpfeeds connection that publishes.
type publisher struct {
	conn  net.Conn
	ident string
}

func dialPublisher(addr, ident, secret string) (*publisher, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	f, err := hpfeeds.ReadFrame(bufio.NewReader(conn))
	if err != nil || f.Op != hpfeeds.OpInfo {
		conn.Close()
		return nil, fmt.Errorf("no info: %v", err)
	}
	_, nonce, err := hpfeeds.ParseInfo(f.Body)
	if err != nil {
		conn.Close()
		return nil, err
	}
	out, _ := hpfeeds.AppendAuth(nil, ident, secret, nonce)
	if _, err := conn.Write(out); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return &publisher{conn: conn, ident: ident}, nil
}

func (p *publisher) publish(t *testing.T, channel string, payload []byte) {
	t.Helper()
	out, err := hpfeeds.AppendPublish(nil, p.ident, channel, payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.conn.Write(out); err != nil {
		t.Fatal(err)
	}
}

// recorder is the client's handler: it keeps every message in order.
type recorder struct {
	mu   sync.Mutex
	msgs []hpfeeds.Message
}

func (r *recorder) handle(_ context.Context, m hpfeeds.Message) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	return nil
}

func (r *recorder) count(channel string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m.Channel == channel {
			n++
		}
	}
	return n
}

// awaitSubscribed waits until the client is connected and a probe
// published after that reached it. hpfeeds has no subscribe acknowledgement
// and drops messages published before the broker processed the subscription
// (by design: there is no queue), so only a delivered probe proves that
// messages published from now on will arrive.
func awaitSubscribed(t *testing.T, c *hpfeeds.Client, pub *publisher, rec *recorder) {
	t.Helper()
	waitFor(t, 5*time.Second, "client connected", func() bool { return c.State()[0].Status == hpfeeds.StatusConnected })
	before := rec.count("probe")
	waitFor(t, 5*time.Second, "probe delivered", func() bool {
		pub.publish(t, "probe", []byte("probe"))
		time.Sleep(10 * time.Millisecond)
		return rec.count("probe") > before
	})
}

func runClient(t *testing.T, c *hpfeeds.Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestClientAgainstD1str0BrokerSurvivesRestart(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + port
	kill := startBroker(t, port)

	rec := &recorder{}
	c := &hpfeeds.Client{
		Brokers:    []hpfeeds.Broker{{Addr: addr, Ident: "sub", Secret: "sub-secret", Channels: []string{"cowrie.sessions", "probe"}}},
		Handler:    rec.handle,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
	}
	stop := runClient(t, c)

	pub, err := dialPublisher(addr, "pub", "pub-secret")
	if err != nil {
		t.Fatal(err)
	}
	awaitSubscribed(t, c, pub, rec)

	const n = 200
	payload := func(i int) []byte {
		return fmt.Appendf(nil, `{"session":"s%04d","peerIP":"203.0.113.7","peerPort":%d,"hostPort":2222,"protocol":"ssh"}`, i, 1024+i)
	}
	for i := range n / 2 {
		pub.publish(t, "cowrie.sessions", payload(i))
	}
	waitFor(t, 5*time.Second, "first half delivered", func() bool { return rec.count("cowrie.sessions") == n/2 })

	// Restart the broker mid-stream.
	kill()
	pub.conn.Close()
	waitFor(t, 5*time.Second, "client to notice the broker is gone", func() bool {
		s := c.State()[0]
		return s.Status != hpfeeds.StatusConnected && s.Errors > 0
	})
	down := time.Now()
	startBroker(t, port)
	waitFor(t, 5*time.Second, "publisher reconnect", func() bool {
		pub, err = dialPublisher(addr, "pub", "pub-secret")
		return err == nil
	})
	defer pub.conn.Close()
	awaitSubscribed(t, c, pub, rec)
	t.Logf("resubscribed %v after the broker went down", time.Since(down))

	for i := n / 2; i < n; i++ {
		pub.publish(t, "cowrie.sessions", payload(i))
	}
	waitFor(t, 5*time.Second, "second half delivered", func() bool { return rec.count("cowrie.sessions") == n })
	time.Sleep(50 * time.Millisecond) // anything extra (a duplicate) would arrive now
	stop()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var got []hpfeeds.Message
	for _, m := range rec.msgs {
		if m.Channel == "cowrie.sessions" {
			got = append(got, m)
		}
	}
	if len(got) != n {
		t.Fatalf("received %d messages, want exactly %d", len(got), n)
	}
	ids := map[string]bool{}
	for i, m := range got {
		if !bytes.Equal(m.Payload, payload(i)) {
			t.Fatalf("message %d = %s, want %s (lost, duplicated or reordered)", i, m.Payload, payload(i))
		}
		if m.Ident != "pub" || m.Broker != addr {
			t.Fatalf("message %d: ident %q broker %q", i, m.Ident, m.Broker)
		}
		evs, err := hpfeeds.Normalize(m.Channel, m.Ident, m.Payload, time.Now())
		if err != nil || len(evs) != 1 {
			t.Fatalf("Normalize message %d: %v", i, err)
		}
		if ids[evs[0].ID] {
			t.Fatalf("duplicate event ID %s", evs[0].ID)
		}
		ids[evs[0].ID] = true
	}
	s := c.State()[0]
	if s.Connects != 2 || s.Status != hpfeeds.StatusStopped || s.Messages < n || s.LastMessage.IsZero() {
		t.Fatalf("state after restart = %+v, want 2 connects, stopped, >= %d messages", s, n)
	}
}

func TestClientWrongSecretBacksOff(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + port
	startBroker(t, port)
	rec := &recorder{}
	c := &hpfeeds.Client{
		Brokers:    []hpfeeds.Broker{{Addr: addr, Ident: "sub", Secret: "wrong", Channels: []string{"probe"}}},
		Handler:    rec.handle,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
	}
	stop := runClient(t, c)
	waitFor(t, 5*time.Second, "repeated auth failures", func() bool { return c.State()[0].Errors >= 4 })
	s := c.State()[0]
	if !strings.Contains(s.LastError, "Bad credentials") {
		t.Fatalf("LastError = %q, want the broker's auth error", s.LastError)
	}
	waitFor(t, 5*time.Second, "backoff state", func() bool { return c.State()[0].Status == hpfeeds.StatusBackoff })
	stop()
	if s := c.State()[0]; s.Status != hpfeeds.StatusStopped || s.Messages != 0 {
		t.Fatalf("state = %+v", s)
	}
}

// The d1str0 broker refuses a subscription with OP_ERROR but keeps the
// session: the error must be visible while the permitted channel flows.
func TestClientRefusedChannelKeepsOthers(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + port
	startBroker(t, port)
	rec := &recorder{}
	c := &hpfeeds.Client{
		Brokers: []hpfeeds.Broker{{Addr: addr, Ident: "sub", Secret: "sub-secret", Channels: []string{"forbidden", "probe"}}},
		Handler: rec.handle,
	}
	runClient(t, c)
	pub, err := dialPublisher(addr, "pub", "pub-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.conn.Close()
	awaitSubscribed(t, c, pub, rec)
	s := c.State()[0]
	if !strings.Contains(s.LastError, "permission to subscribe") || s.Status != hpfeeds.StatusConnected || s.Connects != 1 {
		t.Fatalf("state = %+v", s)
	}
}

func TestClientRejectsBadConfig(t *testing.T) {
	for _, b := range []hpfeeds.Broker{
		{Addr: "nohost", Ident: "a", Channels: []string{"x"}},
		{Addr: "h:1", Ident: "", Channels: []string{"x"}},
		{Addr: "h:1", Ident: "a"},
		{Addr: "h:1", Ident: "a", Channels: []string{strings.Repeat("x", 256)}},
	} {
		c := &hpfeeds.Client{Brokers: []hpfeeds.Broker{b}, Handler: (&recorder{}).handle}
		if err := c.Run(context.Background()); err == nil {
			t.Errorf("Run(%+v) = nil, want a config error", b)
		}
	}
}
