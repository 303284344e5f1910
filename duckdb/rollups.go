package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// rollup describes one rollup table of 0002_rollups.sql and
// 0003_rollups_split.sql: event counts per bucket of gran on field, for
// each of dims (domain and peer type always kept, so any Window's filters
// can be applied).
type rollup struct {
	table string
	field peba.TimeField
	gran  time.Duration
	dims  []peba.Dim
}

// rollups are the uniform rollup tables. The dims follow the windows the
// PEBA endpoints ask for (see the migrations); other (field, dim) pairs
// are answered from the raw events. The day rows of the long tails (URLs,
// ports) have a table of their own, so that month-wide queries of the
// small dims do not read them (0003).
var rollups = []rollup{
	{"rollup_recv_hour", peba.Received, time.Hour, []peba.Dim{peba.DimPeerType, peba.DimSrcCountry, peba.DimDstCountry, peba.DimURL, peba.DimDstPort}},
	{"rollup_recv_day", peba.Received, 24 * time.Hour, []peba.Dim{peba.DimPeerType, peba.DimSrcCountry, peba.DimDstCountry}},
	{"rollup_tail_day", peba.Received, 24 * time.Hour, []peba.Dim{peba.DimURL, peba.DimDstPort}},
	{"rollup_created_hour", peba.Created, time.Hour, []peba.Dim{peba.DimPeerType, peba.DimSrcLocation, peba.DimDstLocation}},
	{"rollup_created_day", peba.Created, 24 * time.Hour, []peba.Dim{peba.DimPeerType}},
}

// typed reports whether the rollup rows of dim keep the peer type, so that
// windows with a PeerType can use them. Only peer types and URLs do (tops
// of URLs are of Webpage events, peba.md §7.3): for the other dims the peer
// type would multiply the rows (measured: source country by hour 2x, by
// type 2x more), and no endpoint filters them by type.
func typed(dim peba.Dim) bool {
	return dim == peba.DimNone || dim == peba.DimPeerType || dim == peba.DimURL
}

// has reports whether r counts dim. DimNone (totals) is served by the
// peer-type rows.
func (r *rollup) has(dim peba.Dim) bool {
	if dim == peba.DimNone {
		dim = peba.DimPeerType
	}
	for _, d := range r.dims {
		if d == dim {
			return true
		}
	}
	return false
}

// rollupKey is one row key of a rollup table, in its column order.
type rollupKey struct {
	t         int64 // bucket start, UTC microseconds
	dim       peba.Dim
	community bool
	peerType  string
	k, l      string
	// lat and lon are math.Float64bits of the canonFloat coordinates, so
	// that NaN keys are equal as Go map keys.
	lat, lon uint64
}

// portTexts is the decimal text of every port, the rollup key of
// DimDstPort, made once: strconv would allocate it for every event.
var portTexts = sync.OnceValue(func() []string {
	out := make([]string, 65536)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
})

// hourOf returns the start of the hour of t in UTC microseconds.
func hourOf(t time.Time) int64 {
	us := dbTime(t).UnixMicro()
	return us - floorMod(us, hourUS)
}

// rollupKeyOf returns the key under which e is counted for dim in the hour
// that starts at hour (UTC microseconds).
func rollupKeyOf(e *peba.Event, hour int64, dim peba.Dim) rollupKey {
	k := rollupKey{t: hour, dim: dim, community: e.Domain == peba.DomainCommunity}
	if typed(dim) {
		k.peerType = e.PeerType
	}
	switch dim {
	case peba.DimPeerType:
		k.k = e.PeerType
	case peba.DimSrcCountry:
		k.k, k.l = e.Src.Country, e.Src.CountryName
	case peba.DimDstCountry:
		k.k, k.l = e.Dst.Country, e.Dst.CountryName
	case peba.DimSrcLocation:
		k.lat, k.lon = math.Float64bits(storerow.CanonFloat(e.Src.Lat)), math.Float64bits(storerow.CanonFloat(e.Src.Lon))
	case peba.DimDstLocation:
		k.lat, k.lon = math.Float64bits(storerow.CanonFloat(e.Dst.Lat)), math.Float64bits(storerow.CanonFloat(e.Dst.Lon))
	case peba.DimURL:
		k.k = e.URL
	case peba.DimDstPort:
		switch p := e.DstPort; {
		case p == peba.NoPort:
		case p >= 0 && p < 65536:
			k.k = portTexts()[p]
		default:
			k.k = strconv.Itoa(int(p))
		}
	}
	return k
}

