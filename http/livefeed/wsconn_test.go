package livefeed

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes that reach the connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// wsUpgradeResponse is what the websocket library writes first on a
// hijacked connection.
const wsUpgradeResponse = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"

func TestWSConnCoalescesWritesInOrder(t *testing.T) {
	a, b := net.Pipe() // synchronous: a write waits for the reader
	under := &countingConn{Conn: a}
	c := newWSConn(under, false)
	var want bytes.Buffer
	write := func(p []byte) {
		want.Write(p)
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	write([]byte(wsUpgradeResponse))
	for i := range 1000 {
		write(appendTextFrame(nil, fmt.Appendf(nil, "frame %d", i)))
	}
	// Nothing has been read yet: the flusher holds at most what it took
	// first, the rest is waiting in one buffer.
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("bytes changed or reordered")
	}
	if n := under.writes.Load(); n > 10 {
		t.Errorf("1000 frames took %d writes, want a few", n)
	}
	c.Close()
	if _, err := b.Read(got); err != io.EOF {
		t.Errorf("after Close: %v, want EOF", err)
	}
}

// The feed's own frames (WriteFrames) go between the library's messages,
// never inside one, however the library splits its writes, and in order.
func TestWSConnWriteFramesBetweenMessages(t *testing.T) {
	a, b := net.Pipe()
	c := newWSConn(a, false)
	defer c.Close()
	got := make(chan []byte)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	lib := func(p []byte) {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	own := func(s string) {
		if err := c.WriteFrames([][]byte{appendTextFrame(nil, []byte(s))}); err != nil {
			t.Fatal(err)
		}
	}
	// The upgrade response, in two writes: nothing may go inside it.
	lib([]byte(wsUpgradeResponse[:20]))
	own("own-1")
	lib([]byte(wsUpgradeResponse[20:]))
	// A large library message: header and payload in separate writes.
	big := appendTextFrame(nil, bytes.Repeat([]byte("L"), 70000))
	lib(big[:1])
	own("own-2")
	lib(big[1:5])
	lib(big[5:])
	own("own-3")
	// A fragmented message, with a control frame between its fragments.
	lib([]byte{0x01, 3, 'f', 'r', 'a'}) // text, not final
	own("own-4")
	lib([]byte{0x89, 1, 'p'})      // ping: a control frame, allowed here
	lib([]byte{0x80, 2, 'g', 's'}) // continuation, final
	own("own-5")
	c.Close()

	rest := <-got
	if !bytes.HasPrefix(rest, []byte(wsUpgradeResponse)) {
		t.Fatalf("stream starts with %q", rest[:min(len(rest), 40)])
	}
	var frames []string
	for rest = rest[len(wsUpgradeResponse):]; len(rest) > 0; {
		op, fin, payload, n := parseFrame(t, rest)
		if len(payload) > 10 {
			payload = payload[:10]
		}
		frames = append(frames, fmt.Sprintf("%x/%v/%s", op, fin, payload))
		rest = rest[n:]
	}
	want := []string{
		"1/true/own-1", "1/true/LLLLLLLLLL", "1/true/own-2", "1/true/own-3",
		"1/false/fra", "9/true/p", "0/true/gs", "1/true/own-4", "1/true/own-5",
	}
	if fmt.Sprint(frames) != fmt.Sprint(want) {
		t.Errorf("frames\n%v\nwant\n%v", frames, want)
	}
}

// parseFrame reads one unmasked websocket frame from the start of b.
func parseFrame(t *testing.T, b []byte) (op byte, fin bool, payload []byte, n int) {
	t.Helper()
	if len(b) < 2 {
		t.Fatalf("truncated frame %q", b)
	}
	op, fin = b[0]&0x0f, b[0]&0x80 != 0
	size, hdr := uint64(b[1]&0x7f), 2
	switch size {
	case 126:
		size, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		size, hdr = binary.BigEndian.Uint64(b[2:]), 10
	}
	if uint64(len(b)-hdr) < size {
		t.Fatalf("truncated frame: %d of %d payload bytes", len(b)-hdr, size)
	}
	return op, fin, b[hdr : hdr+int(size)], hdr + int(size)
}

func TestFrameTrackerTextFrameHeaders(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		f := appendTextFrame(nil, []byte("42"), bytes.Repeat([]byte("x"), n))
		op, fin, payload, size := parseFrame(t, f)
		if op != 1 || !fin || len(payload) != n+2 || size != len(f) {
			t.Errorf("%d bytes: op %x fin %v payload %d frame %d of %d", n, op, fin, len(payload), size, len(f))
		}
		tr := frameTracker{http: len(httpEnd)}
		if tr.feed(f[:len(f)-1]) || !tr.feed(f[len(f)-1:]) {
			t.Errorf("%d bytes: tracker does not end the frame at its last byte", n)
		}
	}
}

