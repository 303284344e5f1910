package livefeed

import (
	"bytes"
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

func TestWSConnCoalescesWritesInOrder(t *testing.T) {
	a, b := net.Pipe() // synchronous: a write waits for the reader
	under := &countingConn{Conn: a}
	c := newWSConn(under, false)
	var want bytes.Buffer
	for i := range 1000 {
		frame := fmt.Appendf(nil, "frame %d;", i)
		want.Write(frame)
		if n, err := c.Write(frame); n != len(frame) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
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
	frame := make([]byte, 64<<10)
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
