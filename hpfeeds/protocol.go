package hpfeeds

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Opcodes of the hpfeeds protocol (seckc.md §6).
const (
	OpError       byte = 0 // broker -> client: UTF-8 message
	OpInfo        byte = 1 // broker -> client, once: len8 name + nonce
	OpAuth        byte = 2 // client -> broker: len8 ident + SHA1(nonce || secret)
	OpPublish     byte = 3 // both: len8 ident + len8 channel + payload
	OpSubscribe   byte = 4 // client -> broker: len8 ident + channel
	OpUnsubscribe byte = 5 // client -> broker: len8 ident + channel (hpfeeds3 only)
)

// Frame limits. HeaderLen is the uint32 length plus the opcode byte; the
// length counts the header too. MaxBody is the Python broker's MAXBUF (1 MiB,
// seckc.md §6 "Limits"); OP_INFO and OP_AUTH are bounded much tighter
// because their bodies are a short name plus a nonce or a 20-byte hash.
const (
	HeaderLen       = 5
	MaxBody         = 1 << 20
	maxInfoAuthBody = 256 + 20
)

// ErrProtocol is wrapped by every decoding error: the peer sent a frame that
// is not hpfeeds (bad length, unknown opcode, truncated field). The
// connection cannot be resynchronised and must be dropped.
var ErrProtocol = errors.New("hpfeeds protocol error")

// errIncomplete is returned by DecodeFrame when b holds only part of a frame.
var errIncomplete = errors.New("incomplete hpfeeds frame")

// Frame is one hpfeeds message: an opcode and its body (without header).
type Frame struct {
	Op   byte
	Body []byte
}

// maxBody returns the largest body allowed for op, or -1 for an unknown
// opcode (hpfeeds3 Unpacker limits, seckc.md §6).
func maxBody(op byte) int {
	switch op {
	case OpInfo, OpAuth:
		return maxInfoAuthBody
	case OpError, OpPublish, OpSubscribe, OpUnsubscribe:
		return MaxBody
	}
	return -1
}

// checkHeader validates a frame header and returns the body length.
func checkHeader(h []byte) (int, error) {
	total := binary.BigEndian.Uint32(h[:4])
	op := h[4]
	limit := maxBody(op)
	if limit < 0 {
		return 0, fmt.Errorf("cannot decode frame: unknown opcode %d: %w", op, ErrProtocol)
	}
	if total < HeaderLen || uint64(total)-HeaderLen > uint64(limit) {
		return 0, fmt.Errorf("cannot decode frame: length %d out of range for opcode %d: %w", total, op, ErrProtocol)
	}
	return int(total) - HeaderLen, nil
}

// DecodeFrame decodes the frame at the start of b. It returns the frame
// (whose Body aliases b) and the number of bytes it occupied. If b holds only
// part of a valid frame it returns n == 0 and a nil error; a frame that can
// never be valid (unknown opcode, length outside the opcode's limit) is an
// error wrapping ErrProtocol.
func DecodeFrame(b []byte) (f Frame, n int, err error) {
	if len(b) < HeaderLen {
		return Frame{}, 0, nil
	}
	bodyLen, err := checkHeader(b[:HeaderLen])
	if err != nil {
		return Frame{}, 0, err
	}
	if len(b) < HeaderLen+bodyLen {
		return Frame{}, 0, nil
	}
	return Frame{Op: b[4], Body: b[HeaderLen : HeaderLen+bodyLen]}, HeaderLen + bodyLen, nil
}

// ReadFrame reads one frame from r. The header is validated before the body
// is allocated, so a peer cannot make it allocate more than MaxBody bytes.
// The returned body is freshly allocated and owned by the caller.
func ReadFrame(r io.Reader) (Frame, error) {
	var h [HeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	bodyLen, err := checkHeader(h[:])
	if err != nil {
		return Frame{}, err
	}
	body := make([]byte, bodyLen)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("cannot read frame body: %w", err)
	}
	return Frame{Op: h[4], Body: body}, nil
}

