package duckdb

import (
	"testing"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// TestEncodeAttrsMatchesJSON checks that encodeAttrs writes exactly what
// storerow.EncodeAttrs (encoding/json) writes, for plain strings and for
// every character encoding/json escapes.
func TestEncodeAttrsMatchesJSON(t *testing.T) {
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	cases := [][]peba.Attr{
		nil,
		{},
		{{Key: "", Value: ""}},
		{{Key: "sessionid", Value: "1-0"}, {Key: "hostname", Value: "ews-bench"}},
		{{Key: `a"b\c`, Value: "<script>&amp;</script>"}},
		{{Key: "ctl", Value: "\x00\x01\b\f\n\r\t\x1f\x7f"}},
		{{Key: "utf8", Value: "Grüße 日本 \u2028 \u2029 \U0001F600"}},
		{{Key: "bytes", Value: string(all)}},
	}
	for _, as := range cases {
		want, werr := storerow.EncodeAttrs(as)
		got, gerr := encodeAttrs(as)
		if got != want || (werr == nil) != (gerr == nil) {
			t.Errorf("encodeAttrs(%q) = %q, %v; want %q, %v", as, got, gerr, want, werr)
		}
	}
}

func FuzzEncodeAttrs(f *testing.F) {
	f.Add("k", "v")
	f.Add("<&>", "\u2028\x00\"\\")
	f.Fuzz(func(t *testing.T, k, v string) {
		as := []peba.Attr{{Key: k, Value: v}, {Key: v, Value: k}}
		want, werr := storerow.EncodeAttrs(as)
		got, gerr := encodeAttrs(as)
		if got != want || (werr == nil) != (gerr == nil) {
			t.Errorf("encodeAttrs(%q) = %q, %v; want %q, %v", as, got, gerr, want, werr)
		}
	})
}
