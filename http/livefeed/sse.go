package livefeed

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/hub"
)

// sseWriteTimeout bounds one write to an SSE client. The server's
// WriteTimeout is cleared for the stream (it would end every stream), so a
// dead peer is detected here instead.
const sseWriteTimeout = 30 * time.Second

const (
	sseIDPrefix   = "id: "
	sseDataPrefix = "event: hpfeedevent\ndata: "
)

// appendSSE appends one SSE message: the event ID (for client-side
// de-duplication across reconnects, left out if it cannot be a field
// value), the event name and the JSON payload (one line: the encoder
// escapes every control character).
func appendSSE(b []byte, id string, payload []byte) []byte {
	if id != "" && len(id) <= 256 && !strings.ContainsAny(id, "\r\n\x00") {
		b = append(b, sseIDPrefix...)
		b = append(b, id...)
		b = append(b, '\n')
	}
	b = append(b, sseDataPrefix...)
	b = append(b, payload...)
	return append(b, '\n', '\n')
}

// stream serves GET /api/v1/events/stream: the replay, then live events,
// with a comment line every s.heartbeat. Last-Event-ID is ignored: every
// connection starts with the replay and clients de-duplicate by id.
//
// Cost per viewer is what limits how many a node can serve (docs/
// performance.md, "Live feed"), so the hot path is lean: the hub hands all
// viewers of one audience the same batches, each batch's SSE bytes are
// built once (sseBatch), and a viewer's wake-up sends everything pending in
// one write. On HTTP/1.1 that write is a single writev of the shared bytes
// on the hijacked connection (rawSSE); net/http's response writer would
// copy them and split them into several writes.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	c, present, ok := auth.ParseAuthorization(r.Header.Get("Authorization"))
	v, err := s.identify(r.Context(), c, present, ok)
	if err != nil {
		status := http.StatusServiceUnavailable
		if peba.ErrorCode(err) == peba.EUNAUTHORIZED {
			status = http.StatusUnauthorized
			w.Header().Set("WWW-Authenticate", `Bearer realm="peba"`)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": peba.ErrorMessage(err)})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	out, err := newSSEWriter(w, r)
	if err != nil {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	if _, ok := out.(*rawSSE); ok {
		// The connection is ours now: return, and let net/http free
		// what it kept for it (buffers, request, a deep stack): an
		// idle viewer costs ~10 KiB instead of ~32.
		go s.pump(out, v)
		return
	}
	s.pump(out, v)
}

// pump sends the replay, live events and heartbeats to one SSE viewer
// until it disconnects, the feed closes or the hub closes.
func (s *Server) pump(out sseWriter, v viewer) {
	defer out.close()
	sub := s.hub.SubscribeBatches(v.filter())
	defer sub.Close()
	s.mConns.WithLabelValues("sse").Inc()
	defer s.mConns.WithLabelValues("sse").Dec()

	// retry: tells EventSource how long to wait before reconnecting.
	if !out.write([][]byte{[]byte("retry: 5000\n\n")}) {
		return
	}
	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	s.viewers.Add(1)
	defer s.viewers.Add(-1)
	var (
		batches []*hub.Batch
		pieces  [][]byte
		pace    *time.Timer // see below
	)
	for {
		more, events := true, false
		select {
		case <-out.gone():
			return
		case <-s.done:
			return
		case <-tick.C:
			pieces = append(pieces, sseHeartbeat)
		case <-sub.Ready():
			// Everything pending, in one write: a viewer that fell
			// behind catches up in one go.
			batches, more = sub.Take(batches[:0])
			for _, b := range batches {
				pieces = append(pieces, s.sseBatch(b, v.entitled))
			}
			events = len(batches) > 0
			clear(batches) // do not pin them while idle
		}
		if len(pieces) > 0 && !out.write(pieces) {
			return
		}
		// Pacing: after a write of events, no other for the gap; what
		// is published meanwhile waits, and goes out in one write.
		if gap := s.writeGap(); events && more && gap > 0 {
			if pace == nil {
				pace = time.NewTimer(gap)
				defer pace.Stop()
			} else {
				pace.Reset(gap)
			}
			select {
			case <-out.gone():
				return
			case <-s.done:
				return
			case <-pace.C:
			}
		}
		clear(pieces)
		pieces = pieces[:0]
		if !more {
			return
		}
	}
}

var sseHeartbeat = []byte(": heartbeat\n\n")

// sseKey is the Batch.Memo key of a batch's SSE bytes for one audience.
type sseKey struct{ entitled bool }

// sseBatch returns the SSE messages of b for the audience, encoded by the
// first viewer that needs them and shared with the others.
func (s *Server) sseBatch(b *hub.Batch, entitled bool) []byte {
	return b.Memo(sseKey{entitled}, func() any {
		// Sized up front: the bytes of every batch are garbage soon,
		// and the collector's work follows what is allocated.
		n := 0
		for _, ev := range b.Events {
			n += len(sseIDPrefix) + len(ev.ID) + len(sseDataPrefix) + len(s.payload(ev, entitled)) + 3
		}
		out := make([]byte, 0, n)
		for _, ev := range b.Events {
			out = appendSSE(out, ev.ID, s.payload(ev, entitled))
		}
		return out
	}).([]byte)
}

// sseWriter sends an SSE response body.
type sseWriter interface {
	// write sends pieces (shared: not modified, not kept) at once and
	// reports whether the viewer can still be written to.
	write(pieces [][]byte) bool
	// gone is closed when the viewer has disconnected.
	gone() <-chan struct{}
	close()
}

// newSSEWriter starts the response: on HTTP/1.1 on a raw connection taken
// over from net/http, otherwise (HTTP/1.0, HTTP/2, a ResponseWriter that
// cannot be hijacked) through net/http.
func newSSEWriter(w http.ResponseWriter, r *http.Request) (sseWriter, error) {
	rc := http.NewResponseController(w)
	if r.ProtoMajor == 1 && r.ProtoMinor == 1 {
		if conn, brw, err := rc.Hijack(); err == nil {
			return newRawSSE(conn, brw, w.Header()), nil
		}
	}
	// The server's Read/WriteTimeout would end every stream (an expired
	// read deadline cancels the request context); clear both, then bound
	// each write instead.
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	_ = rc.SetWriteDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	return &httpSSE{w: w, rc: rc, ctx: r.Context()}, nil
}

// httpSSE writes through net/http.
type httpSSE struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	ctx interface{ Done() <-chan struct{} }
}

func (h *httpSSE) write(pieces [][]byte) bool {
	_ = h.rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
	for _, p := range pieces {
		if _, err := h.w.Write(p); err != nil {
			return false
		}
	}
	return h.rc.Flush() == nil
}

func (h *httpSSE) gone() <-chan struct{} { return h.ctx.Done() }
func (h *httpSSE) close()                {}

// rawSSE writes an HTTP/1.1 chunked response on a hijacked connection, one
// chunk per write, sent with one writev. A goroutine reads the connection
// (viewers send nothing) to notice the disconnect that the request context
// no longer reports after the hijack.
type rawSSE struct {
	conn     net.Conn
	closed   chan struct{}
	bufs     net.Buffers
	hdr      []byte
	deadline time.Time // of the connection's writes
}

func newRawSSE(conn net.Conn, brw *bufio.ReadWriter, header http.Header) *rawSSE {
	// Clear the deadlines the server set for the request; writes set
	// their own.
	_ = conn.SetDeadline(time.Time{})
	r := &rawSSE{conn: conn, closed: make(chan struct{}), hdr: make([]byte, 0, 32)}
	// Only what net/http already read ahead needs its buffer; otherwise
	// read the connection itself and let the 4 KiB bufio.Reader go.
	var rd io.Reader = conn
	if brw.Reader.Buffered() > 0 {
		rd = brw.Reader
	}
	go func() {
		defer close(r.closed)
		var b [256]byte
		for {
			if _, err := rd.Read(b[:]); err != nil {
				return
			}
		}
	}()
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\nDate: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n")
	_ = header.Write(&b)
	b.WriteString("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
	r.bufs = net.Buffers{b.Bytes()}
	if _, err := r.bufs.WriteTo(conn); err != nil {
		conn.Close()
	}
	return r
}

func (r *rawSSE) write(pieces [][]byte) bool {
	n := 0
	for _, p := range pieces {
		n += len(p)
	}
	if n == 0 {
		return true
	}
	r.hdr = append(strconv.AppendInt(r.hdr[:0], int64(n), 16), '\r', '\n')
	r.bufs = append(append(append(r.bufs[:0], r.hdr), pieces...), crlf)
	// Each write gets sseWriteTimeout, give or take a second: moving the
	// deadline costs a timer update, so it moves at most once a second.
	if now := time.Now(); r.deadline.Sub(now) < sseWriteTimeout-time.Second {
		r.deadline = now.Add(sseWriteTimeout)
		_ = r.conn.SetWriteDeadline(r.deadline)
	}
	bufs := r.bufs // WriteTo consumes its receiver
	_, err := bufs.WriteTo(r.conn)
	clear(r.bufs)
	return err == nil
}

var crlf = []byte("\r\n")

func (r *rawSSE) gone() <-chan struct{} { return r.closed }

// close ends the chunked body and the connection.
func (r *rawSSE) close() {
	_ = r.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = r.conn.Write([]byte("0\r\n\r\n"))
	_ = r.conn.Close()
}
