package livefeed_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// rawGet sends a GET over a plain TCP connection, so the test controls the
// protocol version and whether the response is read at all.
func rawGet(t *testing.T, e *env, proto, path string) net.Conn {
	t.Helper()
	conn := dialSmall(t, e)
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s %s\r\nHost: peba\r\n\r\n", path, proto)
	return conn
}

// dialSmall connects to the test server with a small receive buffer, so
// that a viewer that stops reading stalls the server after a few hundred
// KiB instead of the several MB loopback buffers hold by default.
func dialSmall(t *testing.T, e *env) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10) })
		return err
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// readUntil reads r until it has seen want, or fails after 5 s.
func readUntil(t *testing.T, conn net.Conn, r *bufio.Reader, want string) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var seen strings.Builder
	for !strings.Contains(seen.String(), want) {
		line, err := r.ReadString('\n')
		seen.WriteString(line)
		if err != nil {
			t.Fatalf("no %q in %q: %v", want, seen.String(), err)
		}
	}
	return seen.String()
}

// HTTP/1.1 streams are written on the hijacked connection; the response must
// still be a correct chunked HTTP/1.1 response with the headers set by the
// handler and by middleware before it.
func TestSSEHTTP11Response(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.hub.Publish([]peba.Event{event("c1", peba.DomainCommunity)})
	conn := rawGet(t, e, "HTTP/1.1", "/api/v1/events/stream")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if resp.StatusCode != 200 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || !resp.Close {
		t.Fatalf("status %d, transfer encoding %v, close %v", resp.StatusCode, resp.TransferEncoding, resp.Close)
	}
	body := bufio.NewReader(resp.Body)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{"retry: 5000\n", "\n", "id: c1\n", "event: hpfeedevent\n"} {
		if line, err := body.ReadString('\n'); line != want {
			t.Fatalf("got %q (%v), want %q", line, err, want)
		}
	}
	// Closing the feed ends the stream cleanly: the last chunk, then EOF.
	e.lf.Close()
	if rest, err := io.ReadAll(body); err != nil {
		t.Fatalf("stream did not end cleanly: %v (%q)", err, rest)
	}
}

// HTTP/1.0 cannot be chunked: the stream goes through net/http.
func TestSSEHTTP10(t *testing.T) {
	e := newEnv(t, time.Hour)
	conn := rawGet(t, e, "HTTP/1.0", "/api/v1/events/stream")
	br := bufio.NewReader(conn)
	head := readUntil(t, conn, br, "retry: 5000")
	if !strings.HasPrefix(head, "HTTP/1.0 200 OK") || strings.Contains(head, "chunked") ||
		!strings.Contains(head, "Content-Type: text/event-stream") {
		t.Fatalf("response head: %q", head)
	}
	e.hub.Publish([]peba.Event{event("c1", peba.DomainCommunity), event("p1", peba.DomainPrivate)})
	got := readUntil(t, conn, br, "data: ")
	if !strings.Contains(got, "id: c1\nevent: hpfeedevent\n") {
		t.Fatalf("got %q", got)
	}
}

// A viewer that stops reading must not slow ingest down nor hold up the
// other viewers: its events queue up to the hub's buffer and are then
// missed (counted), while Publish returns at once.
func TestSSEStalledViewerDoesNotBlock(t *testing.T) {
	e := newEnv(t, time.Hour)
	rawGet(t, e, "HTTP/1.1", "/api/v1/events/stream") // a viewer that never reads
	live := dialSSE(t, e.srv.URL, "")
	for e.metric(t, "peba_livefeed_connections") < 2 {
		time.Sleep(time.Millisecond)
	}
	// 15,000 events of ~2.3 KiB (35 MB): more than the stalled viewer's
	// socket buffers (the server's send buffer grows to 4 MB) and the hub's
	// 4096-event lag allowance together.
	long := strings.Repeat("x", 2000)
	var slowest time.Duration
	for i := range 30 {
		batch := make([]peba.Event, 500)
		for j := range batch {
			batch[j] = event(fmt.Sprintf("e%d-%d", i, j), peba.DomainCommunity)
			batch[j].URL = long
		}
		start := time.Now()
		e.hub.Publish(batch)
		slowest = max(slowest, time.Since(start))
		// The live viewer keeps up: it gets every event of the batch
		// (checked by SSE id: decoding 15,000 payloads is slow under the
		// race detector).
		for j := range batch {
			if id := live.nextID(t); id != batch[j].ID {
				t.Fatalf("live viewer got %v, want %s", id, batch[j].ID)
			}
		}
	}
	if slowest > time.Second {
		t.Errorf("slowest Publish took %v", slowest)
	}
	if d := e.metric(t, "peba_livefeed_dropped_events_total"); d == 0 {
		t.Error("the stalled viewer missed nothing: the test did not stall it")
	}
}

// A Socket.IO viewer that stops reading is disconnected once it is
// wsMaxBacklog behind, instead of making the library queue every later
// event for it; publishing never waits for it.
func TestSocketIOStalledViewerIsDropped(t *testing.T) {
	e := newEnv(t, time.Hour)
	conn := dialSmall(t, e)
	defer conn.Close()
	fmt.Fprintf(conn, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: peba\r\n"+
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+
		"Sec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	readUntil(t, conn, br, "\r\n\r\n") // 101, then the Engine.IO open packet
	// The CONNECT, sent at once: it must be answered at once, not after
	// the 10 s read gate timeout (wsConn.gate is opened by the engine's
	// connection event).
	_, _ = conn.Write([]byte{0x81, 0x82, 0, 0, 0, 0, '4', '0'})
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	var got []byte
	for !bytes.Contains(got, []byte(`40{"sid"`)) {
		b, err := br.ReadByte()
		if err != nil {
			t.Fatalf("no CONNECT answer within 3 s (got %q): %v", got, err)
		}
		got = append(got, b)
	}
	for e.metric(t, "peba_livefeed_connections") < 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the broadcaster puts the socket in its room
	// From here on the viewer reads nothing. Publish large events (about
	// 10 KiB each, anonymous) at about 20 MB/s, which the broadcaster
	// keeps up with even under the race detector, until the server gives
	// up on the viewer: 4 MiB behind, plus what the kernel buffers.
	long := strings.Repeat("x", 2000)
	var slowest time.Duration
	end := time.Now().Add(10 * time.Second)
	for i := 0; e.metric(t, "peba_livefeed_connections") != 0; i++ {
		if time.Now().After(end) {
			t.Fatalf("the stalled Socket.IO viewer is still connected after %d batches", i)
		}
		batch := make([]peba.Event, 20)
		for j := range batch {
			ev := event(fmt.Sprintf("e%d-%d", i, j), peba.DomainCommunity)
			ev.URL, ev.PeerType, ev.VulnID, ev.ClientVersion, ev.PeerIdent = long, long, long, long, long
			batch[j] = ev
		}
		start := time.Now()
		e.hub.Publish(batch)
		slowest = max(slowest, time.Since(start))
		time.Sleep(10 * time.Millisecond)
	}
	if slowest > time.Second {
		t.Errorf("slowest Publish took %v", slowest)
	}
}
