package postgres

// Partitions by receive day, and retention by partition.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// dayOf returns the UTC day of t as days since the Unix epoch.
func dayOf(t time.Time) int64 {
	return dbTime(t).Truncate(24*time.Hour).Unix() / 86400
}

// dayTime returns the start of day d (days since the Unix epoch).
func dayTime(d int64) time.Time { return time.Unix(d*86400, 0).UTC() }

// partitionName returns the name of the partition of day d.
func partitionName(d int64) string { return "events_p" + dayTime(d).Format("20060102") }

// partitionDay parses a partition name; ok is false for other tables.
func partitionDay(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, "events_p")
	if !ok || len(rest) != 8 {
		return 0, false
	}
	t, err := time.Parse("20060102", rest)
	if err != nil {
		return 0, false
	}
	return t.Unix() / 86400, true
}

// ensurePartitions creates the missing partitions of days, each in its own
// short transaction. Concurrent nodes creating the same partition would
// collide in the catalog ("duplicate key ... pg_type"), so the creation is
// serialized by a transaction-scoped advisory lock per day, after which
// IF NOT EXISTS sees the other node's committed table.
func (s *Store) ensurePartitions(ctx context.Context, days map[int64]bool) error {
	var missing []int64
	for d := range days {
		if _, ok := s.parts.Load(d); !ok {
			missing = append(missing, d)
		}
	}
	slices.Sort(missing)
	for _, d := range missing {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1), pg_advisory_xact_lock($2, $3)",
				ddlLockKey, partitionLockClass, int32(d)); err != nil {
				return err
			}
			from, to := dayTime(d), dayTime(d+1)
			_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF events FOR VALUES FROM ('%s') TO ('%s')`,
				partitionName(d), from.Format("2006-01-02 15:04:05"), to.Format("2006-01-02 15:04:05")))
			return err
		})
		if err != nil {
			return fmt.Errorf("cannot create partition %s: %w", partitionName(d), err)
		}
		s.parts.Store(d, true)
	}
	return nil
}

// partitionLockClass is the first key of the two-key advisory locks that
// serialize partition DDL per day ("PART" in ASCII; the cluster package
// uses "PEBA").
const partitionLockClass int32 = 0x50415254

// Advisory locks (single bigint form) of retention: retentionLockKey
// serializes DeleteEventsBefore across nodes ("pebarete"); ddlLockKey is
// taken shared by partition creation and exclusively by retention
// ("pebapart"), so that the set of partitions does not change while
// retention works on it.
const (
	retentionLockKey int64 = 0x70656261_72657465
	ddlLockKey       int64 = 0x70656261_70617274
)

// dropLockTimeout bounds how long retention waits for the exclusive lock on
// events that dropping a partition needs; appends and queries queue behind
// that request, so it must not wait for a long query to end. An empty
// partition that could not be dropped is dropped by a later run.
const dropLockTimeout = "2s"

// DeleteEventsBefore implements peba.Store: the partitions of whole days
// before t's day are emptied (TRUNCATE) and then dropped, rows are deleted
// only from t's day, and the ids and the rollups lose the deleted events
// in the same transaction. Payload records stay: they describe payloads
// seen, not events kept.
//
// Two transactions, for lock order. The first takes the locks in the order
// appends take them (they COPY their rows in receive-time order, so they
// lock old partitions before new ones): no partition DDL meanwhile, then
// the old partitions in ascending day order in SHARE mode, so that no
// event is added to the deleted range between counting and deleting it
// while appends into today's partition go on. It counts, retracts and
// deletes. The second drops the emptied partitions; that needs an
// exclusive lock on the whole events table, taken first (as appends lock
// the table before its partitions) and only briefly (dropLockTimeout).
// A partition that an import refilled meanwhile is kept.
func (s *Store) DeleteEventsBefore(ctx context.Context, t time.Time) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	cut := dbTime(t)
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		n, err = deleteBefore(ctx, tx, cut)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("cannot delete events: %w", err)
	}
	if err := s.dropEmptyPartitions(ctx, dayOf(cut)); err != nil {
		// The events are deleted; only empty tables are left over.
		s.log.Warn("Retention could not drop emptied partitions; a later run will", "error", err)
	}
	return n, nil
}

// oldPartitions returns the partitions of days before cutDay, in day
// order, and the name of cutDay's partition if it exists.
func oldPartitions(ctx context.Context, tx pgx.Tx, cutDay int64) (old []string, current string, err error) {
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass`)
	if err != nil {
		return nil, "", err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, "", err
	}
	for _, name := range names {
		switch d, ok := partitionDay(name); {
		case !ok:
		case d < cutDay:
			old = append(old, name)
		case d == cutDay:
			current = name
		}
	}
	slices.Sort(old) // events_pYYYYMMDD: name order is day order
	return old, current, nil
}

func deleteBefore(ctx context.Context, tx pgx.Tx, cut time.Time) (int64, error) {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1), pg_advisory_xact_lock($2)", retentionLockKey, ddlLockKey); err != nil {
		return 0, err
	}
	cutDay := dayOf(cut)
	dayStart := dayTime(cutDay)
	old, current, err := oldPartitions(ctx, tx, cutDay)
	if err != nil {
		return 0, err
	}
	boundary := ""
	if current != "" && cut.After(dayStart) {
		boundary = current
	}
	lock := slices.Clone(old)
	if boundary != "" {
		lock = append(lock, boundary)
	}
	if len(lock) == 0 {
		return 0, nil
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(lock, ", ")+" IN SHARE MODE"); err != nil {
		return 0, err
	}
	var n int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM events WHERE received_time < $1", cut).Scan(&n); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	retract, err := retraction(ctx, tx, cut, dayStart)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, "DELETE FROM event_ids WHERE received_time < $1", cut); err != nil {
		return 0, err
	}
	if boundary != "" {
		if _, err := tx.Exec(ctx, "DELETE FROM "+boundary+" WHERE received_time < $1", cut); err != nil {
			return 0, err
		}
	}
	if len(old) > 0 {
		if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(old, ", ")); err != nil {
			return 0, err
		}
	}
	if err := applyRetraction(ctx, tx, retract, dayStart, boundary != ""); err != nil {
		return 0, err
	}
	// Events were removed: every statistics memo entry of every node is
	// void from this commit on (memo.go).
	if _, err := tx.Exec(ctx, "UPDATE stats_epoch SET epoch = epoch + 1"); err != nil {
		return 0, err
	}
	return n, nil
}

// dropEmptyPartitions drops the empty partitions of days before cutDay.
func (s *Store) dropEmptyPartitions(ctx context.Context, cutDay int64) error {
	var dropped []int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		dropped = dropped[:0]
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", ddlLockKey); err != nil {
			return err
		}
		old, _, err := oldPartitions(ctx, tx, cutDay)
		if err != nil || len(old) == 0 {
			return err
		}
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+dropLockTimeout+"'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE events IN ACCESS EXCLUSIVE MODE"); err != nil {
			return err
		}
		for _, name := range old {
			var filled bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM "+name+")").Scan(&filled); err != nil {
				return err
			}
			if filled {
				continue
			}
			if _, err := tx.Exec(ctx, "DROP TABLE "+name); err != nil {
				return err
			}
			d, _ := partitionDay(name)
			dropped = append(dropped, d)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Dropped partitions must be created again if old events arrive.
	for _, d := range dropped {
		s.parts.Delete(d)
	}
	return nil
}
