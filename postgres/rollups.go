package postgres

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// The rollups are those of the DuckDB store (duckdb/rollups.go and
// duckdb/migrations/0002_rollups.sql): the same tables, dims and keys, so
// that both stores answer from the same kind of aggregates. The code is a
// port, not shared, because adapters do not import each other.

// rollup describes one rollup table: event counts per bucket of gran on
// field, for each of dims (domain and peer type always kept, so any
// Window's filters can be applied).
type rollup struct {
	table string
	field peba.TimeField
	gran  time.Duration
	dims  []peba.Dim
}

var rollups = []rollup{
	// Totals only (dim 0, no peer type): Count of windows that are not
	// aligned to hours reads whole minutes from here (0002).
	{"rollup_recv_minute", peba.Received, time.Minute, []peba.Dim{peba.DimNone}},
	// Source addresses only by hour (0006): retrieveIPs' two hours; a day
	// holds nearly as many addresses as events.
	{"rollup_recv_hour", peba.Received, time.Hour,
		[]peba.Dim{peba.DimPeerType, peba.DimSrcIP, peba.DimSrcCountry, peba.DimDstCountry, peba.DimURL, peba.DimDstPort}},
	{"rollup_recv_day", peba.Received, 24 * time.Hour,
		[]peba.Dim{peba.DimPeerType, peba.DimSrcCountry, peba.DimDstCountry, peba.DimURL, peba.DimDstPort}},
	{"rollup_created_hour", peba.Created, time.Hour,
		[]peba.Dim{peba.DimPeerType, peba.DimSrcLocation, peba.DimDstLocation}},
	// Peer types by create day, for the month-wide datasets (0002).
	{"rollup_created_day", peba.Created, 24 * time.Hour, []peba.Dim{peba.DimPeerType}},
}

// typed reports whether the rollup rows of dim keep the peer type, so that
// windows with a PeerType can use them (as in the DuckDB store: only peer
// types and URLs do; the totals of dim 0 do not).
func typed(dim peba.Dim) bool {
	return dim == peba.DimPeerType || dim == peba.DimURL
}

// rowDim returns the dim of r's rows that answer dim, and whether r has
// them. Totals (DimNone) are r's dim-0 rows if it has them, else the sum of
// its peer-type rows.
func (r *rollup) rowDim(dim peba.Dim) (peba.Dim, bool) {
	if slices.Contains(r.dims, dim) {
		return dim, true
	}
	if dim == peba.DimNone && slices.Contains(r.dims, peba.DimPeerType) {
		return peba.DimPeerType, true
	}
	return 0, false
}

// serves reports whether r can answer dim for windows with (peerTyped) or
// without a peer type.
func (r *rollup) serves(dim peba.Dim, peerTyped bool) bool {
	rd, ok := r.rowDim(dim)
	return ok && (!peerTyped || typed(rd))
}

// truncUnit is the date_trunc unit of a rollup granularity.
func truncUnit(gran time.Duration) string {
	switch gran {
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	panic(fmt.Sprintf("BUG: no date_trunc unit for %s", gran))
}

// rollupKey is one row key of a rollup table. Strings are escText-escaped,
// as stored.
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

// hash returns the h column of k: the first 16 bytes of SHA-256 over the
// key values. The escaped strings hold no NUL, so NUL separates them
// unambiguously.
func (k *rollupKey) hash() [16]byte {
	h := sha256.New()
	h.Write([]byte(k.peerType))
	h.Write([]byte{0})
	h.Write([]byte(k.k))
	h.Write([]byte{0})
	h.Write([]byte(k.l))
	h.Write([]byte{0})
	var f [16]byte
	binary.BigEndian.PutUint64(f[:8], k.lat)
	binary.BigEndian.PutUint64(f[8:], k.lon)
	h.Write(f[:])
	var out [16]byte
	copy(out[:], h.Sum(nil))
	return out
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
		k.peerType = escText(e.PeerType)
	}
	switch dim {
	case peba.DimPeerType:
		k.k = escText(e.PeerType)
	case peba.DimSrcIP:
		k.k = storerow.AddrText(e.SrcIP) // as stored in events.src_ip
	case peba.DimSrcCountry:
		k.k, k.l = escText(e.Src.Country), escText(e.Src.CountryName)
	case peba.DimDstCountry:
		k.k, k.l = escText(e.Dst.Country), escText(e.Dst.CountryName)
	case peba.DimSrcLocation:
		k.lat, k.lon = math.Float64bits(storerow.CanonFloat(e.Src.Lat)), math.Float64bits(storerow.CanonFloat(e.Src.Lon))
	case peba.DimDstLocation:
		k.lat, k.lon = math.Float64bits(storerow.CanonFloat(e.Dst.Lat)), math.Float64bits(storerow.CanonFloat(e.Dst.Lon))
	case peba.DimURL:
		k.k = escText(e.URL)
	case peba.DimDstPort:
		if e.DstPort != peba.NoPort {
			k.k = strconv.Itoa(int(e.DstPort))
		}
	}
	return k
}

