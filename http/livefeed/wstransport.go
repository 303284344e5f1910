package livefeed

import (
	"sync"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// wsTransportCtor builds the Engine.IO websocket transport of the feed: the
// library's own (handshake, upgrade, reads, ping/pong, close), except that
// it sends synchronously (wsTransport.Send).
type wsTransportCtor struct{ transports.WebSocketBuilder }

func (*wsTransportCtor) New(ctx *types.HttpContext) transports.Transport {
	t := &wsTransport{Websocket: transports.NewWebSocket(ctx), wsc: ctx.Websocket}
	if h, ok := ctx.Response().(*wsHijacker); ok {
		t.conn = h.conn.Load()
	}
	return t
}

// wsTransport is the library's websocket transport with a synchronous
// Send: the packets the engine flushes are framed (by the websocket
// library) into the connection's wsConn before Send returns, instead of on
// the transport's own goroutine some time later. wsConn.Write never blocks,
// so sending inline costs the caller nothing, and it gives the live feed an
// ordering guarantee it can build on: once an engine write made while this
// transport is the socket's transport has returned, everything the engine
// had queued before is in the wsConn, and frames written to the wsConn
// directly (wsConn.WriteFrames) come after it (broadcast.go).
//
// The transport stays writable: the engine never holds packets back for it.
type wsTransport struct {
	transports.Websocket
	wsc  *types.WebSocketConn
	conn *wsConn // nil if the upgrade request was not wrapped (not expected)

	// mu keeps the websocket library to one writer at a time. The engine
	// sends under its own per-socket lock, except the upgrade probe's
	// answer, which it writes before the transport becomes the socket's.
	mu sync.Mutex
}

// Send writes packets as websocket messages, in order, before returning.
// Like the library's websocket transport it then emits "drain", on which
// the engine runs the packets' send callbacks: here inside the engine's
// flush, under its lock, so a callback must not write to the socket
// (neither this package nor the Socket.IO layer passes any).
func (t *wsTransport) Send(packets []*packet.Packet) {
	defer t.Emit("drain")
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range packets {
		data, err := t.Parser().EncodePacket(p, t.SupportsBinary())
		if err != nil {
			t.fail()
			return
		}
		mt := ws.BinaryMessage
		if _, ok := data.(*types.StringBuffer); ok {
			mt = ws.TextMessage
		}
		compress := p.Options == nil || p.Options.Compress == nil || *p.Options.Compress
		if pmd := t.PerMessageDeflate(); pmd == nil || data.Len() < pmd.Threshold {
			compress = false
		}
		t.wsc.EnableWriteCompression(compress)
		if err := t.wsc.WriteMessage(mt, data.Bytes()); err != nil {
			t.fail()
			return
		}
	}
}

// fail gives up on the connection after an error. Send runs inside the
// engine's flush, under the engine socket's lock, so it must not report
// the error through the engine's events (the library's own transport does,
// from its writer goroutine: here the close that follows would call back
// into the engine and deadlock). It closes the connection instead: its
// reader fails, and the library closes the socket as for any broken
// connection.
func (t *wsTransport) fail() {
	if t.conn != nil {
		t.conn.abort()
		return
	}
	_ = t.wsc.NetConn().Close()
}
