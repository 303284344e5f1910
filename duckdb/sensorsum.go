package duckdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

// Sensors of whole received days come from summaries (0005_sensor_summary.sql):
// per day and domain, each group with its distinct identifiers and types,
// sorted. A day of the benchmark data has 44k community rows in
// rollup_sensor_day but 600 groups: aggregating the rows cost 3-4x the CPU
// of reading and decoding the summary. A summary is
// written when a read had to aggregate its day, and read instead of the
// rows while it is valid. Nothing is done at append time:
//
//   - A summary records the day's events and rollup_sensor_day rows when it
//     was made. Appends only add events and rows, so while the day's total
//     (from rollup_recv_day's peer-type rows, a few rows a day) equals the
//     recorded one, the summary is exact. If only the total differs but the
//     row count is the same, no row was added: the identifiers and types
//     still hold and only the counts are summed again (today, while events
//     arrive). Otherwise the day is aggregated again. This relies on both
//     rollups being maintained in the append transaction and on
//     rollup_sensor_day having one row per key (its MERGE).
//   - Retention removes events, which could bring a day back to a recorded
//     total with other rows: it deletes the summaries of the days it
//     touches and increments sensor_summary_epoch, in its transaction. A
//     summary computed from a snapshot older than the latest retention is
//     not written (saveSensorDays compares the epochs).
//
// Summaries are written by readers, under the writer lock if it is free
// (never waiting for an append). A day that is not over is written when
// it is aggregated, not when it is only recounted, so that reads of today
// during ingest do not keep rewriting it.

// daySensors is Sensors of one received day and domain.
type daySensors struct {
	day       int64 // UTC microseconds of the day's start
	community bool
	groups    []peba.SensorGroup
	events    int64 // the day's events (sum of the groups' counts)
	keys      int64 // its rollup_sensor_day rows
	// dec is the summary groups came from, unchanged (sensorcache.go):
	// then groups is dec.groups, shared, and must not be modified.
	dec *decodedSummary
}

type dayDomain struct {
	day       int64
	community bool
}

// sensorDays returns Sensors of each of days (starts of UTC days) in each of
// domains, from summaries where they are valid and from rollup_sensor_day
// otherwise, and the days computed or recounted that saveSensorDays should
// store, with the retention epoch of this snapshot. It runs in a readTx.
func (s *Store) sensorDays(ctx context.Context, days []time.Time, domains []peba.Domain) (out, fresh []daySensors, epoch int64, err error) {
	dc, _ := domainCond(domains)
	if dc != "" {
		dc = " AND " + dc
	}
	sums, err := s.readSensorSummaries(ctx, days[0], days[len(days)-1].Add(24*time.Hour), dc)
	if err != nil {
		return nil, nil, 0, err
	}
	var want, stale, compute []dayDomain
	for _, d := range days {
		for _, community := range []bool{true, false} {
			if !slices.Contains(domains, domainOf(community)) {
				continue
			}
			k := dayDomain{d.UnixMicro(), community}
			want = append(want, k)
			switch sum := sums[k]; {
			case sum == nil:
				compute = append(compute, k)
			case sum.events != sum.total:
				stale = append(stale, k)
			}
		}
	}
	if len(stale) > 0 {
		// Days whose rows did not change only need their counts summed again.
		counts, keys, err := s.recountSensors(ctx, stale, dc)
		if err != nil {
			return nil, nil, 0, err
		}
		now := time.Now()
		for _, k := range stale {
			if keys[k] != sums[k].keys {
				compute = append(compute, k)
				delete(sums, k)
				continue
			}
			d := &sums[k].daySensors
			d.groups, d.dec = slices.Clone(d.groups), nil // shared with the cache
			d.events = 0
			for i := range d.groups {
				g := &d.groups[i]
				g.Count = counts[k][[2]string{g.Hostname, g.TargetIP}]
				d.events += g.Count
			}
			// A day that is over changes no more (but for late events):
			// store its counts so that it is exact next time.
			if !time.UnixMicro(k.day).Add(24 * time.Hour).After(now) {
				fresh = append(fresh, *d)
			}
		}
	}
	var computed map[dayDomain]*daySensors
	if len(compute) > 0 {
		if computed, err = s.computeSensorDays(ctx, compute, dc); err != nil {
			return nil, nil, 0, err
		}
		for _, k := range compute {
			if d := computed[k]; d != nil {
				fresh = append(fresh, *d)
			}
		}
	}
	if len(fresh) > 0 {
		if err := s.q(ctx).QueryRowContext(ctx, "SELECT n FROM sensor_summary_epoch").Scan(&epoch); err != nil {
			return nil, nil, 0, fmt.Errorf("cannot query sensor_summary_epoch: %w", err)
		}
	}
	for _, k := range want {
		if sum := sums[k]; sum != nil {
			out = append(out, sum.daySensors)
		} else if d := computed[k]; d != nil {
			out = append(out, *d)
		}
	}
	return out, fresh, epoch, nil
}

// sensorSummary is a stored summary with the current total of its day.
type sensorSummary struct {
	daySensors
	total int64
}