// rollupDelta is a set of count changes to one rollup table.
type rollupDelta map[rollupKey]int64

// rowID identifies the rows (one per shard) of a rollup key.
type rowID struct {
	t         int64 // UnixMicro
	dim       int16
	community bool
	h         [16]byte
}

func (a rowID) compare(b rowID) int {
	if a.t != b.t {
		return cmp.Compare(a.t, b.t)
	}
	if a.dim != b.dim {
		return cmp.Compare(a.dim, b.dim)
	}
	if a.community != b.community {
		if !a.community {
			return -1
		}
		return 1
	}
	return bytes.Compare(a.h[:], b.h[:])
}

// rollupShards is how many shards a key's count may be split over
// (0001_init.sql): more than the appends that run at once across the
// cluster (nodes x pool connections) in a normal setup.
const rollupShards = 16

// shardLockClass is the first key of the two-key advisory locks by which
// appends claim a rollup shard ("SHRD").
const shardLockClass int32 = 0x53485244

// claimShard sets the transaction's rollup shard (setting
// peba.rollup_shard, read by the upserts): the lowest shard whose advisory
// lock no other running append holds, so that concurrent appends (of this
// node or others) never update the same rollup rows and never wait for
// each other's commits. The lock is released at commit. If all shards are
// taken, a random one is used without the lock: correct, only slower.
const claimShard = `SELECT set_config('peba.rollup_shard', coalesce(
	(SELECT s::text FROM generate_series(0, $2 - 1) s WHERE pg_try_advisory_xact_lock($1, s) LIMIT 1),
	floor(random() * $2)::int::text), true)`

// sorted returns the keys of d with their row ids, in row id order: the
// order in which every writer locks rollup rows, so that none deadlocks.
func (d rollupDelta) sorted() ([]rollupKey, []rowID) {
	type kv struct {
		k  rollupKey
		id rowID
	}
	all := make([]kv, 0, len(d))
	for k := range d {
		all = append(all, kv{k, rowID{k.t.UnixMicro(), int16(k.dim), k.community, k.hash()}})
	}
	slices.SortFunc(all, func(a, b kv) int { return a.id.compare(b.id) })
	keys, ids := make([]rollupKey, len(all)), make([]rowID, len(all))
	for i, x := range all {
		keys[i], ids[i] = x.k, x.id
	}
	return keys, ids
}

// queueAdd queues on b the addition of d's counts to the rows of the
// transaction's shard (claimShard must be queued before).
func (d rollupDelta) queueAdd(b *pgx.Batch, table string) {
	if len(d) == 0 {
		return
	}
	keys, ids := d.sorted()
	n := len(keys)
	var (
		ts     = make([]time.Time, n)
		dims   = make([]int16, n)
		comms  = make([]bool, n)
		hs     = make([][16]byte, n)
		ptypes = make([]string, n)
		ks, ls = make([]string, n), make([]string, n)
		lats   = make([]float64, n)
		lons   = make([]float64, n)
		cnts   = make([]int64, n)
	)
	for i, k := range keys {
		ts[i], dims[i], comms[i], hs[i] = k.t, int16(k.dim), k.community, ids[i].h
		ptypes[i], ks[i], ls[i] = k.peerType, k.k, k.l
		lats[i], lons[i] = math.Float64frombits(k.lat), math.Float64frombits(k.lon)
		cnts[i] = d[k]
	}
	b.Queue(`INSERT INTO `+table+` (t, dim, community, h, shard, peer_type, k, l, lat, lon, cnt)
		SELECT t, dim, community, h, current_setting('peba.rollup_shard')::smallint, peer_type, k, l, lat, lon, cnt
		FROM unnest($1::timestamp[], $2::smallint[], $3::boolean[], $4::uuid[], $5::text[], $6::text[], $7::text[],
			$8::float8[], $9::float8[], $10::bigint[]) AS u(t, dim, community, h, peer_type, k, l, lat, lon, cnt)
		ON CONFLICT (t, dim, community, h, shard) DO UPDATE SET cnt = `+table+`.cnt + excluded.cnt`,
		ts, dims, comms, hs, ptypes, ks, ls, lats, lons, cnts)
}

