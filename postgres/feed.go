package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/peba-go/peba"
)

// FeedChannel is the NOTIFY channel of the cross-node live feed. Each
// AppendEvents transaction that inserts events adds one live_feed row, and
// after its commit notifies FeedChannel with the row's seq as decimal text
// (notifyFeed says why not in the transaction): listeners read the row
// (SELECT events FROM live_feed WHERE seq = $1, a bytea) and decode it with
// DecodeFeed. A committed row is there even if the node died right after
// the commit, before notifying; listeners that also sweep the rows created
// recently for seqs they did not see (package pgfeed) see every committed
// event exactly once.
const FeedChannel = "peba_live_feed"

// encodeFeed returns the live_feed.events value of the inserted events, in
// format 1 (feedcodec.go): every field but Payload.
func encodeFeed(inserted []peba.Event) []byte {
	return appendFeed(make([]byte, 0, 256*len(inserted)), inserted)
}

// DecodeFeed decodes a live_feed.events value into the events that one
// AppendEvents call inserted, in input order, with Payload nil: format 1,
// or the JSON array of the first encoding (rows written before migration
// 0003 and not yet pruned).
func DecodeFeed(b []byte) ([]peba.Event, error) {
	if len(b) >= 2 && b[0] == feedFormat1[0] && b[1] == feedFormat1[1] {
		return decodeFeed1(b[2:])
	}
	if len(b) > 0 && b[0] == '[' {
		var evs []peba.Event
		if err := json.Unmarshal(b, &evs); err != nil {
			return nil, fmt.Errorf("cannot decode live feed: %w", err)
		}
		return evs, nil
	}
	return nil, errors.New("cannot decode live feed: unknown format")
}

// PruneFeed deletes the live feed rows created before before (database
// time) and returns how many it deleted. Listeners only need rows for as
// long as they may lag behind; the cluster runs this periodically.
func (s *Store) PruneFeed(ctx context.Context, before time.Time) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, "DELETE FROM live_feed WHERE created < $1", before)
	if err != nil {
		return 0, fmt.Errorf("cannot prune live feed: %w", err)
	}
	return tag.RowsAffected(), nil
}