// appendFrame encodes op with the given fields: every field but the last is
// written as strpack8 (uint8 length + bytes), the last takes the rest of
// the frame.
func appendFrame(dst []byte, op byte, fields ...[]byte) ([]byte, error) {
	size := 0
	for i, f := range fields {
		if i < len(fields)-1 {
			if len(f) > 255 {
				return dst, fmt.Errorf("cannot encode frame: field of %d bytes exceeds 255", len(f))
			}
			size++
		}
		size += len(f)
	}
	if size > maxBody(op) {
		return dst, fmt.Errorf("cannot encode frame: body of %d bytes exceeds the limit for opcode %d", size, op)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(HeaderLen+size))
	dst = append(dst, op)
	for i, f := range fields {
		if i < len(fields)-1 {
			dst = append(dst, byte(len(f)))
		}
		dst = append(dst, f...)
	}
	return dst, nil
}

// AuthHash is the OP_AUTH proof: SHA1(nonce || secret) (seckc.md §6).
func AuthHash(nonce []byte, secret string) [sha1.Size]byte {
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(secret))
	var sum [sha1.Size]byte
	h.Sum(sum[:0])
	return sum
}

// AppendInfo appends an OP_INFO frame (broker name, nonce) to dst.
func AppendInfo(dst []byte, name string, nonce []byte) ([]byte, error) {
	return appendFrame(dst, OpInfo, []byte(name), nonce)
}

// AppendAuth appends an OP_AUTH frame answering nonce to dst.
func AppendAuth(dst []byte, ident, secret string, nonce []byte) ([]byte, error) {
	sum := AuthHash(nonce, secret)
	return appendFrame(dst, OpAuth, []byte(ident), sum[:])
}

// AppendSubscribe appends an OP_SUBSCRIBE frame to dst.
func AppendSubscribe(dst []byte, ident, channel string) ([]byte, error) {
	return appendFrame(dst, OpSubscribe, []byte(ident), []byte(channel))
}

// AppendPublish appends an OP_PUBLISH frame to dst. ident and channel are at
// most 255 bytes, payload at most MaxBody minus both and their length bytes.
func AppendPublish(dst []byte, ident, channel string, payload []byte) ([]byte, error) {
	return appendFrame(dst, OpPublish, []byte(ident), []byte(channel), payload)
}

// AppendError appends an OP_ERROR frame to dst.
func AppendError(dst []byte, msg string) ([]byte, error) {
	return appendFrame(dst, OpError, []byte(msg))
}

// splitField splits a strpack8 field off the front of b.
func splitField(b []byte, what string) (field, rest []byte, err error) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, nil, fmt.Errorf("cannot decode %s: truncated field: %w", what, ErrProtocol)
	}
	n := int(b[0])
	return b[1 : 1+n], b[1+n:], nil
}

// ParseInfo decodes an OP_INFO body.
func ParseInfo(body []byte) (name string, nonce []byte, err error) {
	f, rest, err := splitField(body, "info")
	if err != nil {
		return "", nil, err
	}
	return string(f), rest, nil
}

// ParseAuth decodes an OP_AUTH body. The hash must be 20 bytes.
func ParseAuth(body []byte) (ident string, hash []byte, err error) {
	f, rest, err := splitField(body, "auth")
	if err != nil {
		return "", nil, err
	}
	if len(rest) != sha1.Size {
		return "", nil, fmt.Errorf("cannot decode auth: hash of %d bytes: %w", len(rest), ErrProtocol)
	}
	return string(f), rest, nil
}

// ParseSubscribe decodes an OP_SUBSCRIBE (or OP_UNSUBSCRIBE) body.
func ParseSubscribe(body []byte) (ident, channel string, err error) {
	f, rest, err := splitField(body, "subscribe")
	if err != nil {
		return "", "", err
	}
	return string(f), string(rest), nil
}

// ParsePublish decodes an OP_PUBLISH body. payload aliases body.
func ParsePublish(body []byte) (ident, channel string, payload []byte, err error) {
	id, rest, err := splitField(body, "publish ident")
	if err != nil {
		return "", "", nil, err
	}
	ch, payload, err := splitField(rest, "publish channel")
	if err != nil {
		return "", "", nil, err
	}
	return string(id), string(ch), payload, nil
}

// ParseError decodes an OP_ERROR body into printable text, at most 512
// bytes, with invalid UTF-8 replaced: the text comes from the network and
// ends up in logs and in State.
func ParseError(body []byte) string {
	return clip(string(body), 512)
}

// clip truncates s to at most n bytes at a rune boundary and replaces
// invalid UTF-8 with U+FFFD.
func clip(s string, n int) string {
	if len(s) > n {
		i := n
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