// queueRollups queues the rollup updates for the inserted events, in the
// append transaction (only events actually inserted are counted). The
// batch is aggregated in Go first, so each key is touched once per call.
func queueRollups(b *pgx.Batch, inserted []peba.Event) {
	b.Queue(claimShard, shardLockClass, int32(rollupShards))
	for i := range rollups {
		r := &rollups[i]
		d := rollupDelta{}
		for j := range inserted {
			for _, dim := range r.dims {
				d[rollupKeyOf(&inserted[j], r.field, r.gran, dim)]++
			}
		}
		d.queueAdd(b, r.table)
	}
	queueSensors(b, inserted)
}

// fold subtracts d's (negative) counts from table: it locks every shard row
// of d's keys (in row id order), writes each key's new total into its first
// row and 0 into the others, or deletes all of them when the total is zero. It
// only changes rows it has locked, so it never waits for an append while
// holding a row that append needs.
func (d rollupDelta) fold(ctx context.Context, tx pgx.Tx, table string) error {
	if len(d) == 0 {
		return nil
	}
	keys, ids := d.sorted()
	n := len(keys)
	ts, dims, comms, hs := make([]time.Time, n), make([]int16, n), make([]bool, n), make([][16]byte, n)
	delta := make(map[rowID]int64, n)
	for i, k := range keys {
		ts[i], dims[i], comms[i], hs[i] = k.t, int16(k.dim), k.community, ids[i].h
		delta[ids[i]] = d[k]
	}
	rows, err := tx.Query(ctx, `SELECT t, dim, community, h, shard, cnt FROM `+table+`
		WHERE (t, dim, community, h) IN (SELECT * FROM unnest($1::timestamp[], $2::smallint[], $3::boolean[], $4::uuid[]))
		ORDER BY t, dim, community, h, shard FOR UPDATE`, ts, dims, comms, hs)
	if err != nil {
		return err
	}
	type shardRow struct {
		id    rowID
		shard int16
	}
	var (
		locked []shardRow
		total  = map[rowID]int64{}
		t      time.Time
		r      shardRow
		c      int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&t, &r.id.dim, &r.id.community, &r.id.h, &r.shard, &c}, func() error {
		r.id.t = t.UnixMicro()
		locked = append(locked, r)
		total[r.id] += c
		return nil
	}); err != nil {
		return err
	}
	var upd, del struct {
		ts    []time.Time
		dims  []int16
		comms []bool
		hs    [][16]byte
		sh    []int16
		cnts  []int64
	}
	kept := map[rowID]bool{}
	for _, r := range locked {
		n := total[r.id] + delta[r.id]
		x := &del
		if n > 0 {
			// The other shards' rows stay, with count 0, so that the
			// peer-type rows keep recording which shards wrote a bucket
			// (topBounded relies on it).
			x = &upd
			if kept[r.id] {
				n = 0
			}
			kept[r.id] = true
			x.cnts = append(x.cnts, n)
		}
		x.ts = append(x.ts, time.UnixMicro(r.id.t).UTC())
		x.dims, x.comms, x.hs, x.sh = append(x.dims, r.id.dim), append(x.comms, r.id.community), append(x.hs, r.id.h), append(x.sh, r.shard)
	}
	b := &pgx.Batch{}
	if len(upd.ts) > 0 {
		b.Queue(`UPDATE `+table+` r SET cnt = u.cnt FROM unnest($1::timestamp[], $2::smallint[], $3::boolean[], $4::uuid[],
			$5::smallint[], $6::bigint[]) AS u(t, dim, community, h, shard, cnt)
			WHERE r.t = u.t AND r.dim = u.dim AND r.community = u.community AND r.h = u.h AND r.shard = u.shard`,
			upd.ts, upd.dims, upd.comms, upd.hs, upd.sh, upd.cnts)
	}
	if len(del.ts) > 0 {
		b.Queue(`DELETE FROM `+table+` WHERE (t, dim, community, h, shard) IN
			(SELECT * FROM unnest($1::timestamp[], $2::smallint[], $3::boolean[], $4::uuid[], $5::smallint[]))`,
			del.ts, del.dims, del.comms, del.hs, del.sh)
	}
	return tx.SendBatch(ctx, b).Close()
}

