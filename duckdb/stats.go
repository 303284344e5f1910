package duckdb

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

var _ peba.Stats = (*Store)(nil)

// The Stats methods below query the raw events table. Rollup tables will
// replace some of them; each method's doc comment states the semantics those
// must reproduce. All reads go through the pool (s.db), never the writer
// connection, so statistics never wait for an append.

// timeColumn returns the events column that f filters on (peba.md §3: most
// endpoints use recievedTime, a few createTime).
func timeColumn(f peba.TimeField) (string, error) {
	switch f {
	case peba.Received:
		return "received_time", nil
	case peba.Created:
		return "create_time", nil
	}
	return "", peba.Errorf(peba.EINVALID, "invalid time field %d", f)
}

// windowWhere returns the WHERE clause (with leading " WHERE ") and arguments
// selecting w's events. none is true when w selects no event at all because
// it names no known domain: an empty domain set means "none", never "all",
// so that a caller that forgot the caller's entitlements shows nothing.
func windowWhere(w peba.Window) (clause string, args []any, none bool, err error) {
	col, err := timeColumn(w.Field)
	if err != nil {
		return "", nil, false, err
	}
	var community, private bool
	for _, d := range w.Domains {
		community = community || d == peba.DomainCommunity
		private = private || d == peba.DomainPrivate
	}
	var conds []string
	switch {
	case community && private:
	case community:
		conds = append(conds, "community")
	case private:
		conds = append(conds, "NOT community")
	default:
		return "", nil, true, nil
	}
	// [From, To), bound as UTC microseconds like the stored values (peba.md
	// §2.7: all times are UTC).
	if !w.From.IsZero() {
		conds, args = append(conds, col+" >= ?"), append(args, dbTime(w.From))
	}
	if !w.To.IsZero() {
		conds, args = append(conds, col+" < ?"), append(args, dbTime(w.To))
	}
	if w.PeerType != "" {
		conds, args = append(conds, "peer_type = ?"), append(args, w.PeerType)
	}
	if len(conds) == 0 {
		return "", nil, false, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, false, nil
}

// dimKey returns the SQL expression of a text-keyed dim's Bucket.Key and, for
// the country dims, of its label. Location dims are not text-keyed (see
// locColumns).
func dimKey(d peba.Dim) (key, label string, ok bool) {
	switch d {
	case peba.DimPeerType:
		return "peer_type", "", true
	case peba.DimSrcIP:
		return "src_ip", "", true
	case peba.DimSrcCountry:
		return "src_country", "src_country_name", true
	case peba.DimDstCountry:
		return "dst_country", "dst_country_name", true
	case peba.DimURL:
		return "url", "", true
	case peba.DimDstPort:
		// NULL is peba.NoPort, whose key is "".
		return "coalesce(CAST(dst_port AS VARCHAR), '')", "", true
	}
	return "", "", false
}

// locColumns returns the latitude and longitude columns of a location dim.
// Their keys are formatted in Go, because DuckDB's DOUBLE-to-text cast is not
// Go's shortest 'g' form that peba.DimSrcLocation promises.
func locColumns(d peba.Dim) (lat, lon string, ok bool) {
	switch d {
	case peba.DimSrcLocation:
		return "src_lat", "src_lon", true
	case peba.DimDstLocation:
		return "dst_lat", "dst_lon", true
	}
	return "", "", false
}

// locKey formats a location key. Adding 0 turns -0 into 0, so that both
// zeros (equal in SQL) give one key.
func locKey(lat, lon float64) string {
	return strconv.FormatFloat(lat+0, 'g', -1, 64) + "," + strconv.FormatFloat(lon+0, 'g', -1, 64)
}

// Count implements peba.Stats: the number of events in w.
func (s *Store) Count(ctx context.Context, w peba.Window) (int64, error) {
	where, args, none, err := windowWhere(w)
	if err != nil || none {
		return 0, err
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM events"+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("cannot count events: %w", err)
	}
	return n, nil
}

// Top implements peba.Stats. Keys are ordered by count descending, then by
// key ascending in byte order (so DimDstPort "2222" sorts before "445").
// For the country dims, Label is the country name that occurs most often
// with the code in w, ties broken by the smaller name (PEBA took the name
// of one top hit, §3.13; a code can carry several names across GeoIP
// database versions). DimNone is EINVALID.
func (s *Store) Top(ctx context.Context, w peba.Window, dim peba.Dim, limit int) ([]peba.Bucket, error) {
	where, args, none, err := windowWhere(w)
	if err != nil || none {
		return nil, err
	}
	if lat, lon, ok := locColumns(dim); ok {
		return s.topLocations(ctx, where, args, lat, lon, limit)
	}
	key, label, ok := dimKey(dim)
	if !ok {
		return nil, peba.Errorf(peba.EINVALID, "invalid dimension %d", dim)
	}
	var q string
	if label == "" {
		q = "SELECT " + key + " AS k, '' AS l, count(*) AS n FROM events" + where +
			" GROUP BY k ORDER BY n DESC, k"
	} else {
		q = "SELECT k, first(l ORDER BY c DESC, l) AS l, sum(c)::BIGINT AS n FROM (SELECT " +
			key + " AS k, " + label + " AS l, count(*) AS c FROM events" + where +
			" GROUP BY k, l) GROUP BY k ORDER BY n DESC, k"
	}
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query top values: %w", err)
	}
	defer rows.Close()
	var out []peba.Bucket
	for rows.Next() {
		var b peba.Bucket
		if err := rows.Scan(&b.Key, &b.Label, &b.Count); err != nil {
			return nil, fmt.Errorf("cannot scan top values: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query top values: %w", err)
	}
	return out, nil
}

// topLocations groups by coordinates in SQL and orders by the formatted key
// in Go. The number of distinct coordinates is bounded by the GeoIP
// database's locations, not by the number of events.
func (s *Store) topLocations(ctx context.Context, where string, args []any, lat, lon string, limit int) ([]peba.Bucket, error) {
	rows, err := s.db.QueryContext(ctx,
		"SELECT "+lat+", "+lon+", count(*) FROM events"+where+" GROUP BY ALL", args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query top locations: %w", err)
	}
	defer rows.Close()
	counts := map[string]int64{}
	for rows.Next() {
		var la, lo float64
		var n int64
		if err := rows.Scan(&la, &lo, &n); err != nil {
			return nil, fmt.Errorf("cannot scan top locations: %w", err)
		}
		counts[locKey(la, lo)] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query top locations: %w", err)
	}
	out := make([]peba.Bucket, 0, len(counts))
	for k, n := range counts {
		out = append(out, peba.Bucket{Key: k, Count: n})
	}
	slices.SortFunc(out, func(a, b peba.Bucket) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// bucketExprs maps the supported Series widths to the SQL bucket start of a
// time column %[1]s. All are aligned to UTC midnight, so a 6h bucket is day
// start + floor(hour/6)*6h, never an epoch-aligned interval.
var bucketExprs = map[time.Duration]string{
	time.Hour:      "date_trunc('hour', %[1]s)",
	6 * time.Hour:  "date_trunc('day', %[1]s) + to_hours((hour(%[1]s) // 6) * 6)",
	24 * time.Hour: "date_trunc('day', %[1]s)",
}

// Series implements peba.Stats. Points are ordered by Start, then Key (byte
// order). A dim other than DimNone with no keys gives no points: "only those
// keys" of an empty set. Widths other than 1h, 6h and 24h are EINVALID.
// Keys that no event has simply produce no points.
func (s *Store) Series(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, keys []string) ([]peba.Point, error) {
	col, err := timeColumn(w.Field)
	if err != nil {
		return nil, err
	}
	bexpr, ok := bucketExprs[width]
	if !ok {
		return nil, peba.Errorf(peba.EINVALID, "invalid series width %s", width)
	}
	bucket := fmt.Sprintf(bexpr, col)
	where, args, none, err := windowWhere(w)
	if err != nil || none {
		return nil, err
	}
	if dim != peba.DimNone && len(keys) == 0 {
		return nil, nil
	}
	and := " AND "
	if where == "" {
		and = " WHERE "
	}
	if lat, lon, ok := locColumns(dim); ok {
		return s.seriesLocations(ctx, bucket, where, and, args, lat, lon, keys)
	}
	keyExpr := "''"
	if dim != peba.DimNone {
		if keyExpr, _, ok = dimKey(dim); !ok {
			return nil, peba.Errorf(peba.EINVALID, "invalid dimension %d", dim)
		}
		where += and + keyExpr + " IN (SELECT unnest(?::VARCHAR[]))"
		args = append(args, keys)
	}
	q := "SELECT " + bucket + " AS b, " + keyExpr + " AS k, count(*) FROM events" + where +
		" GROUP BY b, k ORDER BY b, k"
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query series: %w", err)
	}
	defer rows.Close()
	var out []peba.Point
	for rows.Next() {
		var p peba.Point
		if err := rows.Scan(&p.Start, &p.Key, &p.Count); err != nil {
			return nil, fmt.Errorf("cannot scan series: %w", err)
		}
		p.Start = p.Start.UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query series: %w", err)
	}
	return out, nil
}

// seriesLocations narrows the scan in SQL to rows whose latitude and
// longitude each occur in some key (a superset of the wanted pairs), then
// keeps the exact keys in Go, where they are formatted as Top formats them.
func (s *Store) seriesLocations(ctx context.Context, bucket, where, and string, args []any, lat, lon string, keys []string) ([]peba.Point, error) {
	want := map[string]bool{}
	var lats, lons []float64
	for _, k := range keys {
		a, b, ok := strings.Cut(k, ",")
		la, err1 := strconv.ParseFloat(a, 64)
		lo, err2 := strconv.ParseFloat(b, 64)
		if !ok || err1 != nil || err2 != nil {
			continue // cannot match any stored location
		}
		want[k] = true
		lats, lons = append(lats, la), append(lons, lo)
	}
	if len(want) == 0 {
		return nil, nil
	}
	q := "SELECT " + bucket + " AS b, " + lat + ", " + lon + ", count(*) FROM events" + where +
		and + "list_contains(?::DOUBLE[], " + lat + ") AND list_contains(?::DOUBLE[], " + lon + ")" +
		" GROUP BY ALL"
	rows, err := s.db.QueryContext(ctx, q, append(args, lats, lons)...)
	if err != nil {
		return nil, fmt.Errorf("cannot query location series: %w", err)
	}
	defer rows.Close()
	type pk struct {
		start time.Time
		key   string
	}
	counts := map[pk]int64{}
	for rows.Next() {
		var (
			start  time.Time
			la, lo float64
			n      int64
		)
		if err := rows.Scan(&start, &la, &lo, &n); err != nil {
			return nil, fmt.Errorf("cannot scan location series: %w", err)
		}
		if k := locKey(la, lo); want[k] {
			counts[pk{start.UTC(), k}] += n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query location series: %w", err)
	}
	out := make([]peba.Point, 0, len(counts))
	for k, n := range counts {
		out = append(out, peba.Point{Start: k.start, Key: k.key, Count: n})
	}
	slices.SortFunc(out, func(a, b peba.Point) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, nil
}

// Latest implements peba.Stats. Ties on the time field are ordered by id, as
// FindEvents does, so results are stable. limit <= 0 gives no events (an
// unbounded "latest" would read the whole window). An IPv4-mapped src matches
// the IPv4 address, because decoders store sources unmapped (peba.Event).
func (s *Store) Latest(ctx context.Context, w peba.Window, src netip.Addr, limit int) ([]peba.Event, error) {
	col, err := timeColumn(w.Field)
	if err != nil {
		return nil, err
	}
	where, args, none, err := windowWhere(w)
	if err != nil || none || limit <= 0 {
		return nil, err
	}
	if src.IsValid() {
		if where == "" {
			where = " WHERE "
		} else {
			where += " AND "
		}
		where += "src_ip = ?"
		args = append(args, src.Unmap().String())
	}
	q := "SELECT " + eventColumns + " FROM events" + where + " ORDER BY " + col + " DESC, id LIMIT ?"
	out, err := s.queryEvents(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("cannot query latest events: %w", err)
	}
	return out, nil
}

// Sensors implements peba.Stats (peba.md §7.1). Events whose hostname is
// "undefined" (PEBA's default, older T-Pots) or empty are grouped by target
// address; PEBA grouped "" under hostname "" instead, which SensorGroup
// cannot express. PeerIdent and PeerType are distinct and sorted in byte
// order, and not capped at 10 as PEBA's sub-aggregations were. Groups are
// ordered by Hostname then TargetIP, so the address groups come first.
func (s *Store) Sensors(ctx context.Context, w peba.Window) ([]peba.SensorGroup, error) {
	where, args, none, err := windowWhere(w)
	if err != nil || none {
		return nil, err
	}
	const old = "hostname IN ('', 'undefined')"
	q := "SELECT CASE WHEN " + old + " THEN '' ELSE hostname END AS h, " +
		"CASE WHEN " + old + " THEN dst_ip ELSE '' END AS ip, " +
		"list_distinct(list(peer_ident)), list_distinct(list(peer_type)), count(*) " +
		"FROM events" + where + " GROUP BY h, ip ORDER BY h, ip"
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query sensors: %w", err)
	}
	defer rows.Close()
	var out []peba.SensorGroup
	for rows.Next() {
		var (
			g            peba.SensorGroup
			idents, typs []any
		)
		if err := rows.Scan(&g.Hostname, &g.TargetIP, &idents, &typs, &g.Count); err != nil {
			return nil, fmt.Errorf("cannot scan sensors: %w", err)
		}
		if g.PeerIdent, err = sortedStrings(idents); err != nil {
			return nil, err
		}
		if g.PeerType, err = sortedStrings(typs); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query sensors: %w", err)
	}
	return out, nil
}

// sortedStrings converts a scanned VARCHAR list and sorts it in byte order
// (DuckDB's list order is unspecified).
func sortedStrings(l []any) ([]string, error) {
	out := make([]string, len(l))
	for i, v := range l {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("cannot scan sensors: list element is %T, not string", v)
		}
		out[i] = s
	}
	slices.Sort(out)
	return out, nil
}
