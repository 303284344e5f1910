package duckdb

import (
	"testing"

	"github.com/peba-go/peba/storetest"
)

func TestSourcesContract(t *testing.T) {
	storetest.RunSources(t, func(t testing.TB) storetest.SourcesStore {
		s, _ := openTemp(t, Options{})
		return s
	})
}
