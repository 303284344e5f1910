package duckdb

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/peba-go/peba"
)

var _ peba.SourceLister = (*Store)(nil)

// Sources implements peba.SourceLister (blocklists). Windows of received
// times that the recent times cover, without a peer type, are counted in
// memory (recent_sources.go); others are read with sourcesStored.
func (s *Store) Sources(ctx context.Context, w peba.Window, q peba.SourceQuery) ([]peba.Source, error) {
	if out, ok, err := s.sourcesRecent(w, q); ok || err != nil {
		return out, err
	}
	_ = s.loadTimes(ctx) // if it fails, sourcesStored answers
	if out, ok, err := s.sourcesRecent(w, q); ok || err != nil {
		return out, err
	}
	return s.sourcesStored(ctx, w, q)
}

// sourcesStored is Sources from the events table. One GROUP BY over the
// raw events of the window: the rollups have no per-address dimension (an
// address rollup would be nearly as large as the events), and the window's
// time bound lets zone maps skip every row group outside it. MinCount is a
// HAVING clause, so addresses below it never leave DuckDB.
//
// DuckDB orders by count; the tie-break by address is made in Go, because
// the addresses are stored as text, whose order is not numeric. With a
// limit, reading stops after the count group of the limit-th row, so the
// tie-break at the cut is exact too; of that group, no more than twice the
// limit is held at a time.
func (s *Store) sourcesStored(ctx context.Context, w peba.Window, q peba.SourceQuery) ([]peba.Source, error) {
	col, err := timeColumn(w.Field)
	if err != nil {
		return nil, err
	}
	// Events without a source address ('') form one group, skipped below:
	// cheaper than comparing every row's address in a WHERE clause.
	where, args, none := windowWhere(w, col)
	if none {
		return nil, nil
	}
	// Times leave DuckDB as epoch microseconds: cheaper to scan than
	// TIMESTAMP values, and exact.
	// total (the number of rows) sizes the result slice once instead of
	// growing it through a dozen copies of up to megabytes.
	sql := "SELECT src_ip, count(*)::BIGINT AS n, epoch_us(min(" + col + ")), epoch_us(max(" + col + ")), count(*) OVER ()" +
		" FROM events" + where + " GROUP BY src_ip"
	if q.MinCount > 1 {
		sql += " HAVING count(*) >= " + strconv.FormatInt(q.MinCount, 10)
	}
	sql += " ORDER BY n DESC"
	rows, err := s.db.QueryContext(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot list sources: %w", err)
	}
	defer rows.Close()
	var out []peba.Source
	for rows.Next() {
		var (
			ip                 string
			n                  int64
			first, last, total int64
		)
		if err := rows.Scan(&ip, &n, &first, &last, &total); err != nil {
			return nil, fmt.Errorf("cannot scan sources: %w", err)
		}
		if out == nil {
			c := total
			if q.Limit > 0 && int64(q.Limit) < c {
				c = int64(q.Limit) + 1 // ties past the limit are rare; append grows then
			}
			out = make([]peba.Source, 0, c)
		}
		if q.Limit > 0 && len(out) >= q.Limit && n < out[q.Limit-1].Count {
			break // past the count group of the limit-th address
		}
		if ip == "" {
			continue
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("cannot parse stored address: %w", err)
		}
		if q.GlobalOnly && !peba.IsGlobal(a) {
			continue
		}
		out = append(out, peba.Source{Addr: a, Count: n, First: time.UnixMicro(first).UTC(), Last: time.UnixMicro(last).UTC()})
		if q.Limit > 0 && len(out) >= 2*q.Limit {
			// A count group at the cut can be most of the window: 21M
			// addresses seen once in a day took the list to 2.5 GB
			// (docs/performance.md, session 11). Later rows count no more
			// than these, so the first Limit in the final order are all
			// that can stay.
			sortSourceTies(out)
			out = out[:q.Limit]
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list sources: %w", err)
	}
	// The rows came by count descending.
	sortSourceTies(out)
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// sortSourceTies sorts each run of equal counts of srcs, which are ordered
// by count, by address.
func sortSourceTies(srcs []peba.Source) {
	for i := 0; i < len(srcs); {
		j := i + 1
		for j < len(srcs) && srcs[j].Count == srcs[i].Count {
			j++
		}
		peba.SortSourcesByAddr(srcs[i:j])
		i = j
	}
}
