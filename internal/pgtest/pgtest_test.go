package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestDSN: each call gives another, empty database, which is gone after
// the test that asked for it.
func TestDSN(t *testing.T) {
	ctx := context.Background()
	var names []string
	t.Run("use", func(t *testing.T) {
		for range 2 {
			c, err := pgx.Connect(ctx, DSN(t))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			var name string
			var tables int
			if err := c.QueryRow(ctx, `SELECT current_database(),
				(SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&name, &tables); err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Errorf("database %s has %d tables, want none", name, tables)
			}
			names = append(names, name)
		}
	})
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("databases %v, want two different ones", names)
	}
	c, err := pgx.Connect(ctx, server(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var left int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d of the test databases %v were not dropped", left, names)
	}
}
