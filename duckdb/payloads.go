package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// payloadAgg is what one append contributes to one payload record.
type payloadAgg struct {
	md5         string
	fuzzy, mime string
	size        int64
	first, last time.Time
	count       int64
	initialIP   string
	initialPort any // nil for peba.NoPort
}

// upsertPayloads updates the payload records (peba.md §4.10, §5.3) for the
// inserted events, in the append transaction. Unlike PEBA, first_seen and
// last_seen are the min and max create time (fixes B-28). The initial IP and
// port are those of the first inserted event. Metadata (fuzzy hash, MIME,
// size) comes from Event.Payload when present and fills a record that was
// created without it; known metadata is never overwritten, since the bytes
// behind one md5 are the same.
func (s *Store) upsertPayloads(ctx context.Context, inserted []peba.Event) error {
	byMD5 := map[string]*payloadAgg{}
	var order []*payloadAgg
	for i := range inserted {
		e := &inserted[i]
		if e.PayloadMD5 == "" {
			continue
		}
		ct := dbTime(e.CreateTime)
		a := byMD5[e.PayloadMD5]
		if a == nil {
			a = &payloadAgg{md5: e.PayloadMD5, first: ct, last: ct,
				initialIP: storerow.AddrText(e.SrcIP), initialPort: portValue(e.DstPort)}
			byMD5[e.PayloadMD5] = a
			order = append(order, a)
		}
		a.count++
		if ct.Before(a.first) {
			a.first = ct
		}
		if ct.After(a.last) {
			a.last = ct
		}
		if p := e.Payload; p != nil && a.fuzzy == "" && a.mime == "" && (p.MD5 == "" || p.MD5 == e.PayloadMD5) {
			a.fuzzy, a.mime, a.size = p.FuzzyHash, p.MIME, p.Size
		}
	}
	if len(order) == 0 {
		return nil
	}
	// A query appender streams the rows into a temporary relation and runs
	// one upsert over it: ~10x faster than one INSERT with 9 bound
	// parameters per row, whose planning cost grows with the batch (measured).
	// Unqualified column names in DO UPDATE refer to the stored row.
	const upsert = `INSERT INTO payloads SELECT * FROM appended_data ON CONFLICT (md5) DO UPDATE SET
		fuzzy_hash = CASE WHEN fuzzy_hash = '' AND mime = '' THEN excluded.fuzzy_hash ELSE fuzzy_hash END,
		size       = CASE WHEN fuzzy_hash = '' AND mime = '' THEN excluded.size ELSE size END,
		mime       = CASE WHEN fuzzy_hash = '' AND mime = '' THEN excluded.mime ELSE mime END,
		first_seen = least(first_seen, excluded.first_seen),
		last_seen  = greatest(last_seen, excluded.last_seen),
		md5_count  = md5_count + excluded.md5_count`
	return s.wconn.Raw(func(dc any) error {
		app, err := duckdbdriver.NewTableAppender(dc.(driver.Conn), upsert, "", "", "payloads", nil)
		if err != nil {
			return fmt.Errorf("cannot create payload appender: %w", err)
		}
		for _, a := range order {
			// Column order of the payloads table (0001_init.sql).
			err := app.AppendRow(a.md5, a.fuzzy, a.mime, a.size, a.first, a.last, a.count, a.initialIP, a.initialPort)
			if err != nil {
				app.Close()
				return fmt.Errorf("cannot append payload: %w", err)
			}
		}
		if err := app.CloseWithCancel(ctx); err != nil {
			return fmt.Errorf("cannot upsert payloads: %w", err)
		}
		return nil
	})
}

// FindPayload implements peba.Store. FuzzyCount is derived here rather than
// stored: the md5_count of all records sharing the fuzzy hash minus the
// record's own, i.e. the events whose payload differs from this one only
// where the fuzzy hash ignores it (PEBA's fuzzyHashCount, peba.md §4.10).
// A record whose fuzzy hash is unknown (”) has FuzzyCount 0.
func (s *Store) FindPayload(ctx context.Context, md5 string) (*peba.Payload, error) {
	var (
		p    peba.Payload
		port sql.NullInt32
	)
	err := s.db.QueryRowContext(ctx, `
		SELECT md5, fuzzy_hash, mime, size, first_seen, last_seen, md5_count, initial_ip, initial_dest_port,
		       CASE WHEN fuzzy_hash = '' THEN 0
		            ELSE (SELECT sum(o.md5_count) FROM payloads o WHERE o.fuzzy_hash = p.fuzzy_hash)::BIGINT - md5_count
		       END
		FROM payloads p WHERE md5 = ?`, md5).Scan(
		&p.MD5, &p.FuzzyHash, &p.MIME, &p.Size, &p.FirstSeen, &p.LastSeen, &p.MD5Count,
		&p.InitialIP, &port, &p.FuzzyCount)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, peba.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cannot find payload: %w", err)
	}
	p.FirstSeen, p.LastSeen = p.FirstSeen.UTC(), p.LastSeen.UTC()
	p.InitialDestPort = peba.NoPort
	if port.Valid {
		p.InitialDestPort = port.Int32
	}
	return &p, nil
}
