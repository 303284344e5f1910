package postgres

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// eventColumnNames is the column order of the events table, of rowValues
// and of scanEvent.
var eventColumnNames = []string{"id", "community", "submitter", "origin", "received_time", "create_time",
	"peer_ident", "peer_type", "sensor_uuid", "hostname", "external_ip", "internal_ip",
	"src_ip", "src_port", "dst_ip", "dst_port", "transport",
	"url", "vuln_id", "username", "password", "login", "client_version", "session_start", "session_end", "raw_http",
	"payload_md5", "additional_data", "fields", "requests",
	"src_country", "src_country_name", "src_asn", "src_lat", "src_lon",
	"dst_country", "dst_country_name", "dst_asn", "dst_lat", "dst_lon"}

var eventColumns = strings.Join(eventColumnNames, ", ")

// recvColumn is the index of received_time in eventColumnNames.
const recvColumn = 4

// maxAttempts bounds how often AppendEvents runs its transaction when it
// meets a transient conflict or a partition dropped under it.
const maxAttempts = 4

// AppendEvents implements peba.Store. See the interface for the contract.
//
// Outside the transaction: validate, drop ids repeated in the call, encode
// the rows, and make sure the partitions of the batch's receive days exist
// (their DDL locks the events table briefly, so it is not held for a whole
// append). Then one transaction: insert the ids into event_ids (sorted, ON
// CONFLICT DO NOTHING RETURNING id: the returned ids are the new events,
// and a concurrent append of the same id by another node waits for this one
// and then finds it), COPY the new events, upsert payload records and
// rollups (sorted keys), add the live feed row and NOTIFY, commit.
func (s *Store) AppendEvents(ctx context.Context, events []peba.Event) (peba.AppendResult, error) {
	var res peba.AppendResult
	if err := s.check(); err != nil {
		return res, err
	}
	for i := range events {
		if err := peba.ValidateEvent(&events[i]); err != nil {
			return res, peba.Errorf(peba.EINVALID, "event %d: %s", i, err)
		}
	}
	seen := make(map[string]bool, len(events))
	candidates := make([]int, 0, len(events))
	for i := range events {
		if seen[events[i].ID] {
			res.Duplicates++
			continue
		}
		seen[events[i].ID] = true
		candidates = append(candidates, i)
	}
	if len(candidates) == 0 {
		return res, nil
	}
	rows := make([][]any, len(events))
	days := map[int64]bool{}
	for _, i := range candidates {
		r, err := rowValues(&events[i])
		if err != nil {
			return peba.AppendResult{}, peba.Errorf(peba.EINVALID, "event %d: %s", i, err)
		}
		rows[i] = r
		days[dayOf(events[i].ReceivedTime)] = true
	}
	var (
		inserted []peba.Event
		stored   int
		err      error
	)
	for attempt := 1; ; attempt++ {
		if err = s.ensurePartitions(ctx, days); err == nil {
			inserted, stored, err = s.appendTx(ctx, events, candidates, rows)
		}
		if err == nil || attempt == maxAttempts || ctx.Err() != nil {
			break
		}
		if noPartition(err) {
			for d := range days {
				s.parts.Delete(d)
			}
		} else if !retryable(err) {
			break
		}
		s.log.Warn("Retrying an append after a conflict", "attempt", attempt, "error", err)
	}
	if err != nil {
		return peba.AppendResult{}, fmt.Errorf("cannot append events: %w", err)
	}
	res.Inserted = inserted
	res.Duplicates += stored
	return res, nil
}

