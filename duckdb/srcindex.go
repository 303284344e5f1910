package duckdb

import (
	"context"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/peba-go/peba"
)

// The source index (0004_src_index.sql) lets Latest of one source
// address (querySingleIP) answer "no events" without reading events, and
// otherwise read only the hours that hold the source's newest events: a
// full scan of src_ip cost 170 ms on 10M events.
//
// Per source key and domain it keeps the range of the create times, the
// last receive time (retention), and the newest srcHours distinct hours of
// the create times (all_hours: whether those are all of them). Several
// rows of one key are combined (min, max, union), and the bounds may be
// wider than the events (after retention), so a lookup narrows the events
// to read but the events decide.
//
// It is a small log-structured table pair: src_index is sorted by key, so
// that a lookup reads one row group of it; each append adds the batch's
// rows (one per key, domain and hour) to the unsorted src_index_tail,
// which is read whole. When the tail outgrows srcTailMin and half the sorted part,
// the append that notices merges both into a new sorted src_index. An
// upsert per source instead (MERGE, or ON CONFLICT with a primary key)
// cost about 20 µs per updated row, as much as appending the event.

// srcKeyOther is the key shared by the valid source addresses that are not
// IPv4. Lookups of such a source read the range of all of them.
const srcKeyOther = 1 << 32

// srcHours is how many of a source's newest hours the index lists. Latest
// reads the newest `limit` of them first (MAXALERTS, 5 by default).
const srcHours = 16

// hourUS is an hour in microseconds; an hour number is floor(µs / hourUS),
// as in SQL epoch_us(date_trunc('hour', t)) // 3600000000.
const hourUS = int64(time.Hour / time.Microsecond)

// srcKey returns the index key of a source address as stored (an IPv4
// address as a number, any other valid address srcKeyOther); ok is false
// for no address, which has no key.
func srcKey(a netip.Addr) (key uint64, ok bool) {
	switch {
	case !a.IsValid():
		return 0, false
	case a.Is4():
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:])), true
	}
	return srcKeyOther, true
}

// srcTailMin is the smallest tail that is merged into the sorted part: the
// merge rewrites the whole index (about 1 s for 900k sources), the tail
// costs each lookup a scan of one UBIGINT column.
var srcTailMin int64 = 200_000

// srcIndexState counts the rows of the two tables, to decide when to merge
// them. Guarded by Store.mu; known is false until counted, and after
// retention.
type srcIndexState struct {
	known      bool
	base, tail int64
}

// addHour adds hour h to hours (distinct, newest first, at most srcHours)
// and reports whether h was left out because the list is full of newer
// hours.
func addHour(hours []int32, h int32) ([]int32, bool) {
	i, found := slices.BinarySearchFunc(hours, h, func(a, b int32) int { return int(b) - int(a) })
	switch {
	case found:
		return hours, false
	case i == srcHours:
		return hours, true
	}
	hours = slices.Insert(hours, i, h)
	if len(hours) > srcHours {
		return hours[:srcHours], true
	}
	return hours, false
}

