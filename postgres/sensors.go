package postgres

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// The sensor rollup (rollup_sensor_day, migration 0002) answers Sensors
// (TpotStats, getStats) for whole received days: per day, domain and sensor
// group, the number of events and the distinct peer idents and peer types.
// A day of raw events is ~330k rows on the 10M-event benchmark (60-120 ms
// to group); its rollup rows are one per group, domain and shard (~1,200).
// The sets cannot be decremented, so retention recomputes the boundary day
// from the events it keeps (recomputeSensorDay) instead of subtracting.

// sensorGroupSQL are the SQL expressions over events of sensorGroup.
const (
	sensorOld     = "hostname IN ('', 'undefined')"
	sensorHostSQL = "CASE WHEN " + sensorOld + " THEN '' ELSE hostname END"
	sensorIPSQL   = "CASE WHEN " + sensorOld + " THEN dst_ip ELSE '' END"
)

// sensorHash is the h column of a group: the first 16 bytes of
// SHA-256(host NUL ip) over the escaped strings (which hold no NUL).
func sensorHash(host, ip string) [16]byte {
	sum := sha256.Sum256([]byte(host + "\x00" + ip))
	var h [16]byte
	copy(h[:], sum[:16])
	return h
}

// sensorKey is one (day, domain, group, peer ident, peer type) of a batch;
// the upsert groups them into rows.
type sensorKey struct {
	t                   time.Time
	community           bool
	host, ip            string
	peerIdent, peerType string
}

// queueSensors queues the sensor rollup upsert for the inserted events, in
// the transaction's rollup shard (claimShard must be queued before). Rows
// are written in (t, community, h) order, the order every writer locks
// them in. A row's sets are kept sorted (in byte order: the elements are
// COLLATE "C") and rewritten only when the batch adds a value.
func queueSensors(b *pgx.Batch, inserted []peba.Event) {
	counts := map[sensorKey]int64{}
	for i := range inserted {
		e := &inserted[i]
		host, ip := storerow.SensorGroup(escText(e.Hostname), storerow.AddrText(e.DstIP))
		counts[sensorKey{dbTime(e.ReceivedTime).Truncate(24 * time.Hour), e.Domain == peba.DomainCommunity,
			host, ip, escText(e.PeerIdent), escText(e.PeerType)}]++
	}
	n := len(counts)
	var (
		ts     = make([]time.Time, 0, n)
		comms  = make([]bool, 0, n)
		hs     = make([][16]byte, 0, n)
		hosts  = make([]string, 0, n)
		ips    = make([]string, 0, n)
		idents = make([]string, 0, n)
		types  = make([]string, 0, n)
		cnts   = make([]int64, 0, n)
	)
	for k, c := range counts {
		ts, comms, hs = append(ts, k.t), append(comms, k.community), append(hs, sensorHash(k.host, k.ip))
		hosts, ips, idents, types = append(hosts, k.host), append(ips, k.ip), append(idents, k.peerIdent), append(types, k.peerType)
		cnts = append(cnts, c)
	}
	// nsets (migration 0007) is the sets' total size: recomputed only
	// when a set grows.
	b.Queue(`INSERT INTO rollup_sensor_day AS r (t, community, h, shard, host, ip, peer_idents, peer_types, cnt, nsets)
		SELECT t, community, h, current_setting('peba.rollup_shard')::smallint, host, ip, i, p, c, cardinality(i) + cardinality(p)
		FROM (SELECT t, community, h, host, ip,
				array_agg(DISTINCT ident COLLATE "C") AS i, array_agg(DISTINCT ptype COLLATE "C") AS p, sum(cnt)::bigint AS c
			FROM unnest($1::timestamp[], $2::boolean[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
				AS u(t, community, h, host, ip, ident, ptype, cnt)
			GROUP BY t, community, h, host, ip) g
		ORDER BY t, community, h
		ON CONFLICT (t, community, h, shard) DO UPDATE SET
			cnt = r.cnt + excluded.cnt,
			peer_idents = CASE WHEN excluded.peer_idents <@ r.peer_idents THEN r.peer_idents
				ELSE ARRAY(SELECT DISTINCT x COLLATE "C" FROM unnest(r.peer_idents || excluded.peer_idents) x ORDER BY 1) END,
			peer_types = CASE WHEN excluded.peer_types <@ r.peer_types THEN r.peer_types
				ELSE ARRAY(SELECT DISTINCT x COLLATE "C" FROM unnest(r.peer_types || excluded.peer_types) x ORDER BY 1) END,
			nsets = CASE WHEN excluded.peer_idents <@ r.peer_idents AND excluded.peer_types <@ r.peer_types THEN r.nsets
				ELSE cardinality(ARRAY(SELECT DISTINCT x COLLATE "C" FROM unnest(r.peer_idents || excluded.peer_idents) x))
					+ cardinality(ARRAY(SELECT DISTINCT x COLLATE "C" FROM unnest(r.peer_types || excluded.peer_types) x)) END`,
		ts, comms, hs, hosts, ips, idents, types, cnts)
}

