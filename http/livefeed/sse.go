package livefeed

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/peba-go/peba"
)

// sseWriteTimeout bounds one write to an SSE client. The server's
// WriteTimeout is cleared for the stream (it would end every stream), so a
// dead peer is detected here instead.
const sseWriteTimeout = 30 * time.Second

// sseMaxBatch bounds the events written between two flushes.
const sseMaxBatch = 512

// frames are the encodings of one event, shared by every connection.
type frames struct {
	domain peba.Domain
	id     string // SSE id, "" if the event ID cannot be a field value
	full   []byte // JSON object for entitled viewers
	anon   []byte // sanitized JSON object
}

// memo encodes each event once for all viewers. The hub hands the same
// *peba.Event to every subscriber, so the pointer is the key; the newest
// size entries are kept.
type memo struct {
	m    sync.Map // *peba.Event -> *frames
	mu   sync.Mutex
	keys []*peba.Event
	next int
}

func (m *memo) init(size int) { m.keys = make([]*peba.Event, size) }

func (m *memo) get(ev *peba.Event, opt SanitizeOptions) *frames {
	if f, ok := m.m.Load(ev); ok {
		return f.(*frames)
	}
	p := NewPayload(ev)
	f := &frames{
		domain: ev.Domain,
		full:   p.AppendJSON(nil),
		anon:   Sanitize(p, opt).AppendJSON(nil),
	}
	if ev.ID != "" && len(ev.ID) <= 256 && !strings.ContainsAny(ev.ID, "\r\n\x00") {
		f.id = ev.ID
	}
	if old, loaded := m.m.LoadOrStore(ev, f); loaded {
		return old.(*frames)
	}
	m.mu.Lock()
	if old := m.keys[m.next]; old != nil {
		m.m.Delete(old)
	}
	m.keys[m.next] = ev
	m.next = (m.next + 1) % len(m.keys)
	m.mu.Unlock()
	return f
}

// appendSSE appends one SSE message: the event ID (for client-side
// de-duplication across reconnects), the event name and the JSON payload
// (one line: the encoder escapes every control character).
func appendSSE(b []byte, f *frames, entitled bool) []byte {
	if f.id != "" {
		b = append(b, "id: "...)
		b = append(b, f.id...)
		b = append(b, '\n')
	}
	b = append(b, "event: hpfeedevent\ndata: "...)
	if entitled {
		b = append(b, f.full...)
	} else {
		b = append(b, f.anon...)
	}
	return append(b, '\n', '\n')
}

// stream serves GET /api/v1/events/stream: the replay, then live events,
// with a comment line every s.heartbeat. Last-Event-ID is ignored: every
// connection starts with the replay and clients de-duplicate by id.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	v, err := s.identify(r.Context(), bearer(r.Header.Get("Authorization")))
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
	rc := http.NewResponseController(w)
	// The server's Read/WriteTimeout would end every stream (an expired
	// read deadline cancels the request context); clear both, then bound
	// each write instead.
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	_ = rc.SetWriteDeadline(time.Time{})

	sub := s.hub.Subscribe(v.filter())
	defer sub.Close()
	s.mConns.WithLabelValues("sse").Inc()
	defer s.mConns.WithLabelValues("sse").Dec()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	// retry: tells EventSource how long to wait before reconnecting.
	buf := append(make([]byte, 0, 4096), "retry: 5000\n\n"...)
	write := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		if _, err := w.Write(buf); err != nil {
			return false
		}
		buf = buf[:0]
		return rc.Flush() == nil
	}
	if !write() {
		return
	}
	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			buf = append(buf, ": heartbeat\n\n"...)
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			buf = appendSSE(buf, s.memo.get(ev, s.sanitize), v.entitled)
			// Drain what is already queued: one write and one flush per
			// burst instead of per event.
		drain:
			for n := 1; n < sseMaxBatch; n++ {
				select {
				case ev, ok := <-sub.C():
					if !ok {
						break drain
					}
					buf = appendSSE(buf, s.memo.get(ev, s.sanitize), v.entitled)
				default:
					break drain
				}
			}
		}
		if !write() {
			return
		}
		if cap(buf) > 1<<20 {
			buf = make([]byte, 0, 4096) // do not keep a burst's buffer per idle client
		}
	}
}
