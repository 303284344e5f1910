// Package testfixtures locates the real EWS inputs under testdata/ews (copied
// from shared/fixtures: PEBA's sample posts and bodies produced by the real,
// unmodified ewsposter; see testdata/ews/README.md) for tests of any package.
package testfixtures

import (
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
)

// Dir returns the absolute path of testdata/ews/<sub>.
func Dir(sub string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "ews", sub)
}

// Files returns the sorted .xml files of testdata/ews/<sub>, failing the test
// if there are none.
func Files(tb testing.TB, sub string) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(Dir(sub), "*.xml"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no fixtures in %s: %v", Dir(sub), err)
	}
	sort.Strings(files)
	return files
}

// Read returns the contents of testdata/ews/<sub>/<name>.
func Read(tb testing.TB, sub, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(sub), name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
