package livefeed

import "encoding/binary"

// Websocket frames as a server writes them (RFC 6455 §5.2): unmasked, so a
// frame's bytes are the same for every connection.

// maxFrameHeader is the longest header of an unmasked frame.
const maxFrameHeader = 10

// appendTextFrame appends one final text frame holding the concatenation
// of parts.
func appendTextFrame(b []byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b = append(b, 0x80|0x1) // FIN, text
	switch {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// frameTracker follows what a websocket library writes on a hijacked HTTP
// connection, in whatever pieces it writes it, to tell when the stream is
// between two messages: past the HTTP response that accepts the upgrade,
// not inside a frame's header or payload, and not between the fragments of
// a fragmented message (where only control frames may go). Only there may
// frames of someone else go in.
type frameTracker struct {
	http int      // how much of the "\r\n\r\n" ending the HTTP response was seen; 4: all
	hdr  [14]byte // the current frame's header, as far as written
	nhdr int
	left uint64 // payload bytes of the current frame still to come
	frag bool   // a fragmented data message has begun and not yet ended
}

// between reports whether the stream is between two messages.
func (t *frameTracker) between() bool {
	return t.http == len(httpEnd) && t.nhdr == 0 && t.left == 0 && !t.frag
}

const httpEnd = "\r\n\r\n"

// feed follows p, the next bytes written, and reports between().
func (t *frameTracker) feed(p []byte) bool {
	for len(p) > 0 {
		if t.http < len(httpEnd) {
			if p[0] == httpEnd[t.http] {
				t.http++
			} else if p[0] == '\r' {
				t.http = 1
			} else {
				t.http = 0
			}
			p = p[1:]
			continue
		}
		if t.left > 0 {
			n := uint64(len(p))
			if n > t.left {
				n = t.left
			}
			t.left -= n
			p = p[n:]
			continue
		}
		t.hdr[t.nhdr] = p[0]
		t.nhdr++
		p = p[1:]
		if t.nhdr < 2 || t.nhdr < headerLen(t.hdr[1]) {
			continue
		}
		h := t.hdr[:t.nhdr]
		t.nhdr = 0
		if op := h[0] & 0x0f; op < 0x8 { // data or continuation, not control
			t.frag = h[0]&0x80 == 0
		}
		switch n := h[1] & 0x7f; n {
		case 126:
			t.left = uint64(binary.BigEndian.Uint16(h[2:]))
		case 127:
			t.left = binary.BigEndian.Uint64(h[2:])
		default:
			t.left = uint64(n)
		}
	}
	return t.between()
}

// headerLen is the length of a frame header from its second byte.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 { // masked (clients only)
		n += 4
	}
	return n
}
