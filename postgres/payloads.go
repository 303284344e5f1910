package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// payloadKey is the primary key of a payload record: the first 16 bytes of
// SHA-256 of the (escaped) md5 text, which may be longer than a btree
// entry when a sensor or an import reported something else than a hex md5.
func payloadKey(md5 string) [16]byte {
	sum := sha256.Sum256([]byte(escText(md5)))
	var k [16]byte
	copy(k[:], sum[:16])
	return k
}

// payloadAgg is what one append contributes to one payload record.
type payloadAgg struct {
	key         [16]byte
	md5         string
	fuzzy, mime string
	size        int64
	first, last time.Time
	count       int64
	initialIP   string
	initialPort *int32 // nil for peba.NoPort
}

// queuePayloads queues the upsert of the payload records (peba.md §4.10,
// §5.3) of the inserted events, as the DuckDB store keeps them: first and
// last seen are the min and max create time (fixes B-28); the initial IP
// and port are those of the first inserted event; metadata (fuzzy hash,
// MIME, size) from Event.Payload fills a record created without it and is
// never overwritten. Rows go in key order (no deadlock between nodes).
func queuePayloads(b *pgx.Batch, inserted []peba.Event) {
	byMD5 := map[string]*payloadAgg{}
	for i := range inserted {
		e := &inserted[i]
		if e.PayloadMD5 == "" {
			continue
		}
		ct := dbTime(e.CreateTime)
		a := byMD5[e.PayloadMD5]
		if a == nil {
			a = &payloadAgg{key: payloadKey(e.PayloadMD5), md5: escText(e.PayloadMD5), first: ct, last: ct,
				initialIP: storerow.AddrText(e.SrcIP), initialPort: portValue(e.DstPort)}
			byMD5[e.PayloadMD5] = a
		}
		a.count++
		if ct.Before(a.first) {
			a.first = ct
		}
		if ct.After(a.last) {
			a.last = ct
		}
		if p := e.Payload; p != nil && a.fuzzy == "" && a.mime == "" && (p.MD5 == "" || p.MD5 == e.PayloadMD5) {
			a.fuzzy, a.mime, a.size = escText(p.FuzzyHash), escText(p.MIME), p.Size
		}
	}
	if len(byMD5) == 0 {
		return
	}
	aggs := make([]*payloadAgg, 0, len(byMD5))
	for _, a := range byMD5 {
		aggs = append(aggs, a)
	}
	slices.SortFunc(aggs, func(a, b *payloadAgg) int { return bytes.Compare(a.key[:], b.key[:]) })
	n := len(aggs)
	var (
		keys                 = make([][16]byte, n)
		md5s, fuzzies, mimes = make([]string, n), make([]string, n), make([]string, n)
		sizes, counts        = make([]int64, n), make([]int64, n)
		firsts, lasts        = make([]time.Time, n), make([]time.Time, n)
		ips                  = make([]string, n)
		ports                = make([]*int32, n)
	)
	for i, a := range aggs {
		keys[i], md5s[i], fuzzies[i], mimes[i], sizes[i] = a.key, a.md5, a.fuzzy, a.mime, a.size
		firsts[i], lasts[i], counts[i], ips[i], ports[i] = a.first, a.last, a.count, a.initialIP, a.initialPort
	}
	// Unqualified names in SET's expressions would be ambiguous; payloads.x
	// is the stored row.
	b.Queue(`INSERT INTO payloads (key, md5, fuzzy_hash, mime, size, first_seen, last_seen, md5_count, initial_ip, initial_dest_port)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamp[], $7::timestamp[],
			$8::bigint[], $9::text[], $10::integer[])
		ON CONFLICT (key) DO UPDATE SET
		fuzzy_hash = CASE WHEN payloads.fuzzy_hash = '' AND payloads.mime = '' THEN excluded.fuzzy_hash ELSE payloads.fuzzy_hash END,
		size       = CASE WHEN payloads.fuzzy_hash = '' AND payloads.mime = '' THEN excluded.size ELSE payloads.size END,
		mime       = CASE WHEN payloads.fuzzy_hash = '' AND payloads.mime = '' THEN excluded.mime ELSE payloads.mime END,
		first_seen = least(payloads.first_seen, excluded.first_seen),
		last_seen  = greatest(payloads.last_seen, excluded.last_seen),
		md5_count  = payloads.md5_count + excluded.md5_count`,
		keys, md5s, fuzzies, mimes, sizes, firsts, lasts, counts, ips, ports)
}

// FindPayload implements peba.Store. FuzzyCount is derived, as in the
// DuckDB store: the md5_count of all records sharing the (known) fuzzy hash
// minus the record's own.
func (s *Store) FindPayload(ctx context.Context, md5 string) (*peba.Payload, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var (
		p    peba.Payload
		port *int32
	)
	err := s.pool.QueryRow(ctx, `
		SELECT md5, fuzzy_hash, mime, size, first_seen, last_seen, md5_count, initial_ip, initial_dest_port,
		       CASE WHEN fuzzy_hash = '' THEN 0
		            ELSE (SELECT sum(o.md5_count) FROM payloads o
		                  WHERE md5(o.fuzzy_hash) = md5(p.fuzzy_hash) AND o.fuzzy_hash = p.fuzzy_hash)::bigint - md5_count
		       END
		FROM payloads p WHERE key = $1`, payloadKey(md5)).Scan(
		&p.MD5, &p.FuzzyHash, &p.MIME, &p.Size, &p.FirstSeen, &p.LastSeen, &p.MD5Count,
		&p.InitialIP, &port, &p.FuzzyCount)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, peba.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cannot find payload: %w", err)
	}
	p.MD5, p.FuzzyHash, p.MIME = unescText(p.MD5), unescText(p.FuzzyHash), unescText(p.MIME)
	p.FirstSeen, p.LastSeen = p.FirstSeen.UTC(), p.LastSeen.UTC()
	p.InitialDestPort = peba.NoPort
	if port != nil {
		p.InitialDestPort = *port
	}
	return &p, nil
}

// Payload bytes (table payload_data): the store doubles as the blob store
// of a multi-node installation (ingest.BlobWriter), where a directory on
// one node would not be seen by the others.

var md5Hex = regexp.MustCompile(`^[0-9a-f]{32}$`)

// blobTimeout bounds Put and Get, which take no context.
const blobTimeout = 30 * time.Second

// Put stores data under its md5 unless bytes for it are stored already
// (idempotent; concurrent Puts of one md5 from several nodes are safe).
// It returns after the write is committed. The caller computes md5 (lower
// case hex); Put trusts it.
func (s *Store) Put(md5 string, data []byte) error {
	if !md5Hex.MatchString(md5) {
		return peba.Errorf(peba.EINVALID, "invalid payload md5 %q", md5)
	}
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
	defer cancel()
	if data == nil {
		data = []byte{}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO payload_data (md5, data) VALUES ($1, $2) ON CONFLICT (md5) DO NOTHING`, md5, data); err != nil {
		return fmt.Errorf("cannot store payload bytes: %w", err)
	}
	return nil
}

// Get returns the bytes stored for md5, or an error with code
// peba.ENOTFOUND.
func (s *Store) Get(md5 string) ([]byte, error) {
	if !md5Hex.MatchString(md5) {
		return nil, peba.Errorf(peba.ENOTFOUND, "no payload %q", md5)
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
	defer cancel()
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM payload_data WHERE md5 = $1`, md5).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, peba.Errorf(peba.ENOTFOUND, "no payload %s", md5)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read payload bytes: %w", err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}
