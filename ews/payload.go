package ews

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strings"
	"unicode/utf8"

	"github.com/gabriel-vasile/mimetype"
	"github.com/peba-go/peba"
)

var b64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// decodeBase64 is Python's base64.b64decode without validate (binascii
// a2b_base64 non-strict mode): bytes outside the alphabet (whitespace, line
// breaks) are discarded, decoding stops at a completed padding, and a
// leftover partial quantum is an error. Non-ASCII input is an error too
// (Python refuses such a str). ok=false means PEBA would have crashed (B-8).
func decodeBase64(s []byte) (out []byte, ok bool) {
	out = make([]byte, 0, len(s)/4*3+3)
	var quad, pads int
	var left byte
	for _, c := range s {
		if c >= 0x80 {
			return nil, false
		}
		if c == '=' {
			if quad >= 2 {
				pads++
				if quad+pads >= 4 {
					return out, true
				}
			}
			continue
		}
		v := b64Value[c]
		if v == 0xff {
			continue
		}
		pads = 0
		switch quad {
		case 0:
			left, quad = v, 1
		case 1:
			out = append(out, left<<2|v>>4)
			left, quad = v&0x0f, 2
		case 2:
			out = append(out, left<<4|v>>2)
			left, quad = v&0x03, 3
		case 3:
			out = append(out, left<<6|v)
			quad = 0
		}
	}
	return out, quad == 0
}

var httpMethods = [...]string{"GET", "POST", "PUT", "DELETE", "PATCH", "CONNECT", "HEAD", "OPTIONS", "TRACE"}

// isHTTP is PEBA's rawhttp test (peba.md §4.7 step 3): the payload is valid
// UTF-8 and its first space-separated token contains an HTTP method name.
func isHTTP(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	tok := b
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		tok = b[:i]
	}
	for _, m := range httpMethods {
		if bytes.Contains(tok, []byte(m)) {
			return true
		}
	}
	return false
}

// newPayload builds the payload record of the decoded bytes: md5, PEBA's
// fuzzy HTTP hash and the MIME type. Data is kept only up to maxData bytes.
func newPayload(data []byte, maxData int) *peba.Payload {
	sum := md5.Sum(data)
	p := &peba.Payload{
		MD5:  hex.EncodeToString(sum[:]),
		Size: int64(len(data)),
		MIME: mimeType(data),
	}
	p.FuzzyHash = fuzzyHash(data, p.MD5)
	if len(data) <= maxData {
		p.Data = data
	}
	return p
}

// mimeType is the detected media type without parameters (libmagic's
// --mime-type form that PEBA stored as fileMagic, e.g. "text/plain").
func mimeType(data []byte) string {
	m := mimetype.Detect(data).String()
	if i := strings.IndexByte(m, ';'); i >= 0 {
		m = m[:i]
	}
	return m
}

// fuzzyHash is PEBA's getFuzzyHash (peba.md §4.10). On R = Python repr(data)
// it cuts R[s:e] where s follows the first "Host:" and e is the next
// backslash, and returns sha256 of the lower-cased rest; without a Host
// header (or without a backslash after it) it returns md5hex.
//
// R is never materialised: "Host:" consists of bytes repr writes literally
// and no escape sequence can produce it, so its first occurrence in R is its
// first occurrence in data, and the next backslash in R is the next byte of
// data that repr escapes.
func fuzzyHash(data []byte, md5hex string) string {
	hostAt := bytes.Index(data, []byte("Host:"))
	if hostAt < 0 {
		return md5hex
	}
	q := byte('\'')
	if bytes.IndexByte(data, '\'') >= 0 && bytes.IndexByte(data, '"') < 0 {
		q = '"'
	}
	s := hostAt + len("Host:")
	e := s
	for e < len(data) && !needsEscape(data[e], q) {
		e++
	}
	if e == len(data) {
		// The only backslash-free tail: the closing quote. Python's find
		// returns -1, so PEBA falls back to the md5.
		return md5hex
	}
	w := reprWriter{h: sha256.New(), q: q}
	w.buf = append(w.buf, 'b', q)
	w.write(data[:s])
	w.write(data[e:])
	w.buf = append(w.buf, q)
	w.h.Write(w.buf)
	return hex.EncodeToString(w.h.Sum(nil))
}

func needsEscape(c, q byte) bool {
	return c == q || c == '\\' || c < 0x20 || c >= 0x7f
}

// reprWriter streams the lower-cased Python bytes repr into a hash.
type reprWriter struct {
	h   hash.Hash
	q   byte
	buf []byte
}

func (w *reprWriter) write(data []byte) {
	const hexDigits = "0123456789abcdef"
	for _, c := range data {
		if len(w.buf) > 4096 {
			w.h.Write(w.buf)
			w.buf = w.buf[:0]
		}
		switch {
		case c == w.q || c == '\\':
			w.buf = append(w.buf, '\\', c)
		case c == '\t':
			w.buf = append(w.buf, '\\', 't')
		case c == '\n':
			w.buf = append(w.buf, '\\', 'n')
		case c == '\r':
			w.buf = append(w.buf, '\\', 'r')
		case c < 0x20 || c >= 0x7f:
			w.buf = append(w.buf, '\\', 'x', hexDigits[c>>4], hexDigits[c&0x0f])
		case 'A' <= c && c <= 'Z':
			w.buf = append(w.buf, c+('a'-'A'))
		default:
			w.buf = append(w.buf, c)
		}
	}
}
