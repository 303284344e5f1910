package pebadoc

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

// pebaTimeLayout is how PEBA stores every timestamp: naive UTC (peba.md §2.7).
const pebaTimeLayout = "2006-01-02 15:04:05"

// FormatTime formats t in UTC as "YYYY-MM-DD HH:MM:SS", PEBA's storage format
// for createTime and recievedTime (peba.md §2.7). Sub-second digits are cut,
// not rounded, as Python's strftime does.
func FormatTime(t time.Time) string {
	return t.UTC().Format(pebaTimeLayout)
}

// FormatLocation formats a coordinate pair as PEBA's location and
// locationDestination fields: "%s , %s" % (lat, lon) with Python's str(float)
// for each number (peba.md §5.1, §6), e.g. "51.2993 , 9.491" or "0.0 , 0.0".
func FormatLocation(lat, lon float64) string {
	return PyFloat(lat) + " , " + PyFloat(lon)
}

// PyFloat returns Python 3's str(f) (== repr(f)): the shortest decimal that
// reads back as f, in positional form with at least one fractional digit
// ("50.0", "-0.0", "0.0001") unless the decimal exponent is below -4 or at
// least 16, where Python switches to "1e-05" / "1.5e+16" form (exponent with
// sign and at least two digits, no forced ".0"). NaN and the infinities are
// "nan", "inf" and "-inf".
func PyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	// Go's shortest 'e' form has the same digits and the same exponent
	// spelling (sign, two-digit minimum) as Python's repr.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// PythonJSONDumps returns the text Python's json.dumps writes for a dict of
// strings built from attrs in order: {"k": "v", "k2": "v2"} with ", " and ": "
// separators and ensure_ascii escaping (\" \\ \n \r \t \b \f, every other
// character outside printable ASCII as \uXXXX in lowercase hex, astral
// characters as surrogate pairs). PEBA stores additionalData this way
// (peba.md §5.1). Unlike a dict, repeated keys are written repeatedly, so the
// text parses back to the same slice; for distinct keys the output equals
// json.dumps. Invalid UTF-8 bytes are written as \ufffd. An empty or nil
// slice gives "{}".
func PythonJSONDumps(attrs []peba.Attr) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, a := range attrs {
		if i > 0 {
			b.WriteString(", ")
		}
		writePyString(&b, a.Key)
		b.WriteString(": ")
		writePyString(&b, a.Value)
	}
	b.WriteByte('}')
	return b.String()
}

const hexDigits = "0123456789abcdef"

// writePyString writes s as Python's json.encoder.py_encode_basestring_ascii.
func writePyString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s { // range yields utf8.RuneError for invalid bytes
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r >= ' ' && r <= '~':
			b.WriteByte(byte(r))
		case r > 0xffff:
			r -= 0x10000
			writeU(b, 0xd800|(r>>10)&0x3ff)
			writeU(b, 0xdc00|r&0x3ff)
		default:
			writeU(b, r)
		}
	}
	b.WriteByte('"')
}

func writeU(b *strings.Builder, r rune) {
	b.WriteString(`\u`)
	b.WriteByte(hexDigits[r>>12&0xf])
	b.WriteByte(hexDigits[r>>8&0xf])
	b.WriteByte(hexDigits[r>>4&0xf])
	b.WriteByte(hexDigits[r&0xf])
}