// floorMod is a mod b rounded toward minus infinity (times before 1970).
func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// rollupCounts are the rows a batch adds to one rollup table, in the order
// first seen (rows of a bucket stay together).
type rollupCounts struct {
	at   map[rollupKey]int // index in keys and counts
	keys []rollupKey
	n    []int64
}

func newRollupCounts(size int) rollupCounts {
	return rollupCounts{at: make(map[rollupKey]int, size)}
}

// add counts n more for k and returns its index: one hash of the key when
// k is known, which it mostly is (hashing was most of the cost of
// aggregating a batch).
func (c *rollupCounts) add(k rollupKey, n int64) int {
	i, ok := c.at[k]
	if !ok {
		i = len(c.keys)
		c.at[k] = i
		c.keys, c.n = append(c.keys, k), append(c.n, 0)
	}
	c.n[i] += n
	return i
}

// rollupRows aggregates a batch into the rows of each table of rollups.
// The events are counted once per field and dim by hour, the finest
// granularity; the coarser tables sum those hour rows, which are far fewer
// than the events.
func rollupRows(inserted []peba.Event) []rollupCounts {
	hourly := map[peba.TimeField]*rollupCounts{}
	dims := map[peba.TimeField][]peba.Dim{}
	for i := range rollups {
		r := &rollups[i]
		for _, d := range r.dims {
			if !slices.Contains(dims[r.field], d) {
				dims[r.field] = append(dims[r.field], d)
			}
		}
	}
	for field, ds := range dims {
		c := newRollupCounts(len(inserted) / 4)
		// Events of one sender's batch mostly share their keys: comparing
		// with the previous event's key per dim is cheaper than hashing.
		last := make([]rollupKey, len(ds))
		lastAt := make([]int, len(ds))
		for j := range inserted {
			e := &inserted[j]
			t := e.ReceivedTime
			if field == peba.Created {
				t = e.CreateTime
			}
			hour := hourOf(t)
			for di, d := range ds {
				k := rollupKeyOf(e, hour, d)
				if j > 0 && k == last[di] {
					c.n[lastAt[di]]++
					continue
				}
				last[di], lastAt[di] = k, c.add(k, 1)
			}
		}
		hourly[field] = &c
	}
	out := make([]rollupCounts, len(rollups))
	for i := range rollups {
		r := &rollups[i]
		h := hourly[r.field]
		c := newRollupCounts(0)
		g := int64(r.gran / time.Microsecond)
		for j, k := range h.keys {
			if !slices.Contains(r.dims, k.dim) {
				continue
			}
			k.t -= floorMod(k.t, g)
			c.add(k, h.n[j])
		}
		out[i] = c
	}
	return out
}

// upsertRollups adds the inserted events to every rollup table and to the
// source index, in the append transaction (architecture.md "Storage": only
// events actually inserted are counted). The batch is aggregated in Go
// first, so each table gets one upsert of its distinct keys through a query
// appender (as upsertPayloads does, for the same reason).
func (s *Store) upsertRollups(ctx context.Context, inserted []peba.Event) error {
	if len(inserted) == 0 {
		return nil
	}
	s.noteMemoAppend(inserted) // memo.go: late events change closed buckets
	if err := s.upsertRollupTables(ctx, inserted); err != nil {
		return err
	}
	if err := s.upsertSensorRollup(ctx, inserted); err != nil {
		return err
	}
	return s.appendSrcIndex(ctx, inserted)
}