// readSensorSummaries reads the summaries of the days in [first, end) that
// match the domain condition dc, with the days' current totals (from the
// peer-type rows of rollup_recv_day). One round trip without a join: a
// join of the two cost 3x the CPU of both scans.
func (s *Store) readSensorSummaries(ctx context.Context, first, end time.Time, dc string) (map[dayDomain]*sensorSummary, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT epoch_us(t), community, event_count, key_count, groups FROM sensor_summary
		WHERE t >= ? AND t < ?`+dc+`
		UNION ALL SELECT epoch_us(t), community, sum(cnt)::BIGINT, -1, NULL FROM rollup_recv_day
		WHERE dim = `+strconv.Itoa(int(peba.DimPeerType))+` AND t >= ? AND t < ?`+dc+` GROUP BY ALL`, first, end, first, end)
	if err != nil {
		return nil, fmt.Errorf("cannot read sensor summaries: %w", err)
	}
	defer rows.Close()
	out := map[dayDomain]*sensorSummary{}
	totals := map[dayDomain]int64{}
	for rows.Next() {
		var (
			sum    sensorSummary
			groups []byte
		)
		if err := rows.Scan(&sum.day, &sum.community, &sum.events, &sum.keys, &groups); err != nil {
			return nil, fmt.Errorf("cannot read sensor summaries: %w", err)
		}
		k := dayDomain{sum.day, sum.community}
		if sum.keys < 0 {
			totals[k] = sum.events
			continue
		}
		// An undecodable summary is treated as missing: rewritten after
		// the day is aggregated again.
		if sum.dec, err = s.sensorCache.decodeSummary(k, groups); err == nil {
			sum.groups = sum.dec.groups
			out[k] = &sum
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read sensor summaries: %w", err)
	}
	for k, sum := range out {
		sum.total = totals[k]
	}
	return out, nil
}

// recountSensors returns the events of each group of each of ks, and the
// rollup_sensor_day rows of each of ks.
func (s *Store) recountSensors(ctx context.Context, ks []dayDomain, dc string) (counts map[dayDomain]map[[2]string]int64, keys map[dayDomain]int64, err error) {
	where, args := dayIn(ks)
	rows, err := s.q(ctx).QueryContext(ctx, "SELECT epoch_us(t), community, h, ip, sum(cnt)::BIGINT, count(*) FROM rollup_sensor_day WHERE "+
		where+dc+" GROUP BY ALL", args...)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot recount sensors: %w", err)
	}
	defer rows.Close()
	counts, keys = map[dayDomain]map[[2]string]int64{}, map[dayDomain]int64{}
	for rows.Next() {
		var k dayDomain
		var h, ip string
		var n, rs int64
		if err := rows.Scan(&k.day, &k.community, &h, &ip, &n, &rs); err != nil {
			return nil, nil, fmt.Errorf("cannot recount sensors: %w", err)
		}
		if counts[k] == nil {
			counts[k] = map[[2]string]int64{}
		}
		counts[k][[2]string{h, ip}] = n
		keys[k] += rs
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("cannot recount sensors: %w", err)
	}
	return counts, keys, nil
}

// computeSensorDays aggregates the rollup_sensor_day rows of each of ks.
func (s *Store) computeSensorDays(ctx context.Context, ks []dayDomain, dc string) (map[dayDomain]*daySensors, error) {
	where, args := dayIn(ks)
	rows, err := s.aggregateSensors(ctx, "FROM (SELECT t, community, h, ip, peer_ident, peer_type, cnt AS c FROM rollup_sensor_day WHERE "+
		where+dc+") GROUP BY t, community, h, ip", "epoch_us(t), community", args)
	if err != nil {
		return nil, err
	}
	out := map[dayDomain]*daySensors{}
	for _, r := range rows {
		k := dayDomain{r.day, r.community}
		if !slices.Contains(ks, k) {
			continue // the other domain of a day in ks
		}
		d := out[k]
		if d == nil {
			d = &daySensors{day: k.day, community: k.community}
			out[k] = d
		}
		d.groups = append(d.groups, r.g)
		d.events += r.g.Count
		d.keys += r.keys
	}
	for _, d := range out {
		sortSensors(d.groups)
	}
	return out, nil
}

// saveSensorDays stores days as summaries if the writer is free and no
// retention ran since their snapshot (epoch). A failure only means that a
// later read aggregates the days again, so it is not reported.
func (s *Store) saveSensorDays(ctx context.Context, epoch int64, days []daySensors) {
	if len(days) == 0 || !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.inTx(ctx, func() error {
		var now int64
		if err := s.wconn.QueryRowContext(ctx, "SELECT n FROM sensor_summary_epoch").Scan(&now); err != nil {
			return err
		}
		if now != epoch {
			return errRetained
		}
		for _, d := range days {
			t := time.UnixMicro(d.day).UTC()
			if _, err := s.wconn.ExecContext(ctx, "DELETE FROM sensor_summary WHERE t = ? AND community = ?", t, d.community); err != nil {
				return err
			}
			if _, err := s.wconn.ExecContext(ctx, "INSERT INTO sensor_summary VALUES (?, ?, ?, ?, ?)",
				t, d.community, d.events, d.keys, encodeSensorGroups(d.groups)); err != nil {
				return err
			}
		}
		return nil
	})
}

// errRetained stops saveSensorDays' transaction: retention ran after the
// summaries' snapshot.
var errRetained = errors.New("retention ran since the snapshot")

// encodeSensorGroups encodes groups for sensor_summary: the number of
// groups and of identifiers and types in all, then per group its hostname,
// target address, count, identifiers and types, as uvarint lengths and
// counts followed by the bytes. Unlike the U+0001-joined strings of
// aggregateSensors, any value survives.
func encodeSensorGroups(groups []peba.SensorGroup) []byte {
	items := 0
	for _, g := range groups {
		items += len(g.PeerIdent) + len(g.PeerType)
	}
	b := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(len(groups))), uint64(items))
	str := func(v string) { b = append(binary.AppendUvarint(b, uint64(len(v))), v...) }
	for _, g := range groups {
		str(g.Hostname)
		str(g.TargetIP)
		b = binary.AppendUvarint(b, uint64(g.Count))
		for _, l := range [][]string{g.PeerIdent, g.PeerType} {
			b = binary.AppendUvarint(b, uint64(len(l)))
			for _, v := range l {
				str(v)
			}
		}
	}
	return b
}

// decodeSensorGroups decodes what encodeSensorGroups wrote. The strings
// share one copy of b and the lists one slice, and the position is a local
// integer: decoding the 55k items of a benchmark day with a cursor struct
// spent half its time in GC write barriers.
func decodeSensorGroups(b []byte) ([]peba.SensorGroup, error) {
	s := string(b)
	pos := 0
	groups, items := uvarintAt(b, &pos), uvarintAt(b, &pos)
	if pos < 0 || groups > uint64(len(b)) || items > uint64(len(b)) {
		return nil, errMalformedSummary
	}
	out := make([]peba.SensorGroup, groups)
	all := make([]string, items)
	for i := range out {
		g := &out[i]
		g.Hostname, g.TargetIP = stringAt(s, b, &pos), stringAt(s, b, &pos)
		count := uvarintAt(b, &pos)
		for _, l := range []*[]string{&g.PeerIdent, &g.PeerType} {
			n := uvarintAt(b, &pos)
			if pos < 0 || n > uint64(len(all)) {
				return nil, errMalformedSummary
			}
			*l, all = all[:n:n], all[n:]
			for j := range *l {
				(*l)[j] = stringAt(s, b, &pos)
			}
		}
		if pos < 0 || count > math.MaxInt64 {
			return nil, errMalformedSummary
		}
		g.Count = int64(count)
	}
	if pos != len(b) || len(all) > 0 {
		return nil, errMalformedSummary
	}
	return out, nil
}

// uvarintAt reads a uvarint at *pos of b and advances *pos, or sets it to
// -1 (and stays there) if there is none.
func uvarintAt(b []byte, pos *int) uint64 {
	if *pos < 0 {
		return 0
	}
	n, size := binary.Uvarint(b[*pos:])
	if size <= 0 {
		*pos = -1
		return 0
	}
	*pos += size
	return n
}

// stringAt reads a length-prefixed string at *pos of b (s is b as a
// string) like uvarintAt.
func stringAt(s string, b []byte, pos *int) string {
	n := uvarintAt(b, pos)
	if *pos < 0 || n > uint64(len(b)-*pos) {
		*pos = -1
		return ""
	}
	v := s[*pos : *pos+int(n)]
	*pos += int(n)
	return v
}

var errMalformedSummary = errors.New("malformed sensor summary")

// dropSensorSummaries deletes the summaries of the days with events
// received before t, which the caller deletes in the same transaction, and
// increments the retention epoch (see above).
func (s *Store) dropSensorSummaries(ctx context.Context, t time.Time) error {
	if _, err := s.wconn.ExecContext(ctx, "DELETE FROM sensor_summary WHERE t < ?", dbTime(t)); err != nil {
		return fmt.Errorf("cannot drop sensor summaries: %w", err)
	}
	if _, err := s.wconn.ExecContext(ctx, "UPDATE sensor_summary_epoch SET n = n + 1"); err != nil {
		return fmt.Errorf("cannot drop sensor summaries: %w", err)
	}
	return nil
}

// domainOf returns the domain of the community column's value.
func domainOf(community bool) peba.Domain {
	if community {
		return peba.DomainCommunity
	}
	return peba.DomainPrivate
}

// dayIn returns a condition on t that selects the days of ks, and its
// arguments.
func dayIn(ks []dayDomain) (string, []any) {
	var args []any
	for _, k := range ks {
		t := time.UnixMicro(k.day).UTC()
		if len(args) == 0 || !args[len(args)-1].(time.Time).Equal(t) {
			args = append(args, t)
		}
	}
	return "t IN (?" + strings.Repeat(", ?", len(args)-1) + ")", args
}
