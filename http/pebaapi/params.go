package pebaapi

import (
	"github.com/peba-go/peba"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// decimal parses PEBA's "decimal" parameters (peba.md §2.7: digits only, no
// sign, no space). Values above max are clamped to max, so huge numbers
// mean "as far as we go" instead of overflowing. Python's isdecimal also
// accepts non-ASCII digits; we accept ASCII only.
func decimal(s string, max int) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= max {
			n = n*10 + int(c-'0')
		}
	}
	return min(n, max), true
}

// Bounds of numeric parameters. They keep every time window inside Go's
// time arithmetic and every answer bounded in size.
const (
	maxMinutes     = 100 * 365 * 24 * 60 // 100 years
	maxDays        = 3650                // per-day series: at most ten years of buckets
	maxMonthOffset = 1200
	maxTopX        = 10000
)

func startOfDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func startOfMonth(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}

// monthsBefore is Elasticsearch's "-NM" date math: the same day of month
// N months earlier, clamped to that month's last day (Mar 31 - 1M = Feb 28/29).
func monthsBefore(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m-time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

// isGlobal is Python's ipaddress.ip_address(s).is_global for the addresses
// PEBA's bad-IP lists and querySingleIP accept (peba.md §3.3, B-45).
func isGlobal(ip netip.Addr) bool { return peba.IsGlobal(ip) }

// pyUnquote is Python's urllib.parse.unquote: %XX sequences become bytes,
// malformed ones stay as they are, and the bytes are read as UTF-8 with
// invalid sequences replaced.
func pyUnquote(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if h, ok := unhex(s[i+1]); ok {
				if l, ok := unhex(s[i+2]); ok {
					b = append(b, h<<4|l)
					i += 2
					continue
				}
			}
		}
		b = append(b, s[i])
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// pyUnquotePlus is Python's unquote_plus: '+' is a space, then unquote.
func pyUnquotePlus(s string) string { return pyUnquote(strings.ReplaceAll(s, "+", " ")) }

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// htmlEscape is Python's html.escape(s, quote=True), which PEBA applies to
// requestString (peba.md §3.9).
var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#x27;")

func htmlEscape(s string) string { return htmlEscaper.Replace(s) }

func itoa(n int) string { return strconv.Itoa(n) }
