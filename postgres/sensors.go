package postgres

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
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
	b.Queue(`INSERT INTO rollup_sensor_day AS r (t, community, h, shard, host, ip, peer_idents, peer_types, cnt)
		SELECT t, community, h, current_setting('peba.rollup_shard')::smallint, host, ip,
			array_agg(DISTINCT ident COLLATE "C"), array_agg(DISTINCT ptype COLLATE "C"), sum(cnt)::bigint
		FROM unnest($1::timestamp[], $2::boolean[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
			AS u(t, community, h, host, ip, ident, ptype, cnt)
		GROUP BY t, community, h, host, ip
		ORDER BY t, community, h
		ON CONFLICT (t, community, h, shard) DO UPDATE SET
			cnt = r.cnt + excluded.cnt,
			peer_idents = CASE WHEN excluded.peer_idents <@ r.peer_idents THEN r.peer_idents
				ELSE ARRAY(SELECT DISTINCT x COLLATE "C" FROM unnest(r.peer_idents || excluded.peer_idents) x ORDER BY 1) END,
			peer_types = CASE WHEN excluded.peer_types <@ r.peer_types THEN r.peer_types
				ELSE ARRAY(SELECT DISTINCT x COLLATE "C" FROM unnest(r.peer_types || excluded.peer_types) x ORDER BY 1) END`,
		ts, comms, hs, hosts, ips, idents, types, cnts)
}

// recomputeSensorDay replaces the sensor rollup rows of day (retention's
// boundary day, whose partition the caller has locked against appends)
// with the aggregate of the events left in it, in shard 0.
func recomputeSensorDay(ctx context.Context, tx pgx.Tx, day time.Time) error {
	if _, err := tx.Exec(ctx, "DELETE FROM rollup_sensor_day WHERE t = $1", day); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO rollup_sensor_day (t, community, h, shard, host, ip, peer_idents, peer_types, cnt)
		SELECT $1::timestamp, community,
			encode(substring(sha256(convert_to(host, 'UTF8') || '\x00'::bytea || convert_to(ip, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid,
			0, host, ip, array_agg(DISTINCT peer_ident), array_agg(DISTINCT peer_type), count(*)
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
	var (
		a     args
		parts []string
	)
	for _, seg := range split(from, to, cands, nil) {
		sw := w
		sw.From, sw.To = seg.from, seg.to
		if seg.r != nil {
			conds, none := windowConds(sw, "t", &a)
			if none {
				return nil, nil
			}
			parts = append(parts, "SELECT host, ip, peer_idents, peer_types, cnt FROM rollup_sensor_day"+whereClause(conds))
			continue
		}
		conds, none := windowConds(sw, col, &a)
		if none {
			return nil, nil
		}
		parts = append(parts, "SELECT "+sensorHostSQL+", "+sensorIPSQL+", array_agg(DISTINCT peer_ident), "+
			"array_agg(DISTINCT peer_type), count(*) FROM events"+whereClause(conds)+" GROUP BY 1, 2")
	}
	if len(parts) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, strings.Join(parts, " UNION ALL "), a...)
	if err != nil {
		return nil, fmt.Errorf("cannot query sensors: %w", err)
	}
	// The arrays of one row are distinct and sorted (array_agg(DISTINCT)
	// and the upsert's merge sort them, in byte order, which escText
	// keeps), so a group of one row, the common case, needs no merging:
	// building sets of ~50,000 peer idents per day cost more than the
	// query.
	type acc struct {
		idents, types []string
		n             int64
		rows          int
	}
	groups := map[[2]string]*acc{}
	defer rows.Close()
	for rows.Next() {
		var (
			host, ip      string
			idents, types []string
			n             int64
		)
		// Both ways fill new slices for each row, so they may be kept.
		if rows.FieldDescriptions()[2].Format == pgtype.BinaryFormatCode {
			raw := rows.RawValues()
			var ok1, ok2 bool
			idents, ok1 = textArray(raw[2])
			types, ok2 = textArray(raw[3])
			if !ok1 || !ok2 {
				return nil, errors.New("cannot query sensors: malformed text array")
			}
			if err := rows.Scan(&host, &ip, nil, nil, &n); err != nil {
				return nil, fmt.Errorf("cannot query sensors: %w", err)
			}
		} else if err := rows.Scan(&host, &ip, &idents, &types, &n); err != nil {
			return nil, fmt.Errorf("cannot query sensors: %w", err)
		}
		g := groups[[2]string{host, ip}]
		if g == nil {
			groups[[2]string{host, ip}] = &acc{idents: idents, types: types, n: n, rows: 1}
			continue
		}
		g.idents, g.types = append(g.idents, idents...), append(g.types, types...)
		g.n += n
		g.rows++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query sensors: %w", err)
	}
	if len(groups) == 0 {
		return nil, nil
	}
	out := make([]peba.SensorGroup, 0, len(groups))
	for k, g := range groups {
		out = append(out, peba.SensorGroup{Hostname: unescText(k[0]), TargetIP: unescText(k[1]),
			PeerIdent: sortedSet(g.idents, g.rows > 1), PeerType: sortedSet(g.types, g.rows > 1), Count: g.n})
	}
	slices.SortFunc(out, func(a, b peba.SensorGroup) int {
		return cmp.Or(strings.Compare(a.Hostname, b.Hostname), strings.Compare(a.TargetIP, b.TargetIP))
	})
	return out, nil
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
