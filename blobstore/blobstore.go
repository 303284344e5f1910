// Package blobstore keeps payload bytes as content-addressed files in the
// data directory: <dir>/<md5[0:2]>/<md5>. A payload is written once, however
// many events carry it (peba.md §4.10 kept only an S3 URL; we keep the bytes).
package blobstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

var md5Hex = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Store is a directory of payload files. It is safe for concurrent use:
// writers of the same md5 race harmlessly, because each writes a private
// temporary file and renames it into place.
type Store struct{ dir string }

// Open creates dir if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create payload directory: %w", err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(md5 string) (string, error) {
	if !md5Hex.MatchString(md5) {
		return "", fmt.Errorf("invalid payload md5 %q", md5)
	}
	return filepath.Join(s.dir, md5[:2], md5), nil
}

// Put stores data under its md5 unless a file for it exists. The file is
// fsynced before Put returns, so that a payload referenced by a committed
// event survives a crash. The caller computes md5; Put trusts it.
func (s *Store) Put(md5 string, data []byte) error {
	p, err := s.path(md5)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return fmt.Errorf("cannot create payload directory: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot create payload file: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, p)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot write payload file: %w", werr)
	}
	return nil
}

// Get returns the bytes stored for md5, or an error wrapping fs.ErrNotExist.
func (s *Store) Get(md5 string) ([]byte, error) {
	p, err := s.path(md5)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	}
	return os.ReadFile(p)
}

// Has reports whether bytes are stored for md5.
func (s *Store) Has(md5 string) bool {
	p, err := s.path(md5)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return !errors.Is(err, fs.ErrNotExist) && err == nil
}