// appendTx is the transaction of AppendEvents. It returns the inserted
// events in input order and how many candidates were already stored.
func (s *Store) appendTx(ctx context.Context, events []peba.Event, candidates []int, rows [][]any) ([]peba.Event, int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot begin transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// Sorted, so that two nodes inserting overlapping id sets lock them in
	// the same order (no deadlock).
	ids := make([]string, len(candidates))
	recv := make(map[string]time.Time, len(candidates))
	for j, i := range candidates {
		ids[j] = escText(events[i].ID)
		recv[ids[j]] = dbTime(events[i].ReceivedTime)
	}
	slices.Sort(ids)
	times := make([]time.Time, len(ids))
	for j, id := range ids {
		times[j] = recv[id]
	}
	newRows, err := tx.Query(ctx, `INSERT INTO event_ids (id, received_time)
		SELECT * FROM unnest($1::text[], $2::timestamp[]) ON CONFLICT (id) DO NOTHING RETURNING id`, ids, times)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot register event ids: %w", err)
	}
	newIDs, err := pgx.CollectRows(newRows, pgx.RowTo[string])
	if err != nil {
		return nil, 0, fmt.Errorf("cannot register event ids: %w", err)
	}
	isNew := make(map[string]bool, len(newIDs))
	for _, id := range newIDs {
		isNew[unescText(id)] = true
	}
	inserted := make([]peba.Event, 0, len(newIDs))
	copyRows := make([][]any, 0, len(newIDs))
	for _, i := range candidates {
		if isNew[events[i].ID] {
			inserted = append(inserted, events[i])
			copyRows = append(copyRows, rows[i])
		}
	}
	// COPY in receive-time order: partitions are then locked in day order,
	// the order retention locks them in (DeleteEventsBefore), and each
	// partition's btree is filled left to right.
	slices.SortStableFunc(copyRows, func(a, b []any) int { return a[recvColumn].(time.Time).Compare(b[recvColumn].(time.Time)) })
	stored := len(candidates) - len(inserted)
	if len(inserted) == 0 {
		// Nothing new: no rows, no live feed row; commit only releases the
		// (empty) work.
		if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
			return nil, 0, fmt.Errorf("cannot commit: %w", err)
		}
		return nil, stored, nil
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumnNames, pgx.CopyFromRows(copyRows)); err != nil {
		return nil, 0, fmt.Errorf("cannot copy events: %w", err)
	}
	feed := encodeFeed(inserted)
	// The remaining statements go in one round trip, in the table order
	// every writer uses: payloads, rollups, live feed.
	b := &pgx.Batch{}
	queuePayloads(b, inserted)
	queueRollups(b, inserted)
	var seq int64
	b.Queue(`INSERT INTO live_feed (events) VALUES ($1) RETURNING seq`, feed).QueryRow(func(r pgx.Row) error { return r.Scan(&seq) })
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, 0, fmt.Errorf("cannot update payloads, rollups and live feed: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	// Commit is not cancelled with ctx: once we decided to commit, an
	// interrupt half-way would leave the caller unsure whether the data is
	// stored.
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		return nil, 0, fmt.Errorf("cannot commit: %w", err)
	}
	s.notifyFeed(ctx, seq)
	return inserted, stored, nil
}

// notifyFeed notifies FeedChannel of the committed live_feed row seq. It
// is sent after the commit, in a transaction of its own, not in the
// append's: a transaction that NOTIFYs holds a database-wide lock from
// its commit's start to its end, WAL flush included, so that appends that
// notified committed one at a time across all nodes (the three-node
// benchmark found committing backends waiting on "Lock:object" as often
// as on the WAL flush, docs/performance.md). A notification lost here (the
// node dies right after the commit, or the connection fails) delays the
// row only until the listeners' next sweep (pgfeed.Options.SweepInterval).
func (s *Store) notifyFeed(ctx context.Context, seq int64) {
	if _, err := s.pool.Exec(context.WithoutCancel(ctx), "SELECT pg_notify($1, $2)", FeedChannel, strconv.FormatInt(seq, 10)); err != nil {
		s.log.Warn("Cannot notify the live feed; listeners will find the row by their sweep", "seq", seq, "error", err)
	}
}