// recomputeSensorDay replaces the sensor rollup rows of day (retention's
// boundary day, whose partition the caller has locked against appends)
// with the aggregate of the events left in it, in shard 0.
func recomputeSensorDay(ctx context.Context, tx pgx.Tx, day time.Time) error {
	if _, err := tx.Exec(ctx, "DELETE FROM rollup_sensor_day WHERE t = $1", day); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO rollup_sensor_day (t, community, h, shard, host, ip, peer_idents, peer_types, cnt, nsets)
		SELECT $1::timestamp, community,
			encode(substring(sha256(convert_to(host, 'UTF8') || '\x00'::bytea || convert_to(ip, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid,
			0, host, ip, array_agg(DISTINCT peer_ident), array_agg(DISTINCT peer_type), count(*),
			count(DISTINCT peer_ident) + count(DISTINCT peer_type)
		FROM (SELECT community, peer_ident, peer_type, `+sensorHostSQL+` AS host, `+sensorIPSQL+` AS ip
			FROM events WHERE received_time >= $1 AND received_time < $2) e
		GROUP BY community, host, ip`, day, day.Add(24*time.Hour))
	return err
}

// sensorRollup is the plan candidate of the sensor rollup: whole received
// days (split and plan only read its field and granularity).
var sensorRollup = rollup{table: "rollup_sensor_day", field: peba.Received, gran: 24 * time.Hour}

// Sensors implements peba.Stats (peba.md §7.1), as the DuckDB store does:
// events whose hostname is "undefined" or empty are grouped by target
// address; PeerIdent and PeerType are distinct and sorted in byte order;
// groups are ordered by Hostname then TargetIP. Whole received days come
// from the sensor rollup, the rest of the window from the raw events;
// windows with a peer type (whose rollup rows are per group, not per type)
// and created-time windows read the raw events only.
func (s *Store) Sensors(ctx context.Context, w peba.Window) ([]peba.SensorGroup, error) {
	return s.sensors(ctx, w, true)
}

func (s *Store) sensors(ctx context.Context, w peba.Window, useRollup bool) ([]peba.SensorGroup, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	col, err := timeColumn(w.Field)
	if err != nil {
		return nil, err
	}
	from, to := w.From, w.To
	if !from.IsZero() {
		from = dbTime(from)
	}
	if !to.IsZero() {
		to = dbTime(to)
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return nil, nil
	}
	var cands []*rollup
	if useRollup && w.Field == peba.Received && w.PeerType == "" {
		cands = []*rollup{&sensorRollup}
	}
	segs := split(from, to, cands, nil)
	var rows []sensorRow
	if s.memo != nil && slices.ContainsFunc(segs, func(sg segment) bool { return sg.r != nil }) {
		rows, err = s.sensorRowsMemo(ctx, w, col, segs)
	} else {
		rows, err = s.sensorRows(ctx, w, col, segs)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot query sensors: %w", err)
	}
	// The arrays of one row are distinct and sorted (array_agg(DISTINCT)
	// and the upsert's merge sort them, in byte order, which escText
	// keeps), so a group of one row, the common case, needs no merging:
	// building sets of ~50,000 peer idents per day cost more than the
	// query. Rows from the memo are shared: their slices are never
	// changed (appends go to clipped slices, the answer gets copies).
	type acc struct {
		idents, types []string
		n             int64
		rows          int
		shared        bool
	}
	groups := map[[2]string]*acc{}
	for _, r := range rows {
		g := groups[[2]string{r.host, r.ip}]
		if g == nil {
			groups[[2]string{r.host, r.ip}] = &acc{idents: r.idents, types: r.types, n: r.n, rows: 1, shared: r.shared}
			continue
		}
		g.idents, g.types = append(slices.Clip(g.idents), r.idents...), append(slices.Clip(g.types), r.types...)
		g.n += r.n
		g.rows++
		g.shared = g.shared || r.shared
	}
	if len(groups) == 0 {
		return nil, nil
	}
	out := make([]peba.SensorGroup, 0, len(groups))
	for k, g := range groups {
		if g.shared {
			g.idents, g.types = slices.Clone(g.idents), slices.Clone(g.types)
		}
		out = append(out, peba.SensorGroup{Hostname: unescText(k[0]), TargetIP: unescText(k[1]),
			PeerIdent: sortedSet(g.idents, g.rows > 1), PeerType: sortedSet(g.types, g.rows > 1), Count: g.n})
	}
	slices.SortFunc(out, func(a, b peba.SensorGroup) int {
		return cmp.Or(strings.Compare(a.Hostname, b.Hostname), strings.Compare(a.TargetIP, b.TargetIP))
	})
	return out, nil
}

// sensorRow is one row of the sensor rollup or of the raw grouping
// (escaped strings, sorted distinct sets).
type sensorRow struct {
	host, ip      string
	idents, types []string
	n             int64
	shared        bool // from the memo: not to be changed
}

func (r *sensorRow) size() int {
	n := 96 + len(r.host) + len(r.ip)
	for _, v := range r.idents {
		n += 16 + len(v)
	}
	for _, v := range r.types {
		n += 16 + len(v)
	}
	return n
}

// sensorSegQuery returns the query of one segment of Sensors (columns
// host, ip, peer idents, peer types, count); none if w names no domain.
func sensorSegQuery(w peba.Window, col string, seg segment, a *args) (q string, none bool) {
	sw := w
	sw.From, sw.To = seg.from, seg.to
	if seg.r != nil {
		conds, none := windowConds(sw, "t", a)
		return "SELECT host, ip, peer_idents, peer_types, cnt FROM rollup_sensor_day" + whereClause(conds), none
	}
	conds, none := windowConds(sw, col, a)
	return "SELECT " + sensorHostSQL + ", " + sensorIPSQL + ", array_agg(DISTINCT peer_ident), " +
		"array_agg(DISTINCT peer_type), count(*) FROM events" + whereClause(conds) + " GROUP BY 1, 2", none
}

// sensorRows reads the rows of segs.
func (s *Store) sensorRows(ctx context.Context, w peba.Window, col string, segs []segment) ([]sensorRow, error) {
	var (
		a     args
		parts []string
	)
	for _, seg := range segs {
		q, none := sensorSegQuery(w, col, seg, &a)
		if none {
			return nil, nil
		}
		parts = append(parts, "SELECT -1, x.* FROM ("+q+") x")
	}
	if len(parts) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, strings.Join(parts, " UNION ALL "), a...)
	if err != nil {
		return nil, err
	}
	var out []sensorRow
	err = scanSensorRows(rows, func(_ int32, r sensorRow) { out = append(out, r) })
	return out, err
}

// sensorRowsMemo reads the rows of segs with the sets of the sensor
// rollup's whole days through the memo (memo.go): per day and domains the
// merged sets of each group, versioned by the day's sum of nsets (which
// grows exactly when a set of the day does, migration 0007) and the
// retention epoch, read in the same snapshot as the rest. The counts are
// read every time, without the sets; groups whose sets are not in the
// memo are read whole.
func (s *Store) sensorRowsMemo(ctx context.Context, w peba.Window, col string, segs []segment) ([]sensorRow, error) {
	dom := domainKey(w.Domains)
	if dom == "" {
		return nil, nil
	}
	var out []sensorRow
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		out = out[:0]
		var days []time.Time
		for _, seg := range segs {
			if seg.r == nil {
				continue
			}
			if seg.from.IsZero() || seg.to.IsZero() || seg.to.Sub(seg.from) > 62*24*time.Hour {
				return errNoMemo // unbounded or long: read it whole
			}
			for d := seg.from; d.Before(seg.to); d = d.Add(24 * time.Hour) {
				days = append(days, d)
			}
		}
		dayEnd := days[len(days)-1].Add(24 * time.Hour)
		epoch, sums, err := versions(ctx, tx, []vspan{{table: "rollup_sensor_day", col: "nsets", from: days[0], to: dayEnd},
			{table: "rollup_recv_day_d1", from: days[0], to: dayEnd}})
		if err != nil {
			return err
		}
		gen := s.memo.Generation()
		keys := make([]string, len(days))
		rowKeys := make([]string, len(days))
		sets := make([]daySets, len(days))
		var (
			a     args
			parts []string
		)
		for i, d := range days {
			v := sums[0][d.UnixMicro()]
			if v == 0 {
				continue // no rows that day
			}
			// A past day whose count did not change either: its rows
			// whole (the sets and the counts).
			rowsKey := fmt.Sprintf("sensorrows|%s|%d|%d|%d|%d", dom, d.UnixMicro(), v, sums[1][d.UnixMicro()], epoch)
			if x, ok := s.memo.Get(rowsKey, gen); ok {
				out = append(out, x.([]sensorRow)...)
				continue
			}
			rowKeys[i] = rowsKey
			key := fmt.Sprintf("sensorsets|%s|%d|%d|%d", dom, d.UnixMicro(), v, epoch)
			sw := w
			sw.From, sw.To = d, d.Add(24*time.Hour)
			if x, ok := s.memo.Get(key, gen); ok {
				sets[i] = x.(daySets)
				conds, _ := windowConds(sw, "t", &a)
				parts = append(parts, "SELECT "+strconv.Itoa(i)+", host, ip, NULL::text[], NULL::text[], cnt FROM rollup_sensor_day"+whereClause(conds))
				continue
			}
			keys[i] = key
			q, _ := sensorSegQuery(w, col, segment{r: &sensorRollup, from: d, to: d.Add(24 * time.Hour)}, &a)
			parts = append(parts, "SELECT "+strconv.Itoa(i)+", x.* FROM ("+q+") x")
		}
		for _, seg := range segs {
			if seg.r == nil {
				q, _ := sensorSegQuery(w, col, seg, &a)
				parts = append(parts, "SELECT -1, x.* FROM ("+q+") x")
			}
		}
		if len(parts) == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, strings.Join(parts, " UNION ALL "), a...)
		if err != nil {
			return err
		}
		byDay := map[int32][]sensorRow{}
		counts := map[int32]map[[2]string]int64{}
		if err := scanSensorRows(rows, func(tag int32, r sensorRow) {
			switch {
			case tag >= 0 && sets[tag] != nil:
				c := counts[tag]
				if c == nil {
					c = map[[2]string]int64{}
					counts[tag] = c
				}
				c[[2]string{r.host, r.ip}] += r.n
			case tag >= 0:
				byDay[tag] = append(byDay[tag], r)
				out = append(out, r)
			default:
				out = append(out, r)
			}
		}); err != nil {
			return err
		}
		for i, d := range days {
			if sets[i] != nil {
				var day []sensorRow
				for g, n := range counts[int32(i)] {
					st, ok := sets[i][g]
					if !ok {
						return fmt.Errorf("BUG: sensor group %q not in the memo of its version", g)
					}
					day = append(day, sensorRow{host: g[0], ip: g[1], idents: st.idents, types: st.types, n: n, shared: true})
				}
				out = append(out, day...)
				if d.Add(24*time.Hour + memoMargin).Before(memoNow()) {
					// Counts of past days rarely change: the rows whole.
					s.memo.Put(rowKeys[i], gen, slices.Clip(day), 64+len(day)*96)
				}
				continue
			}
			if keys[i] == "" {
				continue
			}
			ds := daySets{}
			size := 64
			for _, r := range byDay[int32(i)] {
				g := [2]string{r.host, r.ip}
				st := ds[g]
				st.idents = append(st.idents, r.idents...)
				st.types = append(st.types, r.types...)
				ds[g] = st
			}
			for g, st := range ds {
				slices.Sort(st.idents)
				slices.Sort(st.types)
				st.idents, st.types = slices.Clip(slices.Compact(st.idents)), slices.Clip(slices.Compact(st.types))
				ds[g] = st
				size += 96 + len(g[0]) + len(g[1]) + 16*(len(st.idents)+len(st.types))
				for _, v := range st.idents {
					size += len(v)
				}
			}
			s.memo.Put(keys[i], gen, ds, size)
		}
		return nil
	})
	if err == errNoMemo {
		return s.sensorRows(ctx, w, col, segs)
	}
	return out, err
}

// daySets is the memo entry of a day of the sensor rollup: each group's
// peer idents and peer types (escaped, sorted, distinct), merged over its
// rows.
type daySets map[[2]string]struct{ idents, types []string }

var errNoMemo = errors.New("not through the memo")

// scanSensorRows passes each row (tag, host, ip, peer idents, peer types,
// count) to each; the slices are new for each row.
func scanSensorRows(rows pgx.Rows, each func(tag int32, r sensorRow)) error {
	defer rows.Close()
	for rows.Next() {
		var (
			tag int32
			r   sensorRow
		)
		if raw := rows.RawValues(); raw[3] == nil && raw[4] == nil {
			// Counts only (sensorRowsMemo).
			if err := rows.Scan(&tag, &r.host, &r.ip, nil, nil, &r.n); err != nil {
				return err
			}
		} else if rows.FieldDescriptions()[3].Format == pgtype.BinaryFormatCode {
			var ok1, ok2 bool
			r.idents, ok1 = textArray(raw[3])
			r.types, ok2 = textArray(raw[4])
			if !ok1 || !ok2 {
				return errors.New("malformed text array")
			}
			if err := rows.Scan(&tag, &r.host, &r.ip, nil, nil, &r.n); err != nil {
				return err
			}
		} else if err := rows.Scan(&tag, &r.host, &r.ip, &r.idents, &r.types, &r.n); err != nil {
			return err
		}
		each(tag, r)
	}
	return rows.Err()
}

// textArray decodes a one-dimensional text[] without NULLs in PostgreSQL's
// binary format (array_send: ndim, flags, element type, then per dimension
// its size and lower bound, then per element its length and bytes) into
// substrings of one string. pgx's decoding made a string and ran a scan
// plan per element: a day's ~45,000 peer idents (TpotStats, getStats) cost
// about a third of the server's CPU per request. ok is false for any other
// shape.
func textArray(raw []byte) (out []string, ok bool) {
	if len(raw) < 12 {
		return nil, false
	}
	if binary.BigEndian.Uint32(raw) == 0 {
		return []string{}, true // empty
	}
	if binary.BigEndian.Uint32(raw) != 1 || len(raw) < 20 {
		return nil, false
	}
	n := int(int32(binary.BigEndian.Uint32(raw[12:])))
	body := raw[20:]
	s := string(body)
	out = make([]string, 0, max(n, 0))
	p := 0
	for range n {
		if len(body)-p < 4 {
			return nil, false
		}
		l := int(int32(binary.BigEndian.Uint32(body[p:])))
		p += 4
		if l < 0 || len(body)-p < l {
			return nil, false // NULL, or truncated
		}
		out = append(out, s[p:p+l])
		p += l
	}
	return out, p == len(body)
}

// sortedSet unescapes the escaped values vs in place, after sorting them
// and removing repeats if merge (they come from several rows); otherwise
// they are already distinct and sorted.
func sortedSet(vs []string, merge bool) []string {
	if merge {
		slices.Sort(vs)
		vs = slices.Compact(vs)
	}
	for i, v := range vs {
		// Unescaping shortens a value that changes; storing only those
		// saves a GC write barrier per element.
		if u := unescText(v); len(u) != len(v) {
			vs[i] = u
		}
	}
	return vs
}