// appendSrcIndex adds the inserted events to src_index_tail, one row per
// source key, domain and hour, and merges the tail when it has grown.
func (s *Store) appendSrcIndex(ctx context.Context, inserted []peba.Event) error {
	type key struct {
		src       uint64
		community bool
		hour      int32
	}
	type bounds struct{ firstCreated, lastCreated, lastReceived int64 }
	at := make(map[key]int, len(inserted))
	keys := make([]key, 0, len(inserted))
	rows := make([]bounds, 0, len(inserted))
	for i := range inserted {
		e := &inserted[i]
		sk, ok := srcKey(e.SrcIP)
		if !ok {
			continue
		}
		ct, rt := dbTime(e.CreateTime).UnixMicro(), dbTime(e.ReceivedTime).UnixMicro()
		k := key{sk, e.Domain == peba.DomainCommunity, int32((ct - floorMod(ct, hourUS)) / hourUS)} // floor(ct / hourUS)
		j, ok := at[k]
		if !ok {
			at[k] = len(rows)
			keys, rows = append(keys, k), append(rows, bounds{ct, ct, rt})
			continue
		}
		r := &rows[j]
		r.firstCreated, r.lastCreated, r.lastReceived = min(r.firstCreated, ct), max(r.lastCreated, ct), max(r.lastReceived, rt)
	}
	if len(rows) == 0 {
		return nil
	}
	utc := func(us int64) time.Time { return time.UnixMicro(us).UTC() }
	err := s.wconn.Raw(func(dc any) error {
		app, err := duckdbdriver.NewAppenderFromConn(dc.(driver.Conn), "", "src_index_tail")
		if err != nil {
			return fmt.Errorf("cannot create appender for src_index_tail: %w", err)
		}
		for i, r := range rows {
			k := keys[i]
			if err := app.AppendRow(k.src, k.community, utc(r.firstCreated), utc(r.lastCreated), utc(r.lastReceived), k.hour); err != nil {
				app.Close()
				return fmt.Errorf("cannot append a row for src_index_tail: %w", err)
			}
		}
		if err := app.CloseWithCancel(ctx); err != nil {
			return fmt.Errorf("cannot update src_index_tail: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.countSrcIndex(ctx); err != nil {
		return err
	}
	s.srcIdx.tail += int64(len(rows))
	if s.srcIdx.tail < max(srcTailMin, s.srcIdx.base/2) {
		return nil
	}
	return s.mergeSrcIndex(ctx)
}

// countSrcIndex counts the rows of both tables if they are not known.
func (s *Store) countSrcIndex(ctx context.Context) error {
	if s.srcIdx.known {
		return nil
	}
	err := s.wconn.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM src_index), (SELECT count(*) FROM src_index_tail)").
		Scan(&s.srcIdx.base, &s.srcIdx.tail)
	if err != nil {
		return fmt.Errorf("cannot count src_index: %w", err)
	}
	s.srcIdx.known = true
	return nil
}

// srcIndexRows are the rows of both tables of the source index, in the
// layout of src_index.
const srcIndexRows = `SELECT * FROM src_index UNION ALL
	SELECT src, community, first_created, last_created, last_received, [hour], true FROM src_index_tail`

// srcMergeQuery returns a query that combines the rows of the source index
// in the relation rows per key and domain, as migration 0004 builds them:
// the hours are unnested and grouped per key, domain and hour first, then
// per key and domain, where max(h, 16) keeps the newest 16. Two
// aggregations in a row, which DuckDB can spill, and no join: combining a
// per-key aggregate of the bounds with one of the hours by a join ran out
// of the 128 MB memory limit at 650k keys in one key range (13.7M events
// from ~9.6M sources), and every append after it failed; aggregating lists
// of the hours ran out of 256 MB on 10M events.
func srcMergeQuery(rows string) string {
	return `SELECT src, community, min(first_created) AS first_created, max(last_created) AS last_created,
	      max(last_received) AS last_received, max(h, 16) AS hours, bool_and(all_hours) AND count(*) <= 16 AS all_hours
	FROM (SELECT src, community, h, min(first_created) AS first_created, max(last_created) AS last_created,
	             max(last_received) AS last_received, bool_and(all_hours) AS all_hours
	      FROM (SELECT src, community, first_created, last_created, last_received, all_hours, unnest(hours) AS h FROM (` + rows + `))
	      GROUP BY src, community, h)
	GROUP BY src, community`
}

// srcMergeChunkRows is about how many rows of the source index one
// statement of a merge combines and sorts: a merge goes through key ranges
// one at a time, as migration 0004 does, cut at quantiles of the keys so
// that each range holds about this many rows whatever the addresses. At
// the 128 MB memory limit, on 9.6M keys (3.2M of them in the tail), 16
// fixed ranges of ~650k rows ran out of memory sorting (which failed that
// append and every one after it: ingest stopped), and the whole merge took
// 10.3 s with ranges of ~300k rows, 7.3 s with ~200k, 8.0 s with ~100k
// and 8.9 s with ~50k (docs/performance.md, session 11).
var srcMergeChunkRows int64 = 200_000

// srcIndexColumns are the columns of src_index, as migration 0004 creates
// them (TestSrcIndexMergeUnderMemoryLimit compares).
const srcIndexColumns = `(
	src           UBIGINT   NOT NULL,
	community     BOOLEAN   NOT NULL,
	first_created TIMESTAMP NOT NULL,
	last_created  TIMESTAMP NOT NULL,
	last_received TIMESTAMP NOT NULL,
	hours         INTEGER[] NOT NULL,
	all_hours     BOOLEAN   NOT NULL
)`

// mergeSrcIndex rewrites src_index as one row per key and domain, sorted
// by key, from both tables, and empties the tail. It runs in the caller's
// transaction. The merged rows go into a new table that then replaces
// src_index: copying them back into src_index, in the same transaction,
// ran out of memory where building them did not (16 MB, 1M keys).
func (s *Store) mergeSrcIndex(ctx context.Context) error {
	bounds, err := s.srcMergeBounds(ctx)
	if err != nil {
		return fmt.Errorf("cannot merge src_index: %w", err)
	}
	// Until the transaction commits, the counts are unknown: if it rolls
	// back, the next append counts again.
	s.srcIdx.known = false
	qs := []string{"CREATE TABLE src_index_merge " + srcIndexColumns}
	for i := 0; i <= len(bounds); i++ {
		var conds []string
		if i > 0 {
			conds = append(conds, fmt.Sprintf("src >= %d", bounds[i-1]))
		}
		if i < len(bounds) {
			conds = append(conds, fmt.Sprintf("src < %d", bounds[i]))
		}
		rows := "SELECT * FROM (" + srcIndexRows + ")"
		if len(conds) > 0 {
			rows += " WHERE " + strings.Join(conds, " AND ")
		}
		qs = append(qs, "INSERT INTO src_index_merge SELECT * FROM ("+srcMergeQuery(rows)+") ORDER BY src")
	}
	qs = append(qs,
		"DELETE FROM src_index_tail",
		"DROP TABLE src_index",
		"ALTER TABLE src_index_merge RENAME TO src_index",
	)
	for _, q := range qs {
		if _, err := s.wconn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("cannot merge src_index: %w", err)
		}
	}
	return nil
}

// srcMergeBounds returns the keys at which a merge cuts the source index
// into ranges of about srcMergeChunkRows rows, ascending and distinct
// (none: one range). It needs the row counts (countSrcIndex). The
// quantiles are approximate (a t-digest, in bounded memory), and one key
// with many rows (srcKeyOther) stays in one range: a range may hold more
// rows than asked.
func (s *Store) srcMergeBounds(ctx context.Context) ([]uint64, error) {
	n := (s.srcIdx.base + s.srcIdx.tail) / srcMergeChunkRows // cuts
	if n < 1 {
		return nil, nil
	}
	var fr strings.Builder
	for i := int64(1); i <= n; i++ {
		if i > 1 {
			fr.WriteByte(',')
		}
		fmt.Fprintf(&fr, "%g", float64(i)/float64(n+1))
	}
	var qs []any
	// Keys fit a BIGINT (srcKeyOther is 2^32), which the driver scans as
	// int64; of a UBIGINT the quantiles came back as HUGEINT.
	err := s.wconn.QueryRowContext(ctx, "SELECT approx_quantile(src::BIGINT, ["+fr.String()+
		"]) FROM (SELECT src FROM src_index UNION ALL SELECT src FROM src_index_tail)").Scan(&qs)
	if err != nil {
		return nil, fmt.Errorf("cannot find key ranges: %w", err)
	}
	bounds := make([]uint64, 0, len(qs))
	for _, v := range qs {
		b, ok := v.(int64)
		if !ok || b < 0 {
			return nil, fmt.Errorf("cannot find key ranges: quantile %v (%T)", v, v)
		}
		bounds = append(bounds, uint64(b))
	}
	slices.Sort(bounds)
	return slices.Compact(bounds), nil
}

// retractSrcIndex drops the rows whose events were all received before t
// (the caller deletes those events in the same transaction). Rows that
// keep some events keep their bounds and hours, which stay valid if wider.
func (s *Store) retractSrcIndex(ctx context.Context, t time.Time) error {
	s.srcIdx.known = false
	for _, table := range []string{"src_index", "src_index_tail"} {
		if _, err := s.wconn.ExecContext(ctx, "DELETE FROM "+table+" WHERE last_received < ?", dbTime(t)); err != nil {
			return fmt.Errorf("cannot retract %s: %w", table, err)
		}
	}
	return nil
}

// srcInfo is what the source index knows of one source in some domains.
type srcInfo struct {
	firstCreated, lastCreated, lastReceived time.Time
	hours                                   []int32 // newest first, at most srcHours
	allHours                                bool    // hours holds every hour of the create times
}

// srcLookup returns the source index's combined row of src in ds, and ok
// false if the source has no events there.
func (s *Store) srcLookup(ctx context.Context, ds []peba.Domain, src netip.Addr) (info srcInfo, ok bool, err error) {
	// Latest matches an IPv4-mapped src with the IPv4 address, stored
	// under the address's own key.
	key, valid := srcKey(src.Unmap())
	cond, none := domainCond(ds)
	if !valid || none {
		return info, false, nil
	}
	// The cast keeps the comparison on the column's type, which zone maps
	// need: an untyped uint64 argument made it a full scan.
	where := " WHERE src = ?::UBIGINT"
	if cond != "" {
		where += " AND " + cond
	}
	rows, err := s.q(ctx).QueryContext(ctx, "SELECT first_created, last_created, last_received, hours, all_hours FROM src_index"+where+
		" UNION ALL SELECT first_created, last_created, last_received, [hour], true FROM src_index_tail"+where, key, key)
	if err != nil {
		return info, false, fmt.Errorf("cannot look up source index: %w", err)
	}
	defer rows.Close()
	info.allHours = true
	for rows.Next() {
		var (
			fc, lc, lr time.Time
			hours      []any
			all        bool
		)
		if err := rows.Scan(&fc, &lc, &lr, &hours, &all); err != nil {
			return info, false, fmt.Errorf("cannot look up source index: %w", err)
		}
		if !ok || fc.Before(info.firstCreated) {
			info.firstCreated = fc.UTC()
		}
		if !ok || lc.After(info.lastCreated) {
			info.lastCreated = lc.UTC()
		}
		if !ok || lr.After(info.lastReceived) {
			info.lastReceived = lr.UTC()
		}
		ok = true
		info.allHours = info.allHours && all
		for _, v := range hours {
			h, isInt := v.(int32)
			if !isInt {
				return info, false, fmt.Errorf("cannot look up source index: hour is %T", v)
			}
			var cut bool
			if info.hours, cut = addHour(info.hours, h); cut {
				info.allHours = false
			}
		}
	}
	if err := rows.Err(); err != nil {
		return info, false, fmt.Errorf("cannot look up source index: %w", err)
	}
	return info, ok, nil
}