func TestWSConnCloseSendsPending(t *testing.T) {
	a, b := net.Pipe()
	c := newWSConn(a, false)
	done := make(chan []byte)
	go func() {
		all, _ := io.ReadAll(b)
		done <- all
	}()
	_, _ = c.Write([]byte("first "))
	_, _ = c.Write([]byte("close-frame"))
	c.Close()
	if got := string(<-done); got != "first close-frame" {
		t.Fatalf("peer got %q", got)
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestWSConnDropsViewerBeyondBacklog(t *testing.T) {
	a, b := net.Pipe() // b never reads: a stalled viewer
	defer b.Close()
	c := newWSConn(a, false)
	_, _ = c.Write([]byte(wsUpgradeResponse))
	frame := appendTextFrame(nil, make([]byte, 64<<10))
	start := time.Now()
	var err error
	for i := 0; i < 2*wsMaxBacklog/len(frame) && err == nil; i++ {
		_, err = c.Write(frame)
	}
	if !errors.Is(err, errWSBacklog) {
		t.Fatalf("writes beyond the backlog: %v, want errWSBacklog", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("writes to a stalled viewer took %v: they must not block", d)
	}
	// The connection is closed, so the library's reader fails and drops
	// the socket.
	if _, err := a.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open")
	}
	c.Close() // after the error: returns at once
}

func TestWSConnWriteErrorIsSticky(t *testing.T) {
	a, b := net.Pipe()
	c := newWSConn(a, false)
	b.Close() // the peer is gone: the flusher's write fails
	_, _ = c.Write([]byte("x"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.Write([]byte("y")); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes keep succeeding after the peer is gone")
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
}

func TestWSConnGatesReadsUntilReleased(t *testing.T) {
	a, b := net.Pipe()
	c := newWSConn(a, true)
	defer c.Close()
	go func() { _, _ = b.Write([]byte("40")) }() // the client's CONNECT, sent at once
	got := make(chan string)
	go func() {
		buf := make([]byte, 8)
		n, _ := c.Read(buf)
		got <- string(buf[:n])
	}()
	select {
	case s := <-got:
		t.Fatalf("read %q before release", s)
	case <-time.After(50 * time.Millisecond):
	}
	c.release()
	c.release() // idempotent
	if s := <-got; s != "40" {
		t.Fatalf("read %q after release", s)
	}
}

// A connection whose last write carried feed frames less than a gap ago
// (wsConn.pace) holds what comes next until the gap is over, then sends it
// all at once.
func TestWSConnPacesWrites(t *testing.T) {
	const gap = 100 * time.Millisecond
	a, b := net.Pipe()
	c := newWSConn(a, false)
	c.pace = func() time.Duration { return gap }
	defer c.Close()
	type read struct {
		at   time.Time
		data string
	}
	reads := make(chan read, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := b.Read(buf)
			if err != nil {
				close(reads)
				return
			}
			reads <- read{time.Now(), string(buf[:n])}
		}
	}()
	next := func(want string) time.Time {
		t.Helper()
		var got string
		var at time.Time
		for len(got) < len(want) {
			r, ok := <-reads
			if !ok {
				t.Fatalf("connection closed after %q", got)
			}
			got += r.data
			at = r.at
		}
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		return at
	}
	frame := func(s string) []byte { return appendTextFrame(nil, []byte(s)) }
	if _, err := c.Write([]byte(wsUpgradeResponse)); err != nil {
		t.Fatal(err)
	}
	next(wsUpgradeResponse) // the library's bytes alone: no gap after them
	_ = c.WriteFrames([][]byte{frame("one")})
	first := next(string(frame("one")))
	// Within the gap: both wait for its end and go out together.
	_ = c.WriteFrames([][]byte{frame("two")})
	_ = c.WriteFrames([][]byte{frame("three")})
	second := next(string(frame("two")) + string(frame("three")))
	if d := second.Sub(first); d < gap*8/10 {
		t.Errorf("second write %v after the first, want about %v", d, gap)
	}
}