// upsertRollupTables adds the inserted events to the tables of rollups.
func (s *Store) upsertRollupTables(ctx context.Context, inserted []peba.Event) error {
	rows := rollupRows(inserted)
	for i := range rollups {
		r, c := &rollups[i], &rows[i]
		// No primary key (see 0002_rollups.sql), so MERGE rather than ON
		// CONFLICT. The join is built on the batch; its range of t prunes
		// the scan of the table to the batch's buckets.
		upsert := "MERGE INTO " + r.table + " r USING appended_data AS a(t, dim, community, peer_type, k, l, lat, lon, cnt)" +
			" ON r.t = a.t AND r.dim = a.dim AND r.community = a.community AND r.peer_type = a.peer_type" +
			" AND r.k = a.k AND r.l = a.l AND r.lat = a.lat AND r.lon = a.lon" +
			" WHEN MATCHED THEN UPDATE SET cnt = r.cnt + a.cnt WHEN NOT MATCHED THEN INSERT *"
		err := s.appendQuery(ctx, upsert, r.table, len(c.keys), func(app *duckdbdriver.Appender, i int) error {
			k := c.keys[i]
			return app.AppendRow(time.UnixMicro(k.t).UTC(), uint8(k.dim), k.community, k.peerType, k.k, k.l,
				math.Float64frombits(k.lat), math.Float64frombits(k.lon), c.n[i])
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// appendQuery runs query (a statement over the appended_data of a query
// appender whose columns are those of table) with n rows added by row(i).
func (s *Store) appendQuery(ctx context.Context, query, table string, n int, row func(*duckdbdriver.Appender, int) error) error {
	return s.wconn.Raw(func(dc any) error {
		app, err := duckdbdriver.NewTableAppender(dc.(driver.Conn), query, "", "", table, nil)
		if err != nil {
			return fmt.Errorf("cannot create appender for %s: %w", table, err)
		}
		for i := range n {
			if err := row(app, i); err != nil {
				app.Close()
				return fmt.Errorf("cannot append a row for %s: %w", table, err)
			}
		}
		if err := app.CloseWithCancel(ctx); err != nil {
			return fmt.Errorf("cannot update %s: %w", table, err)
		}
		return nil
	})
}

// sensorKey is one row key of rollup_sensor_day (0003_rollups_split.sql).
type sensorKey struct {
	t                   int64 // day start, UTC microseconds
	community           bool
	h, ip, ident, ptype string
}

// sensorGroupSQL are the SQL expressions over events of a sensor group's
// hostname and target address (peba.Stats.Sensors): events without a real
// hostname are grouped by target address. storerow.SensorGroup is the same in Go.
const (
	sensorOld     = "hostname IN ('', 'undefined')"
	sensorHostSQL = "CASE WHEN " + sensorOld + " THEN '' ELSE hostname END"
	sensorIPSQL   = "CASE WHEN " + sensorOld + " THEN dst_ip ELSE '' END"
)

// upsertSensorRollup adds the inserted events to rollup_sensor_day.
func (s *Store) upsertSensorRollup(ctx context.Context, inserted []peba.Event) error {
	counts := map[sensorKey]int64{}
	var order []sensorKey
	for i := range inserted {
		e := &inserted[i]
		h, ip := storerow.SensorGroup(e.Hostname, storerow.AddrText(e.DstIP))
		us := dbTime(e.ReceivedTime).UnixMicro()
		k := sensorKey{us - floorMod(us, 24*hourUS), e.Domain == peba.DomainCommunity, h, ip, e.PeerIdent, e.PeerType}
		if _, ok := counts[k]; !ok {
			order = append(order, k)
		}
		counts[k]++
	}
	const upsert = "MERGE INTO rollup_sensor_day r USING appended_data AS a(t, community, h, ip, peer_ident, peer_type, cnt)" +
		" ON r.t = a.t AND r.community = a.community AND r.h = a.h AND r.ip = a.ip" +
		" AND r.peer_ident = a.peer_ident AND r.peer_type = a.peer_type" +
		" WHEN MATCHED THEN UPDATE SET cnt = r.cnt + a.cnt WHEN NOT MATCHED THEN INSERT *"
	return s.appendQuery(ctx, upsert, "rollup_sensor_day", len(order), func(app *duckdbdriver.Appender, i int) error {
		k := order[i]
		return app.AppendRow(time.UnixMicro(k.t).UTC(), k.community, k.h, k.ip, k.ident, k.ptype, counts[k])
	})
}

// rawKeyColumns returns the SQL expressions over events of a rollup row's
// (k, l, lat, lon) for dim, matching rollupKeyOf and 0002_rollups.sql.
func rawKeyColumns(dim peba.Dim) string {
	switch dim {
	case peba.DimPeerType:
		return "peer_type, '', 0, 0"
	case peba.DimSrcCountry:
		return "src_country, src_country_name, 0, 0"
	case peba.DimDstCountry:
		return "dst_country, dst_country_name, 0, 0"
	case peba.DimSrcLocation:
		return "'', '', src_lat + 0, src_lon + 0"
	case peba.DimDstLocation:
		return "'', '', dst_lat + 0, dst_lon + 0"
	case peba.DimURL:
		return "url, '', 0, 0"
	case peba.DimDstPort:
		return "coalesce(CAST(dst_port AS VARCHAR), ''), '', 0, 0"
	}
	panic(fmt.Sprintf("BUG: no rollup key for dim %d", dim))
}

// peerTypeColumn is the SQL expression over events of a rollup row's
// peer_type for dim.
func peerTypeColumn(dim peba.Dim) string {
	if typed(dim) {
		return "peer_type"
	}
	return "''"
}

// retractRollups subtracts from every rollup table the events received
// before t, which the caller deletes in the same transaction, and drops the
// rows that reach zero. Rows are matched by their full key, so the
// created-time table, whose buckets do not follow received time, stays
// exact too.
func (s *Store) retractRollups(ctx context.Context, t time.Time) error {
	s.retractRecent(t) // recent.go
	s.noteMemoAll()    // memo.go
	for i := range rollups {
		r := &rollups[i]
		col, _ := timeColumn(r.field)
		unit := "hour"
		if r.gran == 24*time.Hour {
			unit = "day"
		}
		for _, d := range r.dims {
			q := fmt.Sprintf(`UPDATE %[1]s SET cnt = %[1]s.cnt - d.c FROM (
				SELECT date_trunc('%[2]s', %[3]s) AS t, community, %[6]s, %[4]s, count(*) AS c
				FROM events WHERE received_time < ? GROUP BY ALL) d(t, community, peer_type, k, l, lat, lon, c)
				WHERE %[1]s.dim = %[5]d AND %[1]s.t = d.t AND %[1]s.community = d.community
				AND %[1]s.peer_type = d.peer_type AND %[1]s.k = d.k AND %[1]s.l = d.l
				AND %[1]s.lat = d.lat AND %[1]s.lon = d.lon`,
				r.table, unit, col, rawKeyColumns(d), d, peerTypeColumn(d))
			if _, err := s.wconn.ExecContext(ctx, q, dbTime(t)); err != nil {
				return fmt.Errorf("cannot retract %s: %w", r.table, err)
			}
		}
		if _, err := s.wconn.ExecContext(ctx, "DELETE FROM "+r.table+" WHERE cnt <= 0"); err != nil {
			return fmt.Errorf("cannot retract %s: %w", r.table, err)
		}
	}
	q := `UPDATE rollup_sensor_day SET cnt = rollup_sensor_day.cnt - d.c FROM (
		SELECT date_trunc('day', received_time) AS t, community, ` + sensorHostSQL + `, ` + sensorIPSQL + `,
		peer_ident, peer_type, count(*) AS c
		FROM events WHERE received_time < ? GROUP BY ALL) d(t, community, h, ip, peer_ident, peer_type, c)
		WHERE rollup_sensor_day.t = d.t AND rollup_sensor_day.community = d.community
		AND rollup_sensor_day.h = d.h AND rollup_sensor_day.ip = d.ip
		AND rollup_sensor_day.peer_ident = d.peer_ident AND rollup_sensor_day.peer_type = d.peer_type`
	if _, err := s.wconn.ExecContext(ctx, q, dbTime(t)); err != nil {
		return fmt.Errorf("cannot retract rollup_sensor_day: %w", err)
	}
	if _, err := s.wconn.ExecContext(ctx, "DELETE FROM rollup_sensor_day WHERE cnt <= 0"); err != nil {
		return fmt.Errorf("cannot retract rollup_sensor_day: %w", err)
	}
	return s.retractSrcIndex(ctx, t)
}
