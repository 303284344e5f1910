package ews

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The tokenizer below replaces encoding/xml (RawToken, Strict) for the subset
// of XML that EWS bodies use, working on the body in place. It must accept
// and produce exactly what encoding/xml did, because event IDs hash names,
// attribute values and text (docs/ews-decoder.md "Event ID");
// FuzzTokenizerMatchesEncodingXML checks that against encoding/xml.
// Where encoding/xml is lenient the tokenizer matches it, except:
//
//   - comments and processing instructions must be valid UTF-8 made of XML
//     1.0 Chars (XML 1.0 §2.5, §2.6; encoding/xml does not look inside);
//   - a character reference to a surrogate (&#xD800;) is an error (XML 1.0
//     §4.1 WFC: Legal Character; encoding/xml turns it into U+FFFD).
//
// Kept from encoding/xml on purpose, because changing them would change IDs
// or refuse bodies that were accepted so far: no attribute-value
// normalisation (XML 1.0 §3.3.3; a literal tab or newline in a value stays,
// only \r\n and \r become \n as in text), duplicate attributes and missing
// whitespace between attributes are accepted, the XML declaration is checked
// wherever a <?xml ...?> appears, and whitespace-only CDATA or character
// references are accepted outside the root element.

// Errors for which the tokenizer is stricter than encoding/xml.
var (
	errBadMarkupChar = errors.New("invalid UTF-8 or character XML forbids in comment or processing instruction")
	errSurrogateRef  = errors.New("character reference to a surrogate")
)

var (
	errEOF        = errors.New("unexpected EOF")
	errBadChar    = errors.New("invalid UTF-8 or character XML forbids")
	errBadEntity  = errors.New("invalid character entity")
	errBadName    = errors.New("invalid XML name")
	errCDATAEnd   = errors.New("unescaped ]]> not in CDATA section")
	errLTInAttr   = errors.New("unescaped < inside quoted string")
	errBadTag     = errors.New("invalid characters in tag")
	errBadComment = errors.New(`invalid comment (or "--" inside it)`)
	errBadCDATA   = errors.New("invalid <![ sequence")
	errBadXMLDecl = errors.New("unsupported XML version or non-UTF-8 encoding")
)

type tokKind int8

const (
	tokEOF tokKind = iota
	tokStart
	tokEnd
	tokText
	tokDirective // <!DOCTYPE ...> or any other <!...> declaration
)

// xattr is one attribute as the tokenizer returns it: name is a sub-slice of
// the body; value is a sub-slice of the body or, when it contained
// references or \r, a freshly allocated slice.
type xattr struct {
	name, value []byte
}

// scanner is the tokenizer state. The slices it returns (name, attrs, text)
// are valid until the next call of next, except attribute values, which are
// never overwritten.
type scanner struct {
	b   []byte
	pos int

	name  []byte  // tokStart, tokEnd
	attrs []xattr // tokStart
	empty bool    // tokStart of a self-closing <x/>
	text  []byte  // tokText
	buf   []byte  // text unescaping scratch
}

// next returns the next token. Comments and processing instructions are
// checked and skipped.
func (s *scanner) next() (tokKind, error) {
	for {
		if s.pos >= len(s.b) {
			return tokEOF, nil
		}
		if s.b[s.pos] != '<' {
			return tokText, s.charData()
		}
		rest := s.b[s.pos+1:]
		if len(rest) == 0 {
			return 0, errEOF
		}
		switch rest[0] {
		case '/':
			s.pos += 2
			return tokEnd, s.endTag()
		case '?':
			s.pos += 2
			if err := s.procInst(); err != nil {
				return 0, err
			}
		case '!':
			if len(rest) < 2 {
				return 0, errEOF
			}
			switch rest[1] {
			case '-':
				s.pos += 3
				if err := s.comment(); err != nil {
					return 0, err
				}
			case '[':
				s.pos += 3
				return tokText, s.cdata()
			default:
				return tokDirective, nil
			}
		default:
			s.pos++
			return tokStart, s.startTag()
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\r' || c == '\n' || c == '\t' }

func (s *scanner) skipSpace() {
	for s.pos < len(s.b) && isSpace(s.b[s.pos]) {
		s.pos++
	}
}

// nameClass classifies bytes for readName like encoding/xml's isNameByte:
// 0 ends a name, 1 is an ASCII name character, 2 is ':', 3 is a byte >= 0x80
// (read too and checked by isXMLName).
var nameClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c == ':':
			t[c] = 2
		case c >= 0x80:
			t[c] = 3
		case 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-':
			t[c] = 1
		}
	}
	return t
}()

