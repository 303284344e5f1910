package livefeed_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// sseClient is a plain Go SSE reader.
type sseClient struct {
	resp   *http.Response
	cancel context.CancelFunc
	msgs   chan sseMsg
}

type sseMsg struct {
	id, event, data, comment string
}

// dialSSE opens the stream with cred ("user:token", sent as a Bearer
// token) or with an Authorization header (any value with a space in it).
func dialSSE(t *testing.T, url, cred string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/events/stream", nil)
	switch {
	case strings.Contains(cred, " "):
		req.Header.Set("Authorization", cred)
	case cred != "":
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &sseClient{resp: resp, cancel: cancel, msgs: make(chan sseMsg, 1000)}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != 200 {
		return c
	}
	go func() {
		defer close(c.msgs)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m != (sseMsg{}) {
					c.msgs <- m
				}
				m = sseMsg{}
			case strings.HasPrefix(line, ":"):
				m.comment = line
			case strings.HasPrefix(line, "id: "):
				m.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				m.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				m.data = line[6:]
			}
		}
	}()
	return c
}

// next returns the next hpfeedevent payload, skipping comments and retry.
func (c *sseClient) next(t *testing.T) map[string]any {
	t.Helper()
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				t.Fatal("stream ended")
			}
			if m.event != "hpfeedevent" {
				continue
			}
			var p map[string]any
			if err := json.Unmarshal([]byte(m.data), &p); err != nil {
				t.Fatalf("bad data %q: %v", m.data, err)
			}
			if m.id != p["event_id"] {
				t.Fatalf("id %q != event_id %v", m.id, p["event_id"])
			}
			return p
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5 s")
		}
	}
}

// nextID returns the id of the next hpfeedevent, without decoding it.
func (c *sseClient) nextID(t *testing.T) string {
	t.Helper()
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				t.Fatal("stream ended")
			}
			if m.event == "hpfeedevent" {
				return m.id
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5 s")
		}
	}
}

func (c *sseClient) expectIDs(t *testing.T, ids ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, want := range ids {
		p := c.next(t)
		if p["event_id"] != want {
			t.Fatalf("got event %v, want %s", p["event_id"], want)
		}
		out = append(out, p)
	}
	return out
}

func assertAnonymous(t *testing.T, p map[string]any) {
	t.Helper()
	b, _ := json.Marshal(p)
	for _, leak := range []string{"198.51.100.77", "10.0.0.77", "uuid-secret-1", "tpot-host", "hunter2", `"username"`, `"private"`} {
		if strings.Contains(string(b), leak) {
			t.Fatalf("anonymous payload leaks %s: %s", leak, b)
		}
	}
	if p["src_ip"] != "203.0.113.9" || p["dst_port"] != 22.0 {
		t.Fatalf("anonymous payload lost public fields: %s", b)
	}
}

func TestSSEFilteringSanitizingReplay(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.hub.Publish([]peba.Event{event("c1", peba.DomainCommunity), event("p1", peba.DomainPrivate)})

	anon := dialSSE(t, e.srv.URL, "")
	alice := dialSSE(t, e.srv.URL, aliceCred)
	bob := dialSSE(t, e.srv.URL, bobCred)
	comm := dialSSE(t, e.srv.URL, commCred)
	aliceBasic := dialSSE(t, e.srv.URL, "Basic "+base64.StdEncoding.EncodeToString([]byte(aliceCred)))
	for _, c := range []*sseClient{anon, alice, bob, comm, aliceBasic} {
		if c.resp.StatusCode != 200 || c.resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("status %d, type %q", c.resp.StatusCode, c.resp.Header.Get("Content-Type"))
		}
	}
	// Replay first.
	for _, c := range []*sseClient{anon, bob, comm} {
		assertAnonymous(t, c.expectIDs(t, "c1")[0])
	}
	aliceBasic.expectIDs(t, "c1", "p1")
	full := alice.expectIDs(t, "c1", "p1")
	if full[1]["dst_ip"] != "198.51.100.77" || full[1]["username"] != "root" || full[1]["domain"] != "private" {
		t.Fatalf("entitled payload incomplete: %v", full[1])
	}

	// Live events, after outliving the server's 1 s Read/WriteTimeout.
	time.Sleep(1500 * time.Millisecond)
	e.hub.Publish([]peba.Event{event("p2", peba.DomainPrivate), event("c2", peba.DomainCommunity)})
	for _, c := range []*sseClient{anon, bob, comm} {
		assertAnonymous(t, c.expectIDs(t, "c2")[0]) // p2 never arrives
	}
	alice.expectIDs(t, "p2", "c2")
	if n := e.metric(t, "peba_livefeed_connections"); n != 5 {
		t.Errorf("connections gauge = %v, want 5", n)
	}
}

func TestSSERejectsBadCredentials(t *testing.T) {
	// The token checks must fit in the server's timeouts: they take
	// seconds under the race detector on a busy machine.
	e := newEnvTimeout(t, time.Hour, time.Minute)
	// Malformed headers are failed credentials, not anonymous viewers.
	for _, cred := range []string{"alice:wrong", "nobody:x", "no-colon", "Token alice:alice-token", "Basic !!"} {
		c := dialSSE(t, e.srv.URL, cred)
		body, _ := io.ReadAll(c.resp.Body)
		if c.resp.StatusCode != 401 || string(body) != "{\"error\":\"invalid credentials\"}\n" {
			t.Errorf("%s: %d %q", cred, c.resp.StatusCode, body)
		}
	}
	if n := e.metric(t, "peba_livefeed_auth_failures_total"); n != 5 {
		t.Errorf("auth failures = %v", n)
	}
}

func TestSSEHeartbeatAndDisconnect(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	c := dialSSE(t, e.srv.URL, "")
	deadline := time.After(3 * time.Second)
	for beats := 0; beats < 2; {
		select {
		case m := <-c.msgs:
			if m.comment == ": heartbeat" {
				beats++
			}
		case <-deadline:
			t.Fatal("no heartbeats")
		}
	}
	c.cancel()
	// The handler notices the disconnect and unsubscribes.
	for end := time.Now().Add(3 * time.Second); e.metric(t, "peba_livefeed_subscribers") != 0; {
		// The Socket.IO broadcaster subscribes only while it has viewers.
		if time.Now().After(end) {
			t.Fatalf("subscribers = %v after disconnect", e.metric(t, "peba_livefeed_subscribers"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
