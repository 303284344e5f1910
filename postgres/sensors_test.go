package postgres

import (
	"context"
	"reflect"
	"testing"
)

// TestTextArray decodes text arrays sent in the binary format as pgx's own
// decoding does, and rejects the shapes it does not handle.
func TestTextArray(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	for _, lit := range []string{
		`ARRAY['a', '', 'Network(Dionaea)', E'x\x01\x02y', 'äöü']::text[]`,
		`ARRAY['']::text[]`,
		`'{}'::text[]`,
	} {
		var want []string
		if err := s.pool.QueryRow(ctx, "SELECT "+lit).Scan(&want); err != nil {
			t.Fatal(err)
		}
		rows, err := s.pool.Query(ctx, "SELECT "+lit)
		if err != nil {
			t.Fatal(err)
		}
		if !rows.Next() {
			t.Fatalf("%s: no row: %v", lit, rows.Err())
		}
		got, ok := textArray(rows.RawValues()[0])
		rows.Close()
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("textArray(%s) = %q, %v; want %q", lit, got, ok, want)
		}
	}
	for _, lit := range []string{`ARRAY['a', NULL]::text[]`, `ARRAY[['a'], ['b']]::text[]`} {
		rows, err := s.pool.Query(ctx, "SELECT "+lit)
		if err != nil {
			t.Fatal(err)
		}
		if !rows.Next() {
			t.Fatalf("%s: no row: %v", lit, rows.Err())
		}
		if got, ok := textArray(rows.RawValues()[0]); ok {
			t.Errorf("textArray(%s) = %q, ok", lit, got)
		}
		rows.Close()
	}
	if _, ok := textArray([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 25, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 9, 'a'}); ok {
		t.Error("textArray accepted a truncated array")
	}
}
