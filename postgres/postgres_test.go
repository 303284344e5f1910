package postgres

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/pgtest"
	"github.com/peba-go/peba/storetest"
)

// openTemp opens a Store on a fresh database and closes it when t ends.
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	dsn := pgtest.DSN(t)
	s, err := Open(context.Background(), dsn, Options{MaxConns: 4, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
}

// testLogger logs to t.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// suiteOpener returns the open function of a contract suite: one database
// for the whole suite t (creating and dropping a database costs about a
// second), emptied before each subtest's store is returned.
func suiteOpener(t *testing.T) func(testing.TB) *Store {
	dsn := pgtest.DSN(t)
	return func(st testing.TB) *Store {
		st.Helper()
		ctx := context.Background()
		s, err := Open(ctx, dsn, Options{MaxConns: 4})
		if err != nil {
			st.Fatal(err)
		}
		st.Cleanup(func() { s.Close() })
		for _, p := range partitions(st, s) {
			if _, err := s.pool.Exec(ctx, "DROP TABLE "+p); err != nil {
				st.Fatal(err)
			}
		}
		if _, err := s.pool.Exec(ctx, `TRUNCATE event_ids, rollup_recv_minute, rollup_recv_hour, rollup_recv_day, rollup_created_hour,
			rollup_created_day, rollup_sensor_day, payloads, payload_data, users, live_feed RESTART IDENTITY`); err != nil {
			st.Fatal(err)
		}
		return s
	}
}

func TestContract(t *testing.T) {
	open := suiteOpener(t)
	storetest.Run(t, func(t testing.TB) peba.Store { return open(t) })
}

func TestStatsContract(t *testing.T) {
	open := suiteOpener(t)
	storetest.RunStats(t, func(t testing.TB) storetest.StatsStore { return open(t) })
}

func TestSourcesContract(t *testing.T) {
	open := suiteOpener(t)
	storetest.RunSources(t, func(t testing.TB) storetest.SourcesStore { return open(t) })
}
