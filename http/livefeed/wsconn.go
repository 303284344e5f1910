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
	// wsKeepPieces is the largest list of queued pieces a connection
	// keeps for reuse between writes (a few batches' worth: an idle
	// viewer holds it).
	wsKeepPieces = 16
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
	// pace returns the shortest time between two writes to the
	// connection (Server.writeGap); nil: none.
	pace func() time.Duration
	conn atomic.Pointer[wsConn]
}

func (w *wsHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c := newWSConn(conn, w.gated)
	c.pace = w.pace
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
// writes each frame (each packet: Engine.IO allows one per websocket
// message) with its own Write, that is one system call per packet and
// viewer. Here Write only queues, and one goroutine per connection sends
// whatever has accumulated in one writev whenever the previous write is
// done: an idle connection sends a frame at once, a busy one many per system
// call. Frames stay whole and in order.
//
// Besides the library's frames, the live feed queues frames of its own
// (WriteFrames): the shared bytes of a batch of events, the same for every
// viewer of an audience, queued by reference and never copied. They go
// between the library's messages, never inside one: Write follows the
// frames the library writes (frameTracker), and frames queued while a
// library message is incomplete wait for its end.
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
	out     net.Buffers // queued, in order; nil while there is nothing to send
	spare   net.Buffers // an empty out to reuse
	lib     []byte      // the library's bytes (from wsBufs); out refers into it
	libMark int         // lib[:libMark] is already in out
	held    [][]byte    // own frames waiting for the library's message to end
	queued  int         // bytes in out, lib[libMark:] and held
	own     bool        // out holds frames of WriteFrames (see pace)
	frames  frameTracker
	err     error // sticky: the connection is unusable
	closing bool

	kick        chan struct{} // capacity 1: something is queued (or closing)
	flusherDone chan struct{}
	closeOnce   sync.Once
	closed      chan struct{} // closed by Close: the flusher stops waiting

	// pace returns the shortest time between two writes of the feed's
	// frames (set before the first Write; nil: none). Like an SSE stream
	// (Server.pump), a connection whose last write carried feed frames
	// (WriteFrames) waits that long before the next write, which then
	// sends everything queued meanwhile; writes of the library's frames
	// alone (handshake, pings) do not make it wait.
	pace func() time.Duration
}

func newWSConn(conn net.Conn, gated bool) *wsConn {
	c := &wsConn{Conn: conn, kick: make(chan struct{}, 1), flusherDone: make(chan struct{}), closed: make(chan struct{})}
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

// Write queues the library's bytes (a copy: the library reuses its buffer).
func (c *wsConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if err := c.admit(len(p)); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	if c.lib == nil {
		c.lib = (*wsBufs.Get().(*[]byte))[:0]
	}
	c.lib = append(c.lib, p...)
	c.queued += len(p)
	if c.frames.feed(p) && len(c.held) > 0 {
		c.sealLib()
		c.queue(c.held...)
		c.held = nil
	}
	c.mu.Unlock()
	c.wake()
	return len(p), nil
}

// WriteFrames queues whole websocket frames of the feed's own, in order.
// The pieces are shared with other connections: they are sent as they are
// and must not be modified. Like Write it never blocks; it fails once the
// connection is unusable.
func (c *wsConn) WriteFrames(pieces [][]byte) error {
	n := 0
	for _, p := range pieces {
		n += len(p)
	}
	c.mu.Lock()
	if err := c.admit(n); err != nil {
		c.mu.Unlock()
		return err
	}
	c.queued += n
	c.own = true
	if c.frames.between() {
		c.sealLib()
		c.queue(pieces...)
	} else {
		c.held = append(c.held, pieces...)
	}
	c.mu.Unlock()
	c.wake()
	return nil
}

// admit checks that n more bytes may be queued; beyond the backlog it
// closes the connection. c.mu must be held.
func (c *wsConn) admit(n int) error {
	if c.err != nil {
		return c.err
	}
	if c.queued > 0 && c.queued+n > wsMaxBacklog {
		c.err = errWSBacklog
		c.Conn.Close() // the reader fails, the library closes the socket
		return errWSBacklog
	}
	return nil
}

// sealLib moves the library's bytes queued so far into out, so that what
// is queued next goes after them. c.mu must be held.
func (c *wsConn) sealLib() {
	if len(c.lib) > c.libMark {
		c.queue(c.lib[c.libMark:])
		c.libMark = len(c.lib)
	}
}

// queue appends pieces to out. c.mu must be held.
func (c *wsConn) queue(pieces ...[]byte) {
	if c.out == nil {
		c.out, c.spare = c.spare, nil
	}
	c.out = append(c.out, pieces...)
}

func (c *wsConn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *wsConn) flusher() {
	defer close(c.flusherDone)
	var (
		deadline time.Time   // of the connection's writes
		pace     *time.Timer // see below
	)
	defer func() {
		if pace != nil {
			pace.Stop()
		}
	}()
	for range c.kick {
		c.mu.Lock()
		c.sealLib()
		out, lib, own := c.out, c.lib, c.own
		c.out, c.lib, c.libMark = nil, nil, 0
		c.own = len(c.held) > 0 // held frames go out in a later write
		c.queued = 0            // but for held frames (rare: see Write)
		for _, h := range c.held {
			c.queued += len(h)
		}
		closing := c.closing
		// Each write gets wsWriteTimeout, give or take a second (moving
		// the deadline costs a timer update). Under mu, so that Close's
		// short deadline is never replaced by this one.
		if now := time.Now(); len(out) > 0 && !closing && deadline.Sub(now) < wsWriteTimeout-time.Second {
			deadline = now.Add(wsWriteTimeout)
			_ = c.Conn.SetWriteDeadline(deadline)
		}
		c.mu.Unlock()
		var err error
		if len(out) > 0 {
			pieces := out                   // WriteTo consumes its receiver
			_, err = pieces.WriteTo(c.Conn) // one writev on a TCP connection
		}
		if lib != nil && cap(lib) <= wsKeepBuffer {
			wsBufs.Put(&lib)
		}
		clear(out) // do not pin shared batches
		c.mu.Lock()
		if err != nil && c.err == nil {
			c.err = err
		}
		if c.spare == nil && cap(out) <= wsKeepPieces {
			c.spare = out[:0]
		}
		c.mu.Unlock()
		if err != nil {
			c.Conn.Close()
			return
		}
		if closing {
			return
		}
		// Pacing: after a write of feed frames, no other for the gap;
		// what is queued meanwhile goes out in one write.
		if c.pace == nil || !own || len(out) == 0 {
			continue
		}
		if gap := c.pace(); gap > 0 {
			if pace == nil {
				pace = time.NewTimer(gap)
			} else {
				pace.Reset(gap)
			}
			select {
			case <-pace.C:
			case <-c.closed:
			}
		}
	}
}

// abort closes the connection at once, dropping what is queued.
func (c *wsConn) abort() {
	c.mu.Lock()
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	c.Conn.Close()
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
		close(c.closed)
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
