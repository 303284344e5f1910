package livefeed

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Limits of a websocket connection's send buffer (wsConn).
const (
	// wsMaxBacklog is how many bytes a websocket viewer may lag behind
	// before it is disconnected (about 2 s of the feed at 5,000 events/s;
	// the JS client reconnects and gets the replay). Without it a stalled
	// viewer would make the library queue every event for it until the
	// ping timeout (45 s).
	wsMaxBacklog = 4 << 20
	// wsWriteTimeout bounds one write to the peer, like sseWriteTimeout.
	wsWriteTimeout = 30 * time.Second
	// wsGateTimeout bounds how long a new connection's reads wait for
	// the Socket.IO layer (wsConn.gate); it is normally microseconds.
	wsGateTimeout = 10 * time.Second
	// wsKeepBuffer is the largest send buffer returned to wsBufs; larger
	// ones (after a burst) are left to the garbage collector.
	wsKeepBuffer = 256 << 10
)

var errWSBacklog = errors.New("livefeed: websocket viewer too far behind")

// wsBufs holds the send buffers of all websocket connections: a connection
// holds one only while it has something to send, so idle viewers cost no
// buffer, and busy ones do not grow a new one for every write.
var wsBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// wsHijacker wraps the ResponseWriter of a websocket upgrade request so that
// the websocket library (gorilla, inside the Socket.IO engine) writes its
// frames to a wsConn.
type wsHijacker struct {
	http.ResponseWriter
	// gated: a new Engine.IO connection (not the upgrade of a polling
	// one), whose reads wait for release (see wsConn.gate).
	gated bool
	conn  atomic.Pointer[wsConn]
}

func (w *wsHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c := newWSConn(conn, w.gated)
	w.conn.Store(c)
	return c, brw, nil
}

func (w *wsHijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// releaseReads opens the read gate of the websocket connection whose
// upgrade request the Engine.IO socket sock was created from, if any. The
// feed calls it from the engine's "connection" event, after the Socket.IO
// server's own listener has attached the socket's data handler.
func releaseReads(sock any) {
	s, ok := sock.(interface{ Request() *types.HttpContext })
	if !ok || s.Request() == nil {
		return
	}
	if h, ok := s.Request().Response().(*wsHijacker); ok {
		if c := h.conn.Load(); c != nil {
			c.release()
		}
	}
}

// isWebSocketUpgrade reports whether r asks for a websocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// wsConn coalesces a websocket connection's writes. The websocket library
// writes each frame (each live event: Engine.IO allows one packet per
// websocket message) with its own Write, that is one system call per event
// and viewer. Here Write only appends to a buffer, and one goroutine per
// connection sends whatever has accumulated in one write whenever the
// previous one is done: an idle connection sends a frame at once, a busy
// one sends many per system call. Frames stay whole and in order.
//
// Write never blocks. A viewer more than wsMaxBacklog behind, or a write
// that fails or takes over wsWriteTimeout, closes the connection; the
// library then sees the read fail and drops the socket.
//
// Reads of a new connection wait at a gate until release (or
// wsGateTimeout): the Engine.IO server starts reading a new websocket
// before the Socket.IO server has attached the socket's data handler, and
// a fast client's namespace CONNECT read in between is dropped, leaving
// that client without an answer until its connect timeout. Held back in the
// socket buffer instead, it is read once someone listens.
type wsConn struct {
	net.Conn

	gate     chan struct{} // closed by release; nil: reads are not gated
	gateOnce sync.Once
	gateStop func() bool

	mu      sync.Mutex
	buf     []byte // pending (from wsBufs); nil while there is nothing to send
	err     error  // sticky: the connection is unusable
	closing bool

	kick        chan struct{} // capacity 1: buf has data (or closing)
	flusherDone chan struct{}
	closeOnce   sync.Once
}

func newWSConn(conn net.Conn, gated bool) *wsConn {
	c := &wsConn{Conn: conn, kick: make(chan struct{}, 1), flusherDone: make(chan struct{})}
	if gated {
		c.gate = make(chan struct{})
		c.gateStop = time.AfterFunc(wsGateTimeout, c.release).Stop
	}
	go c.flusher()
	return c
}

// release opens the read gate. It is idempotent.
func (c *wsConn) release() {
	if c.gate == nil {
		return
	}
	c.gateOnce.Do(func() {
		c.gateStop()
		close(c.gate)
	})
}

func (c *wsConn) Read(p []byte) (int, error) {
	if c.gate != nil {
		<-c.gate
	}
	return c.Conn.Read(p)
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	if len(c.buf)+len(p) > wsMaxBacklog && len(c.buf) > 0 {
		c.err = errWSBacklog
		c.mu.Unlock()
		c.Conn.Close() // the reader fails, the library closes the socket
		return 0, errWSBacklog
	}
	if c.buf == nil {
		c.buf = (*wsBufs.Get().(*[]byte))[:0]
	}
	c.buf = append(c.buf, p...)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (c *wsConn) flusher() {
	defer close(c.flusherDone)
	for range c.kick {
		c.mu.Lock()
		b := c.buf
		c.buf = nil
		closing := c.closing
		if len(b) > 0 && !closing {
			// Under mu, so that Close's short deadline is never
			// replaced by this one.
			_ = c.Conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
		}
		c.mu.Unlock()
		var err error
		if len(b) > 0 {
			_, err = c.Conn.Write(b)
		}
		if b != nil && cap(b) <= wsKeepBuffer {
			wsBufs.Put(&b)
		}
		c.mu.Lock()
		if err != nil && c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
		if err != nil {
			c.Conn.Close()
			return
		}
		if closing {
			return
		}
	}
}

// SetWriteDeadline is ignored: writes only fill the buffer, and the flusher
// applies its own deadline to the real writes.
func (c *wsConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets only the read deadline (see SetWriteDeadline).
func (c *wsConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// Close sends what is pending (the library's close frame, typically),
// waiting at most a second, and closes the connection.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		if c.err == nil {
			c.err = net.ErrClosed
		}
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		c.mu.Unlock()
		select {
		case c.kick <- struct{}{}:
		default:
		}
		<-c.flusherDone
		c.Conn.Close()
		c.release() // a gated reader now fails on the closed connection
	})
	return nil
}
