package postgres

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/peba-go/peba"
)

var _ peba.SourceLister = (*Store)(nil)

// Sources implements peba.SourceLister (blocklists), as the DuckDB store
// does: one GROUP BY over the raw events of the window (the rollups have
// no per-address dimension), MinCount as HAVING, rows by count descending,
// and the tie-break by address made in Go, since the addresses are stored
// as text. With a limit, reading stops after the limit-th row's count
// group, so the tie-break at the cut is exact too.
func (s *Store) Sources(ctx context.Context, w peba.Window, q peba.SourceQuery) ([]peba.Source, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	col, err := timeColumn(w.Field)
	if err != nil {
		return nil, err
	}
	var a args
	conds, none := windowConds(w, col, &a)
	if none {
		return nil, nil
	}
	conds = append(conds, "src_ip <> ''")
	sql := "SELECT src_ip, count(*) AS n, min(" + col + "), max(" + col + ") FROM events" +
		whereClause(conds) + " GROUP BY src_ip"
	if q.MinCount > 1 {
		sql += " HAVING count(*) >= " + strconv.FormatInt(q.MinCount, 10)
	}
	sql += " ORDER BY n DESC"
	rows, err := s.pool.Query(ctx, sql, a...)
	if err != nil {
		return nil, fmt.Errorf("cannot list sources: %w", err)
	}
	defer rows.Close()
	var out []peba.Source
	for rows.Next() {
		var (
			ip          string
			n           int64
			first, last time.Time
		)
		if err := rows.Scan(&ip, &n, &first, &last); err != nil {
			return nil, fmt.Errorf("cannot scan sources: %w", err)
		}
		if q.Limit > 0 && len(out) >= q.Limit && n < out[q.Limit-1].Count {
			break // past the count group of the limit-th address
		}
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("cannot parse stored address: %w", err)
		}
		if q.GlobalOnly && !peba.IsGlobal(addr) {
			continue
		}
		out = append(out, peba.Source{Addr: addr, Count: n, First: first.UTC(), Last: last.UTC()})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list sources: %w", err)
	}
	// The rows came by count descending: sort each run of equal counts by
	// address (peba.SortSourcesByAddr is fast on long IPv4 lists).
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && out[j].Count == out[i].Count {
			j++
		}
		peba.SortSourcesByAddr(out[i:j])
		i = j
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}
