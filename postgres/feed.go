package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/peba-go/peba"
)

// FeedChannel is the NOTIFY channel of the cross-node live feed. Each
// AppendEvents transaction that inserts events adds one live_feed row and
// notifies FeedChannel with the row's seq as decimal text, in the same
// transaction: listeners read the row (SELECT events FROM live_feed WHERE
// seq = $1) and decode it with DecodeFeed. A NOTIFY is delivered only after
// the commit, and a committed row is there even if the node died right
// after the commit, so a listener that also reads the rows it missed (by
// seq) sees every committed event exactly once.
const FeedChannel = "peba_live_feed"

// encodeFeed returns the live_feed.events value of the inserted events:
// the encoding/json form of []peba.Event with Payload nil. Non-finite
// coordinates, which peba.ValidateEvent lets through but encoding/json
// refuses, become 0 in the feed (the stored event keeps them), so that
// every storable batch reaches the feed.
func encodeFeed(inserted []peba.Event) ([]byte, error) {
	evs := make([]peba.Event, len(inserted))
	for i := range inserted {
		e := inserted[i]
		e.Payload = nil
		for _, f := range []*float64{&e.Src.Lat, &e.Src.Lon, &e.Dst.Lat, &e.Dst.Lon} {
			if math.IsNaN(*f) || math.IsInf(*f, 0) {
				*f = 0
			}
		}
		evs[i] = e
	}
	b, err := json.Marshal(evs)
	if err != nil {
		return nil, fmt.Errorf("cannot encode live feed: %w", err)
	}
	return b, nil
}

// DecodeFeed decodes a live_feed.events value into the events that one
// AppendEvents call inserted, in input order, with Payload nil.
func DecodeFeed(b []byte) ([]peba.Event, error) {
	var evs []peba.Event
	if err := json.Unmarshal(b, &evs); err != nil {
		return nil, fmt.Errorf("cannot decode live feed: %w", err)
	}
	return evs, nil
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