// rowValues returns the COPY row for e, in eventColumnNames order.
func rowValues(e *peba.Event) ([]any, error) {
	ad, err := storerow.EncodeAttrs(e.AdditionalData)
	if err != nil {
		return nil, err
	}
	fs, err := storerow.EncodeAttrs(e.Fields)
	if err != nil {
		return nil, err
	}
	rq, err := storerow.EncodeAttrs(e.Requests)
	if err != nil {
		return nil, err
	}
	x := escText
	return []any{
		x(e.ID), e.Domain == peba.DomainCommunity, x(e.Submitter), x(e.Origin),
		dbTime(e.ReceivedTime), dbTime(e.CreateTime),
		x(e.PeerIdent), x(e.PeerType), x(e.SensorUUID), x(e.Hostname), x(e.ExternalIP), x(e.InternalIP),
		storerow.AddrText(e.SrcIP), portValue(e.SrcPort), storerow.AddrText(e.DstIP), portValue(e.DstPort), x(e.Transport),
		x(e.URL), x(e.VulnID), x(e.Username), x(e.Password), x(e.Login), x(e.ClientVersion), x(e.SessionStart), x(e.SessionEnd), x(e.RawHTTP),
		x(e.PayloadMD5), ad, fs, rq,
		x(e.Src.Country), x(e.Src.CountryName), x(e.Src.ASN), e.Src.Lat, e.Src.Lon,
		x(e.Dst.Country), x(e.Dst.CountryName), x(e.Dst.ASN), e.Dst.Lat, e.Dst.Lon,
	}, nil
}

func portValue(p int32) *int32 {
	if p == peba.NoPort {
		return nil
	}
	return &p
}

