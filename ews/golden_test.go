package ews

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/ids.golden from the current decoder")

const goldenIDs = "testdata/ids.golden"

// fixtureIDs returns "dir/file -> sha256 of the concatenated event IDs" for
// every fixture body ("error" when Decode fails).
func fixtureIDs(tb testing.TB) []string {
	tb.Helper()
	var lines []string
	for _, dir := range []string{"peba-samples", "ewsposter", "ewsposter-resend"} {
		for _, file := range glob(tb, dir+"/*.xml") {
			sum := "error"
			if b, err := Decode(mustRead(tb, file), Options{}); err == nil {
				h := sha256.New()
				for _, ev := range b.Events {
					h.Write([]byte(ev.ID))
				}
				sum = fmt.Sprintf("%d %s", len(b.Events), hex.EncodeToString(h.Sum(nil)))
			}
			lines = append(lines, dir+"/"+filepath.Base(file)+" "+sum)
		}
	}
	return lines
}

// TestFixtureIDsPinned pins the event IDs of every fixture: IDs are the
// store's de-duplication key, so a decoder change (such as the tokenizer)
// must not change any of them. The golden file was generated with the
// encoding/xml-based decoder.
func TestFixtureIDsPinned(t *testing.T) {
	got := fixtureIDs(t)
	if *updateGolden {
		if err := os.WriteFile(goldenIDs, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(goldenIDs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	for s := bufio.NewScanner(f); s.Scan(); {
		want = append(want, s.Text())
	}
	if len(got) != len(want) {
		t.Fatalf("%d fixtures, golden has %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("got %s, want %s", got[i], want[i])
		}
	}
}