// readName reads an XML name at pos. With ns, it also refuses more than one
// colon, like encoding/xml's nsname for element and attribute names.
func (s *scanner) readName(ns bool) ([]byte, error) {
	b, i := s.b, s.pos
	colons, ascii := 0, true
loop:
	for ; i < len(b); i++ {
		switch nameClass[b[i]] {
		case 0:
			break loop
		case 2:
			colons++
		case 3:
			ascii = false
		}
	}
	if i == len(b) {
		return nil, errEOF
	}
	name := b[s.pos:i]
	s.pos = i
	if len(name) == 0 || ns && colons > 1 {
		return nil, errBadName
	}
	if ascii {
		// Every byte is a name character; the first may not be a digit,
		// '.' or '-' (encoding/xml's first table).
		if c := name[0]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || c == ':') {
			return nil, errBadName
		}
	} else if !isXMLName(name) {
		return nil, errBadName
	}
	return name, nil
}

// isXMLName is encoding/xml's isName for a non-empty name.
func isXMLName(s []byte) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			return false
		}
		if !unicode.Is(nameFirst, r) && (i == 0 || !unicode.Is(nameSecond, r)) {
			return false
		}
		i += n
	}
	return true
}

func (s *scanner) endTag() error {
	name, err := s.readName(true)
	if err != nil {
		return err
	}
	s.name = name
	s.skipSpace()
	if s.pos >= len(s.b) {
		return errEOF
	}
	if s.b[s.pos] != '>' {
		return errBadTag
	}
	s.pos++
	return nil
}

func (s *scanner) startTag() error {
	name, err := s.readName(true)
	if err != nil {
		return err
	}
	s.name, s.attrs, s.empty = name, s.attrs[:0], false
	for {
		s.skipSpace()
		if s.pos >= len(s.b) {
			return errEOF
		}
		switch s.b[s.pos] {
		case '/':
			if s.pos+1 >= len(s.b) {
				return errEOF
			}
			if s.b[s.pos+1] != '>' {
				return errBadTag
			}
			s.pos += 2
			s.empty = true
			return nil
		case '>':
			s.pos++
			return nil
		}
		aname, err := s.readName(true)
		if err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.b) {
			return errEOF
		}
		if s.b[s.pos] != '=' {
			return errBadTag
		}
		s.pos++
		s.skipSpace()
		if s.pos >= len(s.b) {
			return errEOF
		}
		q := s.b[s.pos]
		if q != '"' && q != '\'' {
			return errBadTag
		}
		s.pos++
		start := s.pos
		special, err := s.scanChars(q)
		if err != nil {
			return err
		}
		if s.pos == len(s.b) {
			return errEOF
		}
		value := s.b[start:s.pos]
		s.pos++ // closing quote
		if special {
			if value, err = unescape(value, nil, true); err != nil {
				return err
			}
		}
		s.attrs = append(s.attrs, xattr{name: aname, value: value})
	}
}

// charClass classifies bytes for scanChars: 0 for the plain characters that
// need no attention, 1 for '&' and '\r', 2 for the rest.
var charClass = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c == '&' || c == '\r':
			t[c] = 1
		case c == '<' || c == ']' || c == '"' || c == '\'' || c >= utf8.RuneSelf || c < 0x20 && c != '\t' && c != '\n':
			t[c] = 2
		}
	}
	return t
}()

// scanChars advances pos to the next '<' (stop == '<': text) or to the
// next stop quote (an attribute value) or to the end of the body, and checks
// the characters on the way in one pass: valid UTF-8, XML Chars only, no
// "]]>" in text (XML 1.0 §2.4), no '<' in attribute values (§3.1). special
// reports a '&' or '\r' that unescape must handle.
func (s *scanner) scanChars(stop byte) (special bool, err error) {
	b := s.b
	i := s.pos
	for i < len(b) {
		c := b[i]
		switch charClass[c] {
		case 0:
			i++
			continue
		case 1:
			special = true
			i++
			continue
		}
		switch {
		case c == stop:
			s.pos = i
			return special, nil
		case c == '<':
			return false, errLTInAttr
		case c == '"' || c == '\'':
			i++
		case c == ']':
			if stop == '<' && i+2 < len(b) && b[i+1] == ']' && b[i+2] == '>' {
				return false, errCDATAEnd
			}
			i++
		case c < utf8.RuneSelf:
			return false, errBadChar
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
				return false, errBadChar
			}
			i += n
		}
	}
	s.pos = i
	return special, nil
}

// charData reads text up to the next '<' or the end of the body.
func (s *scanner) charData() error {
	start := s.pos
	special, err := s.scanChars('<')
	if err != nil {
		return err
	}
	s.text = s.b[start:s.pos]
	if special {
		if s.buf, err = unescape(s.text, s.buf[:0], true); err != nil {
			return err
		}
		s.text = s.buf
	}
	return nil
}

// cdata reads a CDATA section; pos is after "<![".
func (s *scanner) cdata() error {
	if !bytes.HasPrefix(s.b[s.pos:], []byte("CDATA[")) {
		return errBadCDATA
	}
	s.pos += len("CDATA[")
	end := bytes.Index(s.b[s.pos:], []byte("]]>"))
	if end < 0 {
		return errEOF
	}
	s.text = s.b[s.pos : s.pos+end]
	s.pos += end + 3
	if !validChars(s.text) {
		return errBadChar
	}
	if bytes.IndexByte(s.text, '\r') >= 0 {
		s.buf, _ = unescape(s.text, s.buf[:0], false)
		s.text = s.buf
	}
	return nil
}

