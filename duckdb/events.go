package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unsafe"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// eventColumns is the column order of the events table, of rowValues and of
// scanEvent.
const eventColumns = `id, community, submitter, origin, received_time, create_time,
	peer_ident, peer_type, sensor_uuid, hostname, external_ip, internal_ip,
	src_ip, src_port, dst_ip, dst_port, transport,
	url, vuln_id, username, password, login, client_version, session_start, session_end, raw_http,
	payload_md5, additional_data, fields, requests,
	src_country, src_country_name, src_asn, src_lat, src_lon,
	dst_country, dst_country_name, dst_asn, dst_lat, dst_lon`

// dbTime converts t to what a TIMESTAMP column stores: UTC, microseconds.
// DuckDB's TIMESTAMP has no zone; the driver binds time.Time by UnixMicro,
// which truncates toward zero for pre-1970 times, so truncate here first to
// make the stored value and every comparison bound agree.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// AppendEvents implements peba.Store. See the interface for the contract.
//
// One transaction on the writer connection: drop IDs repeated in the call,
// look up which IDs are already stored, append the new rows with the DuckDB
// Appender, update payload records and rollups, commit. De-duplication uses no
// index: an in-memory filter rules out most new IDs (idfilter.go), and the
// rest are looked up in the table. An event's ID is derived from content that
// includes its create time (peba.md §4.11; imported documents keep their _id
// and createTime), so a stored duplicate lies in [min, max] of the looked-up
// create times and zone maps prune every other row group.
func (s *Store) AppendEvents(ctx context.Context, events []peba.Event) (peba.AppendResult, error) {
	var res peba.AppendResult
	for i := range events {
		if err := validateEvent(&events[i]); err != nil {
			return res, peba.Errorf(peba.EINVALID, "event %d: %s", i, err)
		}
	}
	seen := make(map[string]bool, len(events))
	candidates := make([]int, 0, len(events))
	for i := range events {
		e := &events[i]
		if seen[e.ID] {
			res.Duplicates++
			continue
		}
		seen[e.ID] = true
		candidates = append(candidates, i)
	}
	if len(candidates) == 0 {
		return res, nil
	}

	if err := s.lockWriter(); err != nil {
		return peba.AppendResult{}, err
	}
	defer s.mu.Unlock()
	err := s.inTx(ctx, func() error {
		stored, err := s.storedIDs(ctx, events, candidates)
		if err != nil {
			return err
		}
		// Usually every event is new: Inserted is then events itself, not
		// a copy (600 bytes an event, 6% of all ingest allocated).
		allNew := len(stored) == 0 && len(candidates) == len(events)
		var inserted []peba.Event
		if !allNew {
			inserted = make([]peba.Event, 0, len(candidates)-len(stored))
		}
		err = s.wconn.Raw(func(dc any) error {
			app, err := duckdbdriver.NewAppenderFromConn(dc.(driver.Conn), "", "events")
			if err != nil {
				return fmt.Errorf("cannot create appender: %w", err)
			}
			// Each row is encoded into the same row and buffer just
			// before the Appender copies it: no memory per event but
			// the boxing of its values (encoding them all first, in an
			// array of their own, kept ~15 MB more live heap at full
			// ingest; docs/performance.md, session 7).
			row := make([]driver.Value, 0, numEventColumns)
			var js []byte
			for _, i := range candidates {
				if stored[events[i].ID] {
					continue
				}
				var err error
				if row, err = appendRow(row[:0], &js, &events[i]); err != nil {
					app.Close()
					return peba.Errorf(peba.EINVALID, "event %d: %s", i, err)
				}
				if err := app.AppendRow(row...); err != nil {
					app.Close()
					return fmt.Errorf("cannot append event %d: %w", i, err)
				}
				js = js[:0] // the Appender has copied the row's views of js
				if !allNew {
					inserted = append(inserted, events[i])
				}
			}
			if err := app.CloseWithCancel(ctx); err != nil {
				return fmt.Errorf("cannot flush appender: %w", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if allNew {
			inserted = events
		}
		if err := s.upsertPayloads(ctx, inserted); err != nil {
			return err
		}
		if err := s.maintainRollups(ctx, inserted); err != nil {
			return err
		}
		res.Inserted = inserted
		res.Duplicates += len(stored)
		return nil
	})
	if err != nil {
		return peba.AppendResult{}, fmt.Errorf("cannot append events: %w", err)
	}
	s.idsMu.Lock()
	s.ids.add(res.Inserted) // committed: the de-duplication filter (idfilter.go)
	s.idsMu.Unlock()
	s.rememberRecent(res.Inserted) // committed: the cache of the newest events (recent.go)
	return res, nil
}

// maintainRollups updates the pre-aggregated rollup tables (architecture.md,
// "Storage"; rollups.go), in the append transaction and counting only the
// inserted events.
func (s *Store) maintainRollups(ctx context.Context, inserted []peba.Event) error {
	if err := s.upsertRollups(ctx, inserted); err != nil {
		return err
	}
	return s.maintainTops(ctx, inserted) // tops_summary.go
}

// storedIDs returns which candidate IDs are already in events. Only the
// IDs that the de-duplication filter (idfilter.go) does not rule out are
// looked up, in the range of their create times.
func (s *Store) storedIDs(ctx context.Context, events []peba.Event, candidates []int) (map[string]bool, error) {
	s.idsMu.Lock()
	err := s.ids.load(ctx, s.wconn)
	s.idsMu.Unlock()
	if err != nil {
		return nil, err
	}
	var ids []string
	var lo, hi time.Time
	for _, i := range candidates {
		e := &events[i]
		if !s.ids.mayBeStored(e.ID, e.CreateTime) {
			continue
		}
		ids = append(ids, e.ID)
		ct := dbTime(e.CreateTime)
		if len(ids) == 1 || ct.Before(lo) {
			lo = ct
		}
		if len(ids) == 1 || ct.After(hi) {
			hi = ct
		}
	}
	stored := map[string]bool{}
	if len(ids) == 0 {
		return stored, nil
	}
	rows, err := s.wconn.QueryContext(ctx,
		`SELECT id FROM events WHERE create_time BETWEEN ? AND ? AND id IN (SELECT unnest(?::VARCHAR[]))`,
		lo, hi, ids)
	if err != nil {
		return nil, fmt.Errorf("cannot look up stored ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("cannot look up stored ids: %w", err)
		}
		stored[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot look up stored ids: %w", err)
	}
	return stored, nil
}

// validateEvent is the domain's check of what a store can keep faithfully
// (DuckDB VARCHAR must be valid UTF-8; the domain is a boolean column).
func validateEvent(e *peba.Event) error { return peba.ValidateEvent(e) }

// numEventColumns is the number of eventColumns.
var numEventColumns = strings.Count(eventColumns, ",") + 1

// rowValues returns the Appender row for e, in eventColumns order.
func rowValues(e *peba.Event) ([]driver.Value, error) {
	return appendRow(make([]driver.Value, 0, numEventColumns), new([]byte), e)
}

// appendRow is rowValues into dst, with the attribute lists' JSON appended
// to *js. Strings go as []byte views (text, and views of *js): DuckDB
// copies them into its vectors during AppendRow, and the driver would
// first copy each string into a new []byte. The views of *js are valid
// until *js is written again.
func appendRow(dst []driver.Value, js *[]byte, e *peba.Event) ([]driver.Value, error) {
	var attrs [3][]byte
	for k, as := range [3][]peba.Attr{e.AdditionalData, e.Fields, e.Requests} {
		start := len(*js)
		b, err := appendAttrs(*js, as)
		if err != nil {
			return nil, err
		}
		*js, attrs[k] = b, b[start:len(b):len(b)]
	}
	ad, fs, rq := attrs[0], attrs[1], attrs[2]
	return append(dst,
		text(e.ID), e.Domain == peba.DomainCommunity, text(e.Submitter), text(e.Origin),
		dbTime(e.ReceivedTime), dbTime(e.CreateTime),
		text(e.PeerIdent), text(e.PeerType), text(e.SensorUUID), text(e.Hostname), text(e.ExternalIP), text(e.InternalIP),
		text(storerow.AddrText(e.SrcIP)), portValue(e.SrcPort), text(storerow.AddrText(e.DstIP)), portValue(e.DstPort), text(e.Transport),
		text(e.URL), text(e.VulnID), text(e.Username), text(e.Password), text(e.Login), text(e.ClientVersion),
		text(e.SessionStart), text(e.SessionEnd), text(e.RawHTTP),
		text(e.PayloadMD5), ad, fs, rq,
		text(e.Src.Country), text(e.Src.CountryName), text(e.Src.ASN), e.Src.Lat, e.Src.Lon,
		text(e.Dst.Country), text(e.Dst.CountryName), text(e.Dst.ASN), e.Dst.Lat, e.Dst.Lon,
	), nil
}

// text is s for a VARCHAR column of the Appender: a read-only []byte view
// of s, which the driver hands to DuckDB as it is (a string it would copy
// into a new []byte first). DuckDB copies the bytes into its vector during
// AppendRow and never writes them. The empty string stays a string: its
// view would be nil, which the driver takes as NULL.
func text(s string) driver.Value {
	if s == "" {
		return s
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

func portValue(p int32) driver.Value {
	if p == peba.NoPort {
		return nil
	}
	return p
}

// scanEvent reads one row selected with eventColumns.
func scanEvent(rows *sql.Rows) (peba.Event, error) {
	var (
		e                   peba.Event
		community           bool
		srcIP, dstIP        string
		srcPort, dstPort    sql.NullInt32
		ad, fields, reqs    string
		received, createdAt time.Time
	)
	err := rows.Scan(&e.ID, &community, &e.Submitter, &e.Origin, &received, &createdAt,
		&e.PeerIdent, &e.PeerType, &e.SensorUUID, &e.Hostname, &e.ExternalIP, &e.InternalIP,
		&srcIP, &srcPort, &dstIP, &dstPort, &e.Transport,
		&e.URL, &e.VulnID, &e.Username, &e.Password, &e.Login, &e.ClientVersion, &e.SessionStart, &e.SessionEnd, &e.RawHTTP,
		&e.PayloadMD5, &ad, &fields, &reqs,
		&e.Src.Country, &e.Src.CountryName, &e.Src.ASN, &e.Src.Lat, &e.Src.Lon,
		&e.Dst.Country, &e.Dst.CountryName, &e.Dst.ASN, &e.Dst.Lat, &e.Dst.Lon)
	if err != nil {
		return e, fmt.Errorf("cannot scan event: %w", err)
	}
	setRowBasics(&e, community, received, createdAt)
	if e.SrcIP, err = storerow.ParseAddr(srcIP); err != nil {
		return e, err
	}
	if e.DstIP, err = storerow.ParseAddr(dstIP); err != nil {
		return e, err
	}
	if srcPort.Valid {
		e.SrcPort = srcPort.Int32
	}
	if dstPort.Valid {
		e.DstPort = dstPort.Int32
	}
	if e.AdditionalData, err = storerow.DecodeAttrs(ad); err != nil {
		return e, err
	}
	if e.Fields, err = storerow.DecodeAttrs(fields); err != nil {
		return e, err
	}
	if e.Requests, err = storerow.DecodeAttrs(reqs); err != nil {
		return e, err
	}
	return e, nil
}

// where builds the WHERE clause and arguments for f.
func where(f peba.EventFilter) (string, []any) {
	var conds []string
	var args []any
	if len(f.Domains) > 0 {
		var community, private bool
		for _, d := range f.Domains {
			community = community || d == peba.DomainCommunity
			private = private || d == peba.DomainPrivate
		}
		switch {
		case community && private:
		case community:
			conds = append(conds, "community")
		case private:
			conds = append(conds, "NOT community")
		default:
			conds = append(conds, "false")
		}
	}
	if f.ID != "" {
		conds, args = append(conds, "id = ?"), append(args, f.ID)
	}
	if f.SrcIP != "" {
		ip := f.SrcIP
		// Match the canonical text that addrText stored.
		if a, err := netip.ParseAddr(ip); err == nil {
			ip = a.String()
		}
		conds, args = append(conds, "src_ip = ?"), append(args, ip)
	}
	if f.PeerIdent != "" {
		conds, args = append(conds, "peer_ident = ?"), append(args, f.PeerIdent)
	}
	if f.PeerType != "" {
		conds, args = append(conds, "peer_type = ?"), append(args, f.PeerType)
	}
	if f.Sensor != "" {
		conds = append(conds, "(hostname = ? OR sensor_uuid = ? OR peer_ident = ?)")
		args = append(args, f.Sensor, f.Sensor, f.Sensor)
	}
	if f.After != nil {
		// Keyset continuation in FindEvents order (received_time DESC, id).
		// The leading range conjunct is what DuckDB pushes into the scan
		// (zone maps); the OR alone would not be.
		t := dbTime(f.After.ReceivedTime)
		conds = append(conds, "received_time <= ? AND (received_time < ? OR id > ?)")
		args = append(args, t, t, f.After.ID)
	}
	if !f.Since.IsZero() {
		conds, args = append(conds, "received_time >= ?"), append(args, dbTime(f.Since))
	}
	if !f.Until.IsZero() {
		conds, args = append(conds, "received_time < ?"), append(args, dbTime(f.Until))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// FindEvents implements peba.Store. Ties on received time are ordered by id
// so that pages are stable.
func (s *Store) FindEvents(ctx context.Context, f peba.EventFilter) ([]peba.Event, int64, error) {
	w, args := where(f)
	total := int64(-1)
	if !f.NoTotal {
		// The total ignores the cursor, like Limit and Offset.
		cf := f
		cf.After = nil
		cw, cargs := where(cf)
		if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM events"+cw, cargs...).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("cannot count events: %w", err)
		}
	}
	if f.Limit > 0 {
		// DuckDB's top-N reads every column of every match before it
		// keeps Limit rows: 0.3 s for a page of a day of 10M events. The
		// receive time of the page's last row, found by a top-N over that
		// one column, bounds the full read to the page's own rows (the
		// rows before it in order are not earlier): zone maps skip the
		// rest.
		var low time.Time
		err := s.db.QueryRowContext(ctx, fmt.Sprintf("SELECT received_time FROM events%s ORDER BY received_time DESC LIMIT 1 OFFSET %d",
			w, f.Offset+f.Limit-1), args...).Scan(&low)
		switch {
		case err == nil:
			if w == "" {
				w = " WHERE received_time >= ?"
			} else {
				w += " AND received_time >= ?"
			}
			args = append(args, low)
		case errors.Is(err, sql.ErrNoRows): // fewer matches than the page: no bound
		default:
			return nil, 0, fmt.Errorf("cannot find events: %w", err)
		}
	}
	q := "SELECT " + eventColumns + " FROM events" + w + " ORDER BY received_time DESC, id"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	if f.Offset > 0 {
		q += fmt.Sprintf(" OFFSET %d", f.Offset)
	}
	out, err := s.queryEvents(ctx, fullRows, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot find events: %w", err)
	}
	return out, total, nil
}

// exportPage is how many events ExportEvents reads per query.
const exportPage = 5000

// ExportEvents implements peba.Store. It pages through the table by
// (received_time, id) keyset instead of one ORDER BY query, because the
// driver materializes a whole result before returning the first row. Each
// page is a top-N query whose bound DuckDB pushes into the scan, so row
// groups outside the page are skipped by their zone maps. Events appended
// during the export after the cursor are included; the export is not a
// snapshot.
func (s *Store) ExportEvents(ctx context.Context, fn func(*peba.Event) error) error {
	var (
		lastTime time.Time
		lastID   string
		first    = true
	)
	for {
		q := "SELECT " + eventColumns + " FROM events"
		var args []any
		if !first {
			// The leading range conjunct is what DuckDB can push into the
			// scan (zone maps); the OR alone would not be.
			q += " WHERE received_time >= ? AND (received_time > ? OR id > ?)"
			args = []any{lastTime, lastTime, lastID}
		}
		q += fmt.Sprintf(" ORDER BY received_time, id LIMIT %d", exportPage)
		page, err := s.queryEvents(ctx, fullRows, q, args...)
		if err != nil {
			return fmt.Errorf("cannot export events: %w", err)
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(page) < exportPage {
			return nil
		}
		first = false
		lastTime, lastID = page[len(page)-1].ReceivedTime, page[len(page)-1].ID
	}
}

// DeleteEventsBefore implements peba.Store. Payload records stay: they
// describe payloads seen, not events kept.
func (s *Store) DeleteEventsBefore(ctx context.Context, t time.Time) (int64, error) {
	if err := s.lockWriter(); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	var n int64
	err := s.inTx(ctx, func() error {
		// The rollups lose the deleted events in the same transaction.
		if err := s.retractRollups(ctx, t); err != nil {
			return err
		}
		if err := s.dropSensorSummaries(ctx, t); err != nil { // sensorsum.go
			return err
		}
		if err := s.retractTops(ctx, t); err != nil { // tops_summary.go
			return err
		}
		res, err := s.wconn.ExecContext(ctx, "DELETE FROM events WHERE received_time < ?", dbTime(t))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("cannot delete events: %w", err)
	}
	return n, nil
}

// rowShape is what Latest reads of each event row: the columns and their
// scan.
type rowShape struct {
	cols string
	scan func(*sql.Rows) (peba.Event, error)
}

var (
	fullRows  = rowShape{eventColumns, scanEvent}
	briefRows = rowShape{briefColumns, scanBrief}
)

// briefColumns are the columns of peba.BriefLatester's fields.
const briefColumns = `id, community, received_time, create_time, peer_type, src_ip, dst_country, url`

// scanBrief reads one row selected with briefColumns; the other fields stay
// zero (ports: peba.NoPort).
func scanBrief(rows *sql.Rows) (peba.Event, error) {
	var (
		e                   peba.Event
		community           bool
		srcIP               string
		received, createdAt time.Time
	)
	if err := rows.Scan(&e.ID, &community, &received, &createdAt, &e.PeerType, &srcIP, &e.Dst.Country, &e.URL); err != nil {
		return e, fmt.Errorf("cannot scan event: %w", err)
	}
	setRowBasics(&e, community, received, createdAt)
	var err error
	e.SrcIP, err = storerow.ParseAddr(srcIP)
	return e, err
}

// setRowBasics sets what both row shapes derive from their columns: the
// domain, the times in UTC, and no ports until the row says otherwise.
func setRowBasics(e *peba.Event, community bool, received, created time.Time) {
	e.Domain = peba.DomainPrivate
	if community {
		e.Domain = peba.DomainCommunity
	}
	e.ReceivedTime = received.UTC()
	e.CreateTime = created.UTC()
	e.SrcPort, e.DstPort = peba.NoPort, peba.NoPort
}

// CertainlyNew reports, for each event, whether it is certainly not stored
// yet, from the de-duplication filter alone (idfilter.go): false means
// "maybe stored", also before the first append loaded the filter. It does
// not wait for an append in progress, so that the ingest pipeline can ask
// at journal time (ingest.Options.Fresh: the live feed publishes those
// events before they are applied).
func (s *Store) CertainlyNew(events []peba.Event) []bool {
	out := make([]bool, len(events))
	s.idsMu.Lock()
	defer s.idsMu.Unlock()
	if !s.ids.loaded {
		return out
	}
	for i := range events {
		out[i] = !s.ids.mayBeStored(events[i].ID, events[i].CreateTime)
	}
	return out
}
