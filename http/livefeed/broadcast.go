package livefeed

import (
	"sync/atomic"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/hub"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Socket.IO emission. One goroutine, broadcast, takes the hub's batches
// and hands each connected socket the events of its audience. The library's
// room broadcast is not used: it encodes and copies every packet per socket
// and per event (docs/performance.md, "Live feed").
//
// A socket on a websocket gets the frames of a batch written straight to
// its connection (wsConn.WriteFrames): the frames `42["hpfeedevent",{...}]`
// of an audience are the same bytes for every viewer, so they are built
// once per batch and audience and queued by reference, and the viewer's
// connection sends all it has in one writev. The library keeps everything
// else: handshake, upgrade, ping/pong, CONNECT, close, and every packet of
// its own. A socket on long-polling (and a websocket until it is known to
// be safe, see sioViewer.direct) gets the events through its Engine.IO
// connection as packets.

// sioViewer is one Socket.IO socket the broadcaster sends to.
type sioViewer struct {
	sock     *socket.Socket
	entitled bool
	gone     atomic.Bool // disconnected

	// direct is the connection of the socket's websocket transport once
	// frames may be written to it directly, nil before. Direct frames
	// must come after everything the engine had queued for the socket
	// before them (CONNECT, the replay, events sent as packets while the
	// socket was polling or upgrading). An engine write returns only when
	// the engine has flushed everything queued before it, and with the
	// websocket as its transport a flush puts it into the wsConn
	// (wsTransport.Send): so once one engine write has been made while
	// the websocket was the socket's transport, the rest may go direct
	// (for a socket that started on a websocket, at once: see
	// bornOnWebsocket). Only the broadcaster reads and writes it.
	direct *wsConn
}

// sioBatch is what one wake-up of the broadcaster sends to the viewers of
// one audience, encoded on first use: nothing for an audience without
// viewers, frames only if some viewer is direct, packets only if some is
// not.
type sioBatch struct {
	s        *Server
	events   []*peba.Event
	entitled bool
	frames   [][]byte // one piece: every event's websocket frame
	packets  [][]byte // one Socket.IO packet per event
}

// sioEventPrefix and sioEventSuffix enclose a payload in a Socket.IO
// EVENT packet for namespace "/" (what socket.Emit("hpfeedevent", ...)
// encodes); on a websocket the Engine.IO MESSAGE type "4" goes first.
var (
	sioEventPrefix = []byte(`2["hpfeedevent",`)
	eioMessage     = []byte("4")
	sioEventSuffix = []byte("]")
)

func (b *sioBatch) wsFrames() [][]byte {
	if b.frames == nil {
		n := 0
		for _, ev := range b.events {
			n += maxFrameHeader + len(eioMessage) + len(sioEventPrefix) + len(b.s.payload(ev, b.entitled)) + len(sioEventSuffix)
		}
		out := make([]byte, 0, n)
		for _, ev := range b.events {
			out = appendTextFrame(out, eioMessage, sioEventPrefix, b.s.payload(ev, b.entitled), sioEventSuffix)
		}
		b.frames = [][]byte{out}
	}
	return b.frames
}

func (b *sioBatch) sioPackets() [][]byte {
	if b.packets == nil {
		b.packets = make([][]byte, len(b.events))
		for i, ev := range b.events {
			p := b.s.payload(ev, b.entitled)
			pkt := make([]byte, 0, len(sioEventPrefix)+len(p)+len(sioEventSuffix))
			pkt = append(append(append(pkt, sioEventPrefix...), p...), sioEventSuffix...)
			b.packets[i] = pkt
		}
	}
	return b.packets
}

// send hands b to one viewer.
func (s *Server) send(v *sioViewer, b *sioBatch) {
	if len(b.events) == 0 {
		return
	}
	conn := v.sock.Conn()
	if conn.ReadyState() != "open" {
		return // closing: nothing may follow what the library sent last
	}
	ws, _ := conn.Transport().(*wsTransport)
	if ws != nil && ws.conn != nil && v.direct == ws.conn {
		// An error means the connection is closing: the library
		// notices on its side and the socket leaves.
		_ = ws.conn.WriteFrames(b.wsFrames())
		return
	}
	for _, p := range b.sioPackets() {
		// The reader is per socket, the bytes are shared: the engine
		// only reads them.
		conn.Write(types.NewStringBuffer(p), nil, nil)
	}
	if ws != nil {
		v.direct = ws.conn
	}
}

// replayEntry is one event the broadcaster has sent, kept for replay.
type replayEntry struct {
	ev *peba.Event
	at time.Time
}

// broadcast is the only goroutine that emits to Socket.IO viewers. New
// sockets are handed to it (s.joins) so that "replay, then live events"
// happens between two wake-ups: every event reaches a socket exactly once,
// in order.
//
// It is subscribed to the hub only while it has viewers. Without any, the
// hub keeps only its own replay of a publication (ReplaySize events)
// instead of copying every published event for a broadcaster that drops
// them: at full ingest, with nobody watching the map, those copies were a
// fifth of all the memory the server allocated (docs/performance.md,
// session 7). The first viewer after an idle spell subscribes again, and
// the hub's replay (with its publication times) becomes the broadcaster's.
func (s *Server) broadcast(size int, age time.Duration) {
	defer close(s.stopped)
	var (
		sub       *hub.Sub        // nil while there is no viewer
		ready     <-chan struct{} // sub.Ready(), nil while idle
		ring      []replayEntry   // the newest size events sent, oldest at next
		next      int
		batches   []*hub.Batch
		events    []*peba.Event
		community []*peba.Event
		audience  [2][]*sioViewer // [0] anonymous, [1] entitled
	)
	defer func() {
		if sub != nil {
			sub.Close()
		}
	}()
	all := hub.Filter{Domains: []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}}
	// take sends what the hub has queued to the viewers and keeps it for
	// replay; false once the hub is closed.
	take := func() bool {
		var more bool
		batches, more = sub.Take(batches[:0])
		now := time.Now()
		for _, b := range batches {
			for i, ev := range b.Events {
				events = append(events, ev)
				if ev.Domain == peba.DomainCommunity {
					community = append(community, ev)
				}
				at := now
				if b.At != nil {
					at = b.At[i]
				}
				if size > 0 {
					if len(ring) < size {
						ring = append(ring, replayEntry{ev, at})
					} else {
						ring[next] = replayEntry{ev, at}
						next = (next + 1) % size
					}
				}
			}
		}
		clear(batches)
		for i, evs := range [2][]*peba.Event{community, events} {
			audience[i] = prune(audience[i])
			if len(audience[i]) == 0 || len(evs) == 0 {
				continue
			}
			b := &sioBatch{s: s, events: evs, entitled: i == 1}
			for _, v := range audience[i] {
				s.send(v, b)
			}
		}
		clear(events)
		clear(community)
		events, community = events[:0], community[:0]
		return more
	}
	for {
		// While subscribed, the end of the hub shows in take (after what
		// was pending); while idle, here.
		hubDone := s.hub.Done()
		if sub != nil {
			hubDone = nil
		}
		select {
		case <-s.done:
			return
		case <-hubDone:
			return
		case <-ready:
			if !take() {
				return
			}
			if len(audience[0])+len(audience[1]) == 0 {
				// The last viewer left: stop taking copies of
				// every event; the hub's replay covers the next one.
				sub.Close()
				sub, ready = nil, nil
				clear(ring)
				ring, next = ring[:0], 0
			}
		case v := <-s.joins:
			if v.gone.Load() || !v.sock.Connected() {
				continue
			}
			if sub == nil {
				// The first viewer: the hub's replay comes first.
				sub = s.hub.SubscribeBatches(all)
				ready = sub.Ready()
				if !take() {
					return
				}
			}
			f := viewer{entitled: v.entitled}.filter()
			cutoff := time.Now().Add(-age)
			for i := range ring {
				r := ring[(next+i)%len(ring)]
				if !r.at.Before(cutoff) && f.Allows(r.ev.Domain) {
					events = append(events, r.ev)
				}
			}
			v.direct = bornOnWebsocket(v.sock)
			s.send(v, &sioBatch{s: s, events: events, entitled: v.entitled})
			clear(events)
			events = events[:0]
			if v.entitled {
				v.sock.Join(RoomActive)
				audience[1] = append(audience[1], v)
			} else {
				v.sock.Join(RoomAnon)
				audience[0] = append(audience[0], v)
			}
		}
	}
}

// bornOnWebsocket returns the wsConn of a socket that has been on a
// websocket from its start (not upgraded from polling), nil otherwise.
// Everything the engine sent such a socket went through wsTransport.Send
// when it was written, and the Socket.IO CONNECT is written before the
// connection event that hands the socket to the broadcaster: direct frames
// may follow at once, the replay included. (The engine marks a socket
// upgraded before it switches its transport, so a websocket transport seen
// on a socket not marked upgraded was its first.)
func bornOnWebsocket(sock *socket.Socket) *wsConn {
	conn := sock.Conn()
	if ws, ok := conn.Transport().(*wsTransport); ok && !conn.Upgraded() {
		return ws.conn
	}
	return nil
}

// prune removes the viewers that have left, keeping the order.
func prune(vs []*sioViewer) []*sioViewer {
	out := vs[:0]
	for _, v := range vs {
		if !v.gone.Load() {
			out = append(out, v)
		}
	}
	clear(vs[len(out):])
	return out
}