// scanEvent reads one row selected with eventColumns.
func scanEvent(row pgx.CollectableRow) (peba.Event, error) {
	var (
		e                peba.Event
		community        bool
		srcIP, dstIP     string
		srcPort, dstPort *int32
		ad, fields, reqs string
	)
	err := row.Scan(&e.ID, &community, &e.Submitter, &e.Origin, &e.ReceivedTime, &e.CreateTime,
		&e.PeerIdent, &e.PeerType, &e.SensorUUID, &e.Hostname, &e.ExternalIP, &e.InternalIP,
		&srcIP, &srcPort, &dstIP, &dstPort, &e.Transport,
		&e.URL, &e.VulnID, &e.Username, &e.Password, &e.Login, &e.ClientVersion, &e.SessionStart, &e.SessionEnd, &e.RawHTTP,
		&e.PayloadMD5, &ad, &fields, &reqs,
		&e.Src.Country, &e.Src.CountryName, &e.Src.ASN, &e.Src.Lat, &e.Src.Lon,
		&e.Dst.Country, &e.Dst.CountryName, &e.Dst.ASN, &e.Dst.Lat, &e.Dst.Lon)
	if err != nil {
		return e, fmt.Errorf("cannot scan event: %w", err)
	}
	for _, p := range []*string{&e.ID, &e.Submitter, &e.Origin, &e.PeerIdent, &e.PeerType, &e.SensorUUID,
		&e.Hostname, &e.ExternalIP, &e.InternalIP, &e.Transport, &e.URL, &e.VulnID, &e.Username,
		&e.Password, &e.Login, &e.ClientVersion, &e.SessionStart, &e.SessionEnd, &e.RawHTTP, &e.PayloadMD5,
		&e.Src.Country, &e.Src.CountryName, &e.Src.ASN, &e.Dst.Country, &e.Dst.CountryName, &e.Dst.ASN} {
		*p = unescText(*p)
	}
	e.Domain = peba.DomainPrivate
	if community {
		e.Domain = peba.DomainCommunity
	}
	e.ReceivedTime = e.ReceivedTime.UTC()
	e.CreateTime = e.CreateTime.UTC()
	if e.SrcIP, err = storerow.ParseAddr(srcIP); err != nil {
		return e, err
	}
	if e.DstIP, err = storerow.ParseAddr(dstIP); err != nil {
		return e, err
	}
	e.SrcPort, e.DstPort = peba.NoPort, peba.NoPort
	if srcPort != nil {
		e.SrcPort = *srcPort
	}
	if dstPort != nil {
		e.DstPort = *dstPort
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

func (s *Store) queryEvents(ctx context.Context, q string, a args) ([]peba.Event, error) {
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanEvent)
}

// where builds the WHERE clause for f, adding its parameters to a.
func where(f peba.EventFilter, a *args) string {
	var conds []string
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
		// event_ids gives the receive time, which prunes the scan to one
		// partition and one index range (there is no index on id).
		p := a.add(escText(f.ID))
		conds = append(conds, "id = "+p, "received_time = (SELECT received_time FROM event_ids WHERE id = "+p+")")
	}
	if f.SrcIP != "" {
		ip := f.SrcIP
		// Match the canonical text that addrText stored.
		if ad, err := netip.ParseAddr(ip); err == nil {
			ip = ad.String()
		}
		conds = append(conds, "src_ip = "+a.add(escText(ip)))
	}
	if f.PeerIdent != "" {
		conds = append(conds, "peer_ident = "+a.add(escText(f.PeerIdent)))
	}
	if f.PeerType != "" {
		conds = append(conds, "peer_type = "+a.add(escText(f.PeerType)))
	}
	if f.Sensor != "" {
		p := a.add(escText(f.Sensor))
		conds = append(conds, "(hostname = "+p+" OR sensor_uuid = "+p+" OR peer_ident = "+p+")")
	}
	if f.After != nil {
		// Keyset continuation in FindEvents order (received_time DESC, id).
		t, id := a.add(dbTime(f.After.ReceivedTime)), a.add(escText(f.After.ID))
		conds = append(conds, "received_time <= "+t+" AND (received_time < "+t+" OR id > "+id+")")
	}
	if !f.Since.IsZero() {
		conds = append(conds, "received_time >= "+a.add(dbTime(f.Since)))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "received_time < "+a.add(dbTime(f.Until)))
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// FindEvents implements peba.Store. Ties on received time are ordered by id
// (byte order) so that pages are stable.
func (s *Store) FindEvents(ctx context.Context, f peba.EventFilter) ([]peba.Event, int64, error) {
	if err := s.check(); err != nil {
		return nil, 0, err
	}
	total := int64(-1)
	if !f.NoTotal {
		// The total ignores the cursor, like Limit and Offset.
		cf := f
		cf.After = nil
		var ca args
		cw := where(cf, &ca)
		if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM events"+cw, ca...).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("cannot count events: %w", err)
		}
	}
	var a args
	q := "SELECT " + eventColumns + " FROM events" + where(f, &a) + " ORDER BY received_time DESC, id"
	if f.Limit > 0 {
		q += " LIMIT " + a.add(int64(f.Limit))
	}
	if f.Offset > 0 {
		q += " OFFSET " + a.add(int64(f.Offset))
	}
	out, err := s.queryEvents(ctx, q, a)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot find events: %w", err)
	}
	return out, total, nil
}

// exportPage is how many events ExportEvents reads per query.
const exportPage = 5000

// ExportEvents implements peba.Store. It pages through the events by
// (received_time, id) keyset, each page an index range scan, so that no
// transaction or connection is held while fn runs. Events appended during
// the export after the cursor are included; the export is not a snapshot.
func (s *Store) ExportEvents(ctx context.Context, fn func(*peba.Event) error) error {
	if err := s.check(); err != nil {
		return err
	}
	var (
		last  *peba.Event
		first = true
	)
	for {
		var a args
		q := "SELECT " + eventColumns + " FROM events"
		if !first {
			t, id := a.add(dbTime(last.ReceivedTime)), a.add(escText(last.ID))
			q += " WHERE received_time >= " + t + " AND (received_time > " + t + " OR id > " + id + ")"
		}
		q += fmt.Sprintf(" ORDER BY received_time, id LIMIT %d", exportPage)
		page, err := s.queryEvents(ctx, q, a)
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
		last = &page[len(page)-1]
	}
}
