package ews

import (
	"strings"
	"unicode/utf8"
)

// Result returns ewsposter's answer body
// <Result><StatusCode>S</StatusCode><Text>T</Text></Result> (peba.md §4.1).
// S and T are XML-escaped, characters XML forbids are dropped, and line
// breaks become spaces: ewsposter matches <StatusCode>(.*)</StatusCode> with
// a regex that does not cross lines (ewsposter.md §3.4).
func Result(status, text string) []byte {
	var b strings.Builder
	b.Grow(len("<Result><StatusCode></StatusCode><Text></Text></Result>") + len(status) + len(text))
	b.WriteString("<Result><StatusCode>")
	writeEscaped(&b, status)
	b.WriteString("</StatusCode><Text>")
	writeEscaped(&b, text)
	b.WriteString("</Text></Result>")
	return []byte(b.String())
}

func writeEscaped(b *strings.Builder, s string) {
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r == utf8.RuneError, !isXMLChar(r):
			// Invalid UTF-8 or a character XML 1.0 forbids: dropped.
		default:
			b.WriteRune(r)
		}
	}
}

// isXMLChar reports whether r is in XML 1.0's Char production.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}