// rawKeyColumns returns the SQL expressions over events of a rollup row's
// (peer_type, k, l, lat, lon) for dim, matching rollupKeyOf.
func rawKeyColumns(dim peba.Dim) string {
	pt := "''"
	if typed(dim) {
		pt = "peer_type"
	}
	switch dim {
	case peba.DimNone:
		return pt + ", '', '', 0::float8, 0::float8"
	case peba.DimPeerType:
		return pt + ", peer_type, '', 0::float8, 0::float8"
	case peba.DimSrcIP:
		return pt + ", src_ip, '', 0::float8, 0::float8"
	case peba.DimSrcCountry:
		return pt + ", src_country, src_country_name, 0::float8, 0::float8"
	case peba.DimDstCountry:
		return pt + ", dst_country, dst_country_name, 0::float8, 0::float8"
	case peba.DimSrcLocation:
		return pt + ", '', '', src_lat + 0, src_lon + 0"
	case peba.DimDstLocation:
		return pt + ", '', '', dst_lat + 0, dst_lon + 0"
	case peba.DimURL:
		return pt + ", url, '', 0::float8, 0::float8"
	case peba.DimDstPort:
		return pt + ", coalesce(dst_port::text, ''), '', 0::float8, 0::float8"
	}
	panic(fmt.Sprintf("BUG: no rollup key for dim %d", dim))
}

// retraction returns, per rollup table (index into rollups), the counts to
// subtract for the events received before cut. For the received-time
// tables only the events from dayStart (cut's day) on are aggregated: the
// rows of earlier buckets are deleted whole (applyRetraction). The
// created-time table needs every deleted event, since create and receive
// days differ.
func retraction(ctx context.Context, tx pgx.Tx, cut, dayStart time.Time) ([]rollupDelta, error) {
	out := make([]rollupDelta, len(rollups))
	for i := range rollups {
		r := &rollups[i]
		out[i] = rollupDelta{}
		col, unit := "received_time", truncUnit(r.gran)
		if r.field == peba.Created {
			col = "create_time"
		}
		var a args
		cond := "received_time < " + a.add(cut)
		if r.field == peba.Received {
			if !dayStart.Before(cut) {
				continue
			}
			cond += " AND received_time >= " + a.add(dayStart)
		}
		for _, dim := range r.dims {
			rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT date_trunc('%s', %s), community, %s, count(*)
				FROM events WHERE %s GROUP BY 1, 2, 3, 4, 5, 6, 7`, unit, col, rawKeyColumns(dim), cond), a...)
			if err != nil {
				return nil, fmt.Errorf("cannot aggregate %s retraction: %w", r.table, err)
			}
			var (
				k        = rollupKey{dim: dim}
				lat, lon float64
				n        int64
			)
			_, err = pgx.ForEachRow(rows, []any{&k.t, &k.community, &k.peerType, &k.k, &k.l, &lat, &lon, &n}, func() error {
				k.lat, k.lon = math.Float64bits(storerow.CanonFloat(lat)), math.Float64bits(storerow.CanonFloat(lon))
				out[i][k] -= n
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("cannot aggregate %s retraction: %w", r.table, err)
			}
		}
	}
	return out, nil
}

// applyRetraction deletes the received-time rollup rows of buckets before
// dayStart (their events were all in the emptied partitions, which no
// append can write to meanwhile) and folds d into the tables. The sensor
// rollup loses its rows before dayStart too; its rows of dayStart are
// recomputed if recomputeDay (the boundary partition was locked and
// partly deleted).
func applyRetraction(ctx context.Context, tx pgx.Tx, d []rollupDelta, dayStart time.Time, recomputeDay bool) error {
	if _, err := tx.Exec(ctx, "DELETE FROM rollup_sensor_day WHERE t < $1", dayStart); err != nil {
		return fmt.Errorf("cannot retract rollup_sensor_day: %w", err)
	}
	if recomputeDay {
		if err := recomputeSensorDay(ctx, tx, dayStart); err != nil {
			return fmt.Errorf("cannot retract rollup_sensor_day: %w", err)
		}
	}
	for i := range rollups {
		if rollups[i].field == peba.Received {
			if _, err := tx.Exec(ctx, "DELETE FROM "+rollups[i].table+" WHERE t < $1", dayStart); err != nil {
				return fmt.Errorf("cannot retract %s: %w", rollups[i].table, err)
			}
		}
		if err := d[i].fold(ctx, tx, rollups[i].table); err != nil {
			return fmt.Errorf("cannot retract %s: %w", rollups[i].table, err)
		}
	}
	return nil
}
