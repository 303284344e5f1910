package journal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func mustOpen(t testing.TB, dir string, opt Options) *Journal {
	t.Helper()
	j, err := Open(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func replayAll(t testing.TB, j *Journal) []string {
	t.Helper()
	var got []string
	if err := j.Replay(func(p []byte) error { got = append(got, string(p)); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func rec(i int) []byte {
	return []byte(fmt.Sprintf("record-%05d-%s", i, bytes.Repeat([]byte{byte(i)}, i%97)))
}

func TestRoundTripAcrossReopenAndRotation(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{SegmentSize: 1000})
	var want []string
	var last Pos
	for i := 0; i < 200; i += 4 {
		group := [][]byte{rec(i), rec(i + 1), rec(i + 2), rec(i + 3), {}}
		pos, err := j.Append(group...)
		if err != nil {
			t.Fatal(err)
		}
		if !last.Less(pos) {
			t.Fatalf("position %v not after %v", pos, last)
		}
		last = pos
		for _, g := range group {
			want = append(want, string(g))
		}
	}
	if segs, _ := j.segments(); len(segs) < 5 {
		t.Fatalf("only %d segments for ~10 KB at 1000 bytes each", len(segs))
	}
	if got := replayAll(t, j); !slices.Equal(got, want) {
		t.Fatalf("replay: %d records, want %d", len(got), len(want))
	}
	j.Close()
	j2 := mustOpen(t, dir, Options{SegmentSize: 1000})
	if j2.End() != last {
		t.Fatalf("reopened end %v, want %v", j2.End(), last)
	}
	if got := replayAll(t, j2); !slices.Equal(got, want) {
		t.Fatalf("replay after reopen: %d records, want %d", len(got), len(want))
	}
}

func TestCheckpointSkipsAndDeletesAppliedSegments(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{SegmentSize: 500})
	var mid Pos
	for i := range 60 {
		pos, err := j.Append(rec(i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 39 {
			mid = pos
		}
	}
	before, _ := j.segments()
	if err := j.Checkpoint(mid); err != nil {
		t.Fatal(err)
	}
	after, _ := j.segments()
	if after[0] != mid.Seg || len(after) >= len(before) {
		t.Fatalf("segments %v -> %v after checkpoint at %v", before, after, mid)
	}
	var want []string
	for i := 40; i < 60; i++ {
		want = append(want, string(rec(i)))
	}
	if got := replayAll(t, j); !slices.Equal(got, want) {
		t.Fatalf("replay after checkpoint = %d records, want records 40..59", len(got))
	}
	// An older checkpoint is a no-op; one after the end is refused.
	if err := j.Checkpoint(Pos{1, 0}); err != nil {
		t.Fatal(err)
	}
	if err := j.Checkpoint(Pos{j.End().Seg, j.End().Off + 1}); err == nil {
		t.Fatal("checkpoint after the end accepted")
	}
	j.Close()
	j2 := mustOpen(t, dir, Options{SegmentSize: 500})
	if got := replayAll(t, j2); !slices.Equal(got, want) {
		t.Fatalf("replay after reopen = %d records, want 20", len(got))
	}
	if err := j2.Checkpoint(j2.End()); err != nil {
		t.Fatal(err)
	}
	if got := replayAll(t, j2); len(got) != 0 {
		t.Fatalf("replay after full checkpoint = %d records", len(got))
	}
	// Appending after a full checkpoint and reopening returns only the new.
	if _, err := j2.Append([]byte("new")); err != nil {
		t.Fatal(err)
	}
	j2.Close()
	if got := replayAll(t, mustOpen(t, dir, Options{SegmentSize: 500})); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("got %q", got)
	}
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	slices.Sort(m)
	return m[len(m)-1]
}

func TestTornTailIsTruncated(t *testing.T) {
	for name, tail := range map[string]func(full []byte) []byte{
		"half header": func(full []byte) []byte { return full[:3] },
		"half record": func(full []byte) []byte { return full[:len(full)/2] },
		"bad crc": func(full []byte) []byte {
			b := slices.Clone(full)
			b[len(b)-1] ^= 1
			return b
		},
		"zeros":   func([]byte) []byte { return make([]byte, 4096) },
		"garbage": func([]byte) []byte { return []byte("\xff\xff\xff\x7fgarbage that is not a record") },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			j := mustOpen(t, dir, Options{})
			for i := range 3 {
				if _, err := j.Append(rec(i)); err != nil {
					t.Fatal(err)
				}
			}
			good := j.End()
			j.Close()
			f, _ := os.OpenFile(lastSegment(t, dir), os.O_APPEND|os.O_WRONLY, 0)
			f.Write(tail(appendRecord(nil, rec(99))))
			f.Close()

			j2 := mustOpen(t, dir, Options{})
			if j2.End() != good {
				t.Fatalf("end after torn tail = %v, want %v", j2.End(), good)
			}
			if st, _ := os.Stat(lastSegment(t, dir)); st.Size() != good.Off {
				t.Fatalf("segment not truncated: %d bytes, want %d", st.Size(), good.Off)
			}
			if _, err := j2.Append([]byte("after")); err != nil {
				t.Fatal(err)
			}
			want := []string{string(rec(0)), string(rec(1)), string(rec(2)), "after"}
			if got := replayAll(t, j2); !slices.Equal(got, want) {
				t.Fatalf("replay = %q", got)
			}
		})
	}
}

func TestMidFileCorruptionIsReported(t *testing.T) {
	t.Run("last segment", func(t *testing.T) {
		dir := t.TempDir()
		j := mustOpen(t, dir, Options{})
		for i := range 5 {
			j.Append(rec(i))
		}
		j.Close()
		flipByte(t, lastSegment(t, dir), headerSize+2) // in record 0's payload
		if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
	t.Run("earlier segment", func(t *testing.T) {
		dir := t.TempDir()
		j := mustOpen(t, dir, Options{SegmentSize: 100})
		for i := range 10 {
			j.Append(rec(i))
		}
		j.Close()
		segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		slices.Sort(segs)
		st, _ := os.Stat(segs[0])
		flipByte(t, segs[0], int(st.Size())-1) // tail of a segment that is not the last
		j2 := mustOpen(t, dir, Options{SegmentSize: 100})
		err := j2.Replay(func([]byte) error { return nil })
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
	t.Run("missing segment", func(t *testing.T) {
		dir := t.TempDir()
		j := mustOpen(t, dir, Options{SegmentSize: 100})
		for i := range 10 {
			j.Append(rec(i))
		}
		j.Close()
		segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		slices.Sort(segs)
		os.Remove(segs[1])
		j2 := mustOpen(t, dir, Options{SegmentSize: 100})
		if err := j2.Replay(func([]byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
	t.Run("checkpoint file", func(t *testing.T) {
		dir := t.TempDir()
		j := mustOpen(t, dir, Options{})
		pos, _ := j.Append(rec(1))
		j.Checkpoint(pos)
		j.Close()
		flipByte(t, filepath.Join(dir, checkpointName), 3)
		if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
}

func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x40
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

// TestCrashAtAnyPointKeepsEveryCompletedAppend simulates a crash by copying
// the journal directory while only a prefix of the last append reached the
// disk: reopening must return every completed append, in order, and
// nothing of the torn one.
func TestCrashAtAnyPointKeepsEveryCompletedAppend(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 40 {
		dir := t.TempDir()
		j := mustOpen(t, dir, Options{SegmentSize: 2000})
		var want []string
		groups := 1 + rng.IntN(30)
		for g := range groups {
			var group [][]byte
			for k := range 1 + rng.IntN(4) {
				group = append(group, rec(g*10+k))
			}
			if _, err := j.Append(group...); err != nil {
				t.Fatal(err)
			}
			for _, r := range group {
				want = append(want, string(r))
			}
			if rng.IntN(5) == 0 {
				j.Checkpoint(j.End())
				want = want[:0]
			}
		}
		j.Close()
		// The crash: a torn prefix of one more append lands at the end.
		// A record of it that is complete is replayed (harmless: it was
		// not acknowledged, and a resend is de-duplicated).
		first := appendRecord(nil, rec(900))
		torn := appendRecord(slices.Clone(first), rec(901))
		cut := rng.IntN(len(torn))
		if cut >= len(first) {
			want = append(want, string(rec(900)))
		}
		f, _ := os.OpenFile(lastSegment(t, dir), os.O_APPEND|os.O_WRONLY, 0)
		f.Write(torn[:cut])
		f.Close()
		crashed := t.TempDir()
		copyDir(t, dir, crashed)

		got := replayAll(t, mustOpen(t, crashed, Options{SegmentSize: 2000}))
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: replay %d records, want %d", trial, len(got), len(want))
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendRefusesOversizedRecord(t *testing.T) {
	j := mustOpen(t, t.TempDir(), Options{MaxRecord: 10})
	if _, err := j.Append([]byte("0123456789a")); err == nil {
		t.Fatal("oversized record accepted")
	}
	if got := replayAll(t, j); len(got) != 0 {
		t.Fatalf("refused append left %d records", len(got))
	}
}

// FuzzOpenReplay feeds arbitrary bytes as the last segment: Open and Replay
// must never panic, and whatever they accept must be a prefix of records
// that re-encodes to the segment's retained bytes.
func FuzzOpenReplay(f *testing.F) {
	f.Add(appendRecord(appendRecord(nil, []byte("a")), []byte("bc")))
	f.Add(appendRecord(nil, []byte("x"))[:5])
	f.Add([]byte{})
	f.Add(make([]byte, 20))
	f.Fuzz(func(t *testing.T, seg []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "0000000000000001.log"), seg, 0o640); err != nil {
			t.Fatal(err)
		}
		j, err := Open(dir, Options{MaxRecord: 1 << 16})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		defer j.Close()
		var re []byte
		if err := j.Replay(func(p []byte) error { re = appendRecord(re, p); return nil }); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(re, seg[:len(re)]) || int64(len(re)) != j.End().Off {
			t.Fatalf("replayed records do not re-encode to the kept prefix")
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	j := mustOpen(b, b.TempDir(), Options{})
	rec := bytes.Repeat([]byte("x"), 50_000) // one sender's batch of ~100 events
	b.SetBytes(int64(len(rec)) * 8)
	for b.Loop() {
		if _, err := j.Append(rec, rec, rec, rec, rec, rec, rec, rec); err != nil {
			b.Fatal(err)
		}
	}
}