// comment skips a comment; pos is after "<!-". Like XML 1.0 §2.5 (and
// encoding/xml), the first "--" must end the comment.
func (s *scanner) comment() error {
	if s.pos >= len(s.b) {
		return errEOF
	}
	if s.b[s.pos] != '-' {
		return errBadComment
	}
	s.pos++
	end := bytes.Index(s.b[s.pos:], []byte("--"))
	if end < 0 || s.pos+end+2 >= len(s.b) {
		return errEOF
	}
	body := s.b[s.pos : s.pos+end]
	if s.b[s.pos+end+2] != '>' {
		return errBadComment
	}
	s.pos += end + 3
	if !validChars(body) {
		return errBadMarkupChar
	}
	return nil
}

// procInst skips a processing instruction; pos is after "<?". The XML
// declaration must not declare another version than 1.0 or an encoding
// other than UTF-8 (no CharsetReader, as with encoding/xml before).
func (s *scanner) procInst() error {
	target, err := s.readName(false)
	if err != nil {
		return err
	}
	s.skipSpace()
	end := bytes.Index(s.b[s.pos:], []byte("?>"))
	if end < 0 {
		return errEOF
	}
	content := s.b[s.pos : s.pos+end]
	s.pos += end + 2
	if !validChars(content) {
		return errBadMarkupChar
	}
	if string(target) == "xml" {
		c := string(content)
		if v := procInstParam("version", c); v != "" && v != "1.0" {
			return errBadXMLDecl
		}
		if enc := procInstParam("encoding", c); enc != "" && !strings.EqualFold(enc, "utf-8") {
			return errBadXMLDecl
		}
	}
	return nil
}

// procInstParam is encoding/xml's procInst: the value of param="..." or
// param='...' in s, or "" if not found, with its quirks (the first
// "param=" followed by a quote wins, wherever it is).
func procInstParam(param, s string) string {
	param += "="
	lenp := len(param)
	i := 0
	var sep byte
	for i < len(s) {
		sub := s[i:]
		k := strings.Index(sub, param)
		if k < 0 || lenp+k >= len(sub) {
			return ""
		}
		i += lenp + k + 1
		if c := sub[lenp+k]; c == '\'' || c == '"' {
			sep = c
			break
		}
	}
	if sep == 0 {
		return ""
	}
	j := strings.IndexByte(s[i:], sep)
	if j < 0 {
		return ""
	}
	return s[i : i+j]
}

// validChars reports whether s is valid UTF-8 made of XML 1.0 Chars (§2.2).
func validChars(s []byte) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += n
	}
	return true
}

// unescape appends raw (checked text, an attribute value or, with !refs,
// CDATA) to dst with \r\n and \r turned into \n (XML 1.0 §2.11) and, if
// refs, the predefined entities and character references replaced (§4.1,
// §4.6). dst nil means a new slice.
func unescape(raw, dst []byte, refs bool) ([]byte, error) {
	if dst == nil {
		dst = make([]byte, 0, len(raw))
	}
	i := 0
	for i < len(raw) {
		c := raw[i]
		switch {
		case c == '\r':
			dst = append(dst, '\n')
			i++
			if i < len(raw) && raw[i] == '\n' {
				i++
			}
		case c == '&' && refs:
			n, r, err := parseRef(raw[i:])
			if err != nil {
				return nil, err
			}
			dst = utf8.AppendRune(dst, r)
			i += n
		default:
			dst = append(dst, c)
			i++
		}
	}
	return dst, nil
}

// parseRef parses the reference at the start of s ("&...;") and returns its
// length and character.
func parseRef(s []byte) (int, rune, error) {
	semi := bytes.IndexByte(s, ';')
	if semi < 0 {
		return 0, 0, errBadEntity
	}
	name := s[1:semi]
	switch string(name) {
	case "lt":
		return semi + 1, '<', nil
	case "gt":
		return semi + 1, '>', nil
	case "amp":
		return semi + 1, '&', nil
	case "apos":
		return semi + 1, '\'', nil
	case "quot":
		return semi + 1, '"', nil
	}
	if len(name) < 2 || name[0] != '#' {
		return 0, 0, errBadEntity
	}
	digits, base := name[1:], 10
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	// Only [0-9] (and [a-fA-F] in hex), no sign or underscore: the
	// characters ParseUint would also accept are not XML.
	for _, c := range digits {
		if !('0' <= c && c <= '9' || base == 16 && ('a' <= c && c <= 'f' || 'A' <= c && c <= 'F')) {
			return 0, 0, errBadEntity
		}
	}
	n, err := strconv.ParseUint(string(digits), base, 32)
	if err != nil || n > unicode.MaxRune {
		return 0, 0, errBadEntity
	}
	r := rune(n)
	if 0xD800 <= r && r <= 0xDFFF {
		return 0, 0, errSurrogateRef
	}
	if !isXMLChar(r) {
		return 0, 0, errBadChar
	}
	return semi + 1, r, nil
}
