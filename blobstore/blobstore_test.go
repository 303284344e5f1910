package blobstore

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func sum(b []byte) string { h := md5.Sum(b); return hex.EncodeToString(h[:]) }

func TestPutGet(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "payloads"))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("GET / HTTP/1.1\r\n\r\n")
	id := sum(data)
	if s.Has(id) {
		t.Fatal("Has before Put")
	}
	// Concurrent writers of the same payload must not corrupt it.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Put(id, data); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := s.Get(id)
	if err != nil || string(got) != string(data) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.dir, id[:2]))
	if len(entries) != 1 {
		t.Fatalf("want exactly one file (no temp leftovers), got %d", len(entries))
	}
}

func TestRejectsPathTricks(t *testing.T) {
	s, _ := Open(t.TempDir())
	for _, bad := range []string{"../../etc/passwd", "", "ABCDEF0123456789ABCDEF0123456789", "0123"} {
		if err := s.Put(bad, []byte("x")); err == nil {
			t.Errorf("Put(%q) accepted", bad)
		}
		if _, err := s.Get(bad); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Get(%q) = %v, want ErrNotExist", bad, err)
		}
	}
}
