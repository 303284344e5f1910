package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"math"
	"strconv"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/peba-go/peba"
)

// rollup describes one rollup table of 0002_rollups.sql: event counts per
// bucket of gran on field, for each of dims (domain and peer type always
// kept, so any Window's filters can be applied).
type rollup struct {
	table string
	field peba.TimeField
	gran  time.Duration
	dims  []peba.Dim
}

// rollups are the tables of 0002_rollups.sql. The dims follow the windows
// the PEBA endpoints ask for (see the migration); other (field, dim) pairs
// are answered from the raw events.
var rollups = []rollup{
	{"rollup_recv_hour", peba.Received, time.Hour,
		[]peba.Dim{peba.DimPeerType, peba.DimSrcCountry, peba.DimDstCountry, peba.DimURL, peba.DimDstPort}},
	{"rollup_recv_day", peba.Received, 24 * time.Hour,
		[]peba.Dim{peba.DimPeerType, peba.DimSrcCountry, peba.DimDstCountry, peba.DimURL, peba.DimDstPort}},
	{"rollup_created_hour", peba.Created, time.Hour,
		[]peba.Dim{peba.DimPeerType, peba.DimSrcLocation, peba.DimDstLocation}},
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
	t         time.Time
	dim       peba.Dim
	community bool
	peerType  string
	k, l      string
	// lat and lon are math.Float64bits of the canonFloat coordinates, so
	// that NaN keys are equal as Go map keys.
	lat, lon uint64
}

// canonFloat gives each coordinate the one value the database also treats
// as that key: +0 for -0, and one NaN for all NaNs. Otherwise two Go map
// keys could be one database key, and the upsert would update a row twice.
func canonFloat(f float64) float64 {
	if math.IsNaN(f) {
		return math.NaN()
	}
	return f + 0
}

// rollupKeyOf returns the key under which e is counted for dim in a table
// with buckets of gran on field.
func rollupKeyOf(e *peba.Event, field peba.TimeField, gran time.Duration, dim peba.Dim) rollupKey {
	t := e.ReceivedTime
	if field == peba.Created {
		t = e.CreateTime
	}
	k := rollupKey{t: dbTime(t).Truncate(gran), dim: dim, community: e.Domain == peba.DomainCommunity}
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
		k.lat, k.lon = math.Float64bits(canonFloat(e.Src.Lat)), math.Float64bits(canonFloat(e.Src.Lon))
	case peba.DimDstLocation:
		k.lat, k.lon = math.Float64bits(canonFloat(e.Dst.Lat)), math.Float64bits(canonFloat(e.Dst.Lon))
	case peba.DimURL:
		k.k = e.URL
	case peba.DimDstPort:
		if e.DstPort != peba.NoPort {
			k.k = strconv.Itoa(int(e.DstPort))
		}
	}
	return k
}

// upsertRollups adds the inserted events to every rollup table, in the
// append transaction (architecture.md "Storage": only events actually
// inserted are counted). The batch is aggregated in Go first, so each table
// gets one upsert of its distinct keys through a query appender (as
// upsertPayloads does, for the same reason).
func (s *Store) upsertRollups(ctx context.Context, inserted []peba.Event) error {
	if len(inserted) == 0 {
		return nil
	}
	for i := range rollups {
		r := &rollups[i]
		counts := map[rollupKey]int64{}
		var order []rollupKey
		for j := range inserted {
			for _, d := range r.dims {
				k := rollupKeyOf(&inserted[j], r.field, r.gran, d)
				if _, ok := counts[k]; !ok {
					order = append(order, k)
				}
				counts[k]++
			}
		}
		// No primary key (see 0002_rollups.sql), so MERGE rather than ON
		// CONFLICT. The join is built on the batch; its range of t prunes
		// the scan of the table to the batch's buckets.
		upsert := "MERGE INTO " + r.table + " r USING appended_data AS a(t, dim, community, peer_type, k, l, lat, lon, cnt)" +
			" ON r.t = a.t AND r.dim = a.dim AND r.community = a.community AND r.peer_type = a.peer_type" +
			" AND r.k = a.k AND r.l = a.l AND r.lat = a.lat AND r.lon = a.lon" +
			" WHEN MATCHED THEN UPDATE SET cnt = r.cnt + a.cnt WHEN NOT MATCHED THEN INSERT *"
		err := s.wconn.Raw(func(dc any) error {
			app, err := duckdbdriver.NewTableAppender(dc.(driver.Conn), upsert, "", "", r.table, nil)
			if err != nil {
				return fmt.Errorf("cannot create rollup appender: %w", err)
			}
			for _, k := range order {
				err := app.AppendRow(k.t, uint8(k.dim), k.community, k.peerType, k.k, k.l,
					math.Float64frombits(k.lat), math.Float64frombits(k.lon), counts[k])
				if err != nil {
					app.Close()
					return fmt.Errorf("cannot append rollup row: %w", err)
				}
			}
			if err := app.CloseWithCancel(ctx); err != nil {
				return fmt.Errorf("cannot upsert %s: %w", r.table, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
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
	return nil
}
