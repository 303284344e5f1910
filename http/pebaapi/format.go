package pebaapi

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Content types of PEBA's answers (peba.md §2.1).
const (
	ctHTML = "text/html; charset=utf-8"
	ctXML  = "text/xml; charset=utf-8"
	ctJSON = "application/json"
)

// timeLayout is how PEBA writes every timestamp: naive UTC, seconds
// (peba.md §2.7).
const timeLayout = "2006-01-02 15:04:05"

// xmlDecl is glued to the root element without a newline (peba.md §2.1).
const xmlDecl = `<?xml version="1.0" encoding="UTF-8"?>`

// node is an XML element: either text (a leaf) or child elements.
type node struct {
	name string
	text string
	kids []*node
}

func elem(name string, kids ...*node) *node { return &node{name: name, kids: kids} }
func leaf(name, text string) *node          { return &node{name: name, text: text} }

// xmlDoc renders root as PEBA does (peba.md §2.1 [verified]): declaration
// glued to the root, children on new lines indented two spaces per level,
// "<X />" for an element without text or children, text escaped, and no
// trailing newline.
func xmlDoc(root *node) []byte {
	var b bytes.Buffer
	b.WriteString(xmlDecl)
	writeNode(&b, root, 0)
	return b.Bytes()
}

// indents holds the indentation of the usual depths, so that writing a
// node allocates nothing (retrieveIPs writes 36,000 nodes).
const indents = "                "

func writeNode(b *bytes.Buffer, n *node, depth int) {
	var indent string
	if 2*depth <= len(indents) {
		indent = indents[:2*depth]
	} else {
		indent = strings.Repeat("  ", depth)
	}
	b.WriteString(indent)
	b.WriteByte('<')
	b.WriteString(n.name)
	switch {
	case len(n.kids) > 0:
		b.WriteString(">\n")
		for _, k := range n.kids {
			writeNode(b, k, depth+1)
			b.WriteByte('\n')
		}
		b.WriteString(indent)
	case n.text != "":
		b.WriteByte('>')
		escapeXMLText(b, n.text)
	default:
		b.WriteString(" />")
		return
	}
	b.WriteString("</")
	b.WriteString(n.name)
	b.WriteByte('>')
}

// escapeXMLText escapes & < > as PEBA does. Unlike PEBA, which copied them
// and produced documents no parser accepts, it replaces invalid UTF-8 and
// characters that XML 1.0 forbids (NUL, most C0 controls, U+FFFE/U+FFFF)
// with U+FFFD: attackers control these strings.
func escapeXMLText(b *bytes.Buffer, s string) {
	if plainXMLText(s) {
		b.WriteString(s)
		return
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == utf8.RuneError && size == 1, !xmlChar(r):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
}

// plainXMLText reports whether s is printable ASCII without & < >, which
// escapeXMLText copies unchanged (addresses, numbers, times).
func plainXMLText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '&' || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

func xmlChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// jsonBody encodes v as Flask's jsonify does (peba.md §2.1 [verified]):
// compact, object keys sorted (maps are sorted by encoding/json; structs in
// this package declare their fields in sorted order), non-ASCII escaped as
// \uXXXX (surrogate pairs above U+FFFF), <>& not escaped, trailing newline.
func jsonBody(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only unsupported types or NaN/Inf floats fail; both are bugs here
		// (pyFloat never produces them).
		panic("BUG: cannot encode JSON: " + err.Error())
	}
	return asciiJSON(b.Bytes())
}

// asciiJSON replaces every non-ASCII rune with its \u escape. Non-ASCII bytes
// occur only inside strings of encoding/json's output (which is valid
// UTF-8), so this is safe byte-wise.
func asciiJSON(in []byte) []byte {
	n := 0
	for _, c := range in {
		if c >= utf8.RuneSelf {
			n++
		}
	}
	if n == 0 {
		return in
	}
	out := make([]byte, 0, len(in)+n*5)
	const hex = "0123456789abcdef"
	esc := func(r rune) {
		out = append(out, '\\', 'u', hex[r>>12&0xF], hex[r>>8&0xF], hex[r>>4&0xF], hex[r&0xF])
	}
	for i := 0; i < len(in); {
		c := in[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(in[i:])
		if r > 0xFFFF {
			r -= 0x10000
			esc(0xD800 + (r>>10)&0x3FF)
			esc(0xDC00 + r&0x3FF)
		} else {
			esc(r)
		}
		i += size
	}
	return out
}

// pyFloat is a float written as Python's repr/str does (what PEBA's
// location strings and jsonify use): the shortest round-trip digits, always
// with a decimal point or an exponent ("50.0", not "50"), exponent form
// below 1e-4 and from 1e16 ("1e-05", "1e+16").
type pyFloat float64

func (f pyFloat) String() string {
	v := float64(f)
	if v != 0 && (abs(v) < 1e-4 || abs(v) >= 1e16) {
		return strconv.FormatFloat(v, 'e', -1, 64)
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// MarshalJSON implements json.Marshaler.
func (f pyFloat) MarshalJSON() ([]byte, error) { return []byte(f.String()), nil }

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// response is a rendered answer. Cached answers are always HTTP 200.
type response struct {
	ctype string
	body  []byte
}

func xmlResponse(root *node) response { return response{ctXML, xmlDoc(root)} }
func jsonResponse(v any) response     { return response{ctJSON, jsonBody(v)} }

// The three forms of DEFAULTRESPONSE (peba.md §2.1 [verified]), all HTTP 200.
func (a *API) nopeHTML() response { return response{ctHTML, []byte(a.cfg.DefaultResponse)} }
func (a *API) nopeXML() response  { return response{ctXML, []byte(a.cfg.DefaultResponse)} }
func (a *API) nopeJSON() response { return response{ctJSON, jsonBody(a.cfg.DefaultResponse)} }

// encode and decodeResponse turn a response into cache bytes and back:
// one content-type code byte, then the body.
var ctypes = [...]string{ctHTML, ctXML, ctJSON}

func (r response) encode() []byte {
	code := byte(0)
	for i, c := range ctypes {
		if c == r.ctype {
			code = byte(i)
		}
	}
	out := make([]byte, 0, 1+len(r.body))
	return append(append(out, code), r.body...)
}

func decodeResponse(b []byte) (response, bool) {
	if len(b) == 0 || int(b[0]) >= len(ctypes) {
		return response{}, false
	}
	return response{ctypes[b[0]], b[1:]}, true
}
