package pebadoc

import (
	"math"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// The expected strings were produced by CPython 3 str(float) and json.dumps.
func TestPyFloat(t *testing.T) {
	f := func(v float64, want string) {
		t.Helper()
		if got := PyFloat(v); got != want {
			t.Errorf("PyFloat(%v) = %q, want %q", v, got, want)
		}
	}
	f(0, "0.0")
	f(math.Copysign(0, -1), "-0.0")
	f(50, "50.0")
	f(100, "100.0")
	f(-180, "-180.0")
	f(51.2993, "51.2993")
	f(9.491, "9.491")
	f(-7.129191, "-7.129191")
	f(50.708021, "50.708021")
	f(0.30000000000000004, "0.30000000000000004")
	f(1.0/3, "0.3333333333333333")
	f(1e-5, "1e-05")
	f(-1e-7, "-1e-07")
	f(0.0001, "0.0001")
	f(0.00012345, "0.00012345")
	f(9.900000000000001e-05, "9.900000000000001e-05")
	f(1e15, "1000000000000000.0")
	f(9999999999999998, "9999999999999998.0")
	f(9007199254740992, "9007199254740992.0")
	f(1e16, "1e+16")
	f(1.5e16, "1.5e+16")
	f(123456789012345678, "1.2345678901234568e+17")
	f(1e22, "1e+22")
	f(5e-324, "5e-324")
	f(math.MaxFloat64, "1.7976931348623157e+308")
	f(math.NaN(), "nan")
	f(math.Inf(1), "inf")
	f(math.Inf(-1), "-inf")
}

func TestFormatLocation(t *testing.T) {
	f := func(lat, lon float64, want string) {
		t.Helper()
		if got := FormatLocation(lat, lon); got != want {
			t.Errorf("FormatLocation(%v, %v) = %q, want %q", lat, lon, got, want)
		}
	}
	f(0, 0, "0.0 , 0.0") // peba.md §4.12
	f(51.2993, 9.491, "51.2993 , 9.491")
	f(50.708021, 7.129191, "50.708021 , 7.129191")
	f(-33.9, 1e-5, "-33.9 , 1e-05")
}

func TestFormatTime(t *testing.T) {
	cest := time.FixedZone("CEST", 2*3600)
	f := func(tm time.Time, want string) {
		t.Helper()
		if got := FormatTime(tm); got != want {
			t.Errorf("FormatTime(%v) = %q, want %q", tm, got, want)
		}
	}
	f(time.Date(2018, 4, 24, 14, 12, 29, 999999999, cest), "2018-04-24 12:12:29")
	f(time.Date(2020, 1, 1, 0, 0, 5, 0, time.UTC), "2020-01-01 00:00:05")
	f(time.Time{}, "0001-01-01 00:00:00")
}

func TestPythonJSONDumps(t *testing.T) {
	f := func(attrs []peba.Attr, want string) {
		t.Helper()
		if got := PythonJSONDumps(attrs); got != want {
			t.Errorf("PythonJSONDumps(%q)\n got %s\nwant %s", attrs, got, want)
		}
	}
	f(nil, `{}`)
	f([]peba.Attr{}, `{}`)
	f([]peba.Attr{{Key: "protocol", Value: "ssh"}}, `{"protocol": "ssh"}`)
	f([]peba.Attr{{Key: "payload_md5", Value: "392b7242"}, {Key: `k"ey`, Value: `a\b`}}, `{"payload_md5": "392b7242", "k\"ey": "a\\b"}`)
	f([]peba.Attr{{Key: "u", Value: "Grüße 😀 \u2028 \x00\x01\x1f\x7f\t\r\n\b\f/<>&'"}},
		`{"u": "Gr\u00fc\u00dfe \ud83d\ude00 \u2028 \u0000\u0001\u001f\u007f\t\r\n\b\f/<>&'"}`)
	// Not expressible in Python (dicts have unique keys, str has no bytes):
	// repeats are kept, invalid UTF-8 becomes U+FFFD.
	f([]peba.Attr{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}}, `{"a": "1", "a": "2"}`)
	f([]peba.Attr{{Key: "b", Value: "\xff"}}, `{"b": "\ufffd"}`)
}
