package seckcapi

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

func TestASCIIJSON(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":"x"}`:     `{"a":"x"}`,
		`"Linköping"`:   `"Link\u00f6ping"`,
		`"😀<&>"`:        `"\ud83d\ude00<&>"`,
		`["日本",1.5]`:    `["\u65e5\u672c",1.5]`,
		`"\u2028 é"`:    `"\u2028 \u00e9"`,
		`{"ключ":true}`: `{"\u043a\u043b\u044e\u0447":true}`,
	} {
		if got := string(asciiJSON([]byte(in))); got != want {
			t.Errorf("asciiJSON(%s) = %s, want %s", in, got, want)
		}
	}
}

// FuzzASCIIJSON: for any string value, the rewritten encoding is ASCII and
// decodes to the same value as encoding/json's.
func FuzzASCIIJSON(f *testing.F) {
	for _, s := range []string{"", "a", "Linköping", "😀", "\xff\xfe", "\u2028", "\x00<>&\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := json.Marshal(map[string]any{"k": s, s: []any{s, 1.25}})
		if err != nil {
			t.Skip()
		}
		out := asciiJSON(b)
		for _, c := range out {
			if c >= utf8.RuneSelf {
				t.Fatalf("non-ASCII byte in %q", out)
			}
		}
		var x, y any
		if err := json.Unmarshal(b, &x); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &y); err != nil {
			t.Fatalf("rewritten JSON invalid: %v: %q", err, out)
		}
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("value changed: %v != %v", x, y)
		}
	})
}

// TestErrorEnvelope checks the documented error envelope field by field
// (seckc.md §2.4): "error" stays for SecKC's clients, "code" repeats the
// status, "timestamp" is RFC 3339 UTC.
func TestErrorEnvelope(t *testing.T) {
	h := newTestAPI(t, nil)
	w := get(h, "/stats/attackers?hours_ago=x", "")
	var env map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("not JSON: %v: %s", err, w.Body)
	}
	if len(env) != 3 || env["code"] != float64(400) || env["error"] != "hours_ago must be an integer from 1 to 8784" {
		t.Errorf("envelope %v", env)
	}
	ts, _ := env["timestamp"].(string)
	if got, err := time.Parse(time.RFC3339, ts); err != nil || !got.Equal(apiNow) {
		t.Errorf("timestamp %q: %v", ts, err)
	}
}
