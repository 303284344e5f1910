package duckdb

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

// newestRecent returns, in storedForm, the events of inserted that the
// cache of the newest events (recent.go) can keep: those received at or
// after lo, and of those only the recentMax newest in latestOrder, since
// the cache keeps no more. It returns the cache's new lo: if events were
// left out, lo moves past the newest of them, so that the cache still
// holds every stored event received at or after lo.
//
// Without the cut, an apply of 10,000 events sorted 12,000 events (copies
// of the whole struct per comparison): 5.6 µs of CPU per applied event.
func newestRecent(inserted []peba.Event, lo time.Time) ([]peba.Event, time.Time) {
	type key struct {
		us int64 // stored received time
		i  int
	}
	keys := make([]key, 0, len(inserted))
	loUS := lo.UnixMicro()
	for i := range inserted {
		if us := dbTime(inserted[i].ReceivedTime).UnixMicro(); us >= loUS {
			keys = append(keys, key{us, i})
		}
	}
	if len(keys) > recentMax {
		// latestOrder on the stored times, computed once per event.
		slices.SortFunc(keys, func(a, b key) int {
			if c := cmp.Compare(b.us, a.us); c != 0 {
				return c
			}
			return strings.Compare(inserted[a.i].ID, inserted[b.i].ID)
		})
		if t := time.UnixMicro(keys[recentMax].us + 1).UTC(); t.After(lo) {
			lo = t
		}
		keys = keys[:recentMax]
	}
	out := make([]peba.Event, 0, len(keys))
	for _, k := range keys {
		if e := storedForm(inserted[k.i]); !e.ReceivedTime.Before(lo) {
			out = append(out, e)
		}
	}
	return out, lo
}
