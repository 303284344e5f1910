package peba

import (
	"cmp"
	"context"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Stats answers the statistics endpoints (PEBA's /alert/*, later the SecKC
// and dashboard APIs). Both stores implement it; storetest checks them
// against the same expectations. The methods are few and generic on purpose:
// every endpoint is a Count, a Top, a Series or a Latest over a Window, plus
// the sensor grouping TpotStats needs. Implementations may answer from
// rollup tables, but results must equal what the raw events give.
type Stats interface {
	// Count returns the number of events in w.
	Count(ctx context.Context, w Window) (int64, error)
	// Top returns the most frequent values of dim in w, by count descending,
	// then key ascending (byte order: port "2222" before "445"); limit <= 0
	// means all.
	Top(ctx context.Context, w Window, dim Dim, limit int) ([]Bucket, error)
	// Series counts the events of w per time bucket of the given width
	// (aligned to UTC midnight; widths of 1h, 6h, 24h), by dim's values when
	// keys is non-empty (only those keys), or in total when dim is DimNone.
	// Buckets without events are omitted; callers fill gaps. A dim other than
	// DimNone with no keys gives no points. Points are ordered by Start, Key.
	Series(ctx context.Context, w Window, width time.Duration, dim Dim, keys []string) ([]Point, error)
	// Latest returns up to limit events of w, newest first by w's time
	// field, then by ID; if src is valid, only events from that source
	// address. limit <= 0 gives nothing; callers bound limit.
	Latest(ctx context.Context, w Window, src netip.Addr, limit int) ([]Event, error)
	// Sensors groups the events of w by sensor, for TpotStats (peba.md §7.1),
	// ordered by (Hostname, TargetIP).
	Sensors(ctx context.Context, w Window) ([]SensorGroup, error)
}

// BriefLatester is implemented by stores in which reading a few fields of
// an event costs much less than reading all of them (a column store).
// LatestBrief answers as Stats.Latest does (the same events, in the same
// order), but only ID, Domain, ReceivedTime, CreateTime, PeerType, SrcIP,
// Dst.Country and URL are sure to be filled; the others may be zero.
// querySingleIP prints no more.
type BriefLatester interface {
	LatestBrief(ctx context.Context, w Window, src netip.Addr, limit int) ([]Event, error)
}

// TimeField selects which time of an event a Window filters on. PEBA's
// endpoints differ (peba.md §3): most use recievedTime, a few createTime.
type TimeField uint8

const (
	Received TimeField = iota // ReceivedTime (PEBA recievedTime)
	Created                   // CreateTime
)

// Window selects events: [From, To) on Field, in Domains, optionally of one
// peer type. A zero From or To is unbounded. Empty Domains means none: a
// caller must say which domains it may show.
type Window struct {
	Domains  []Domain
	Field    TimeField
	From, To time.Time
	PeerType string // "" = all types
}

// Dim is a dimension events are grouped by.
type Dim uint8

const (
	DimNone        Dim = iota
	DimPeerType        // Bucket.Key = peer type
	DimSrcIP           // Key = source address text
	DimSrcCountry      // Key = source ISO code, Label = country name
	DimDstCountry      // Key = target ISO code, Label = country name
	DimSrcLocation     // Key = "<lat>,<lon>" of the source, floats in Go's shortest form (strconv 'g', -1); callers reformat
	DimDstLocation     // Key = "<lat>,<lon>" of the target
	DimURL             // Key = originalRequestString
	DimDstPort         // Key = target port as decimal text ("" for none)
)

// Bucket is one group of a Top result.
type Bucket struct {
	Key   string
	Label string // a display name where the dimension has one (country names)
	Count int64
}

// CompareBuckets orders buckets as Stats.Top returns them: by Count
// descending, then by Key ascending (byte order).
func CompareBuckets(a, b Bucket) int {
	return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Key, b.Key))
}

// Point is one bucket of a Series.
type Point struct {
	Start time.Time // UTC start of the time bucket
	Key   string    // dim value, "" for DimNone
	Count int64
}

// SensorGroup is one T-Pot installation as TpotStats counts them: events with
// a hostname are grouped by hostname (T-Pot >= 17.10); events whose hostname
// is PEBA's "undefined" default (or empty) are grouped by target address
// (older T-Pots).
type SensorGroup struct {
	Hostname  string // "" when grouped by target address
	TargetIP  string // set when Hostname is ""
	PeerIdent []string
	PeerType  []string
	Count     int64
}

// SourceLister lists the source addresses of a window with their counts:
// the data of IP blocklists (http/exportapi). Both stores implement it;
// storetest.RunSources checks them against the same expectations.
type SourceLister interface {
	// Sources returns the distinct valid source addresses of the events in
	// w, with at least q.MinCount events each, ordered by Count descending,
	// then by Addr ascending (netip.Addr.Compare: IPv4 before IPv6,
	// numerically). With q.GlobalOnly, addresses that are not IsGlobal are
	// left out before q.Limit applies. q.Limit <= 0 means all.
	Sources(ctx context.Context, w Window, q SourceQuery) ([]Source, error)
}

// SourceQuery narrows a Sources answer.
type SourceQuery struct {
	MinCount   int64 // <= 1 keeps every address
	GlobalOnly bool  // leave out private, reserved and shared (CGNAT) addresses
	Limit      int   // the first Limit in Sources order; <= 0 = all
}

// Source is one source address of a Sources answer.
type Source struct {
	Addr  netip.Addr
	Count int64 // events in the window
	// First and Last are the earliest and latest time (of the window's
	// Field) of its events in the window, UTC.
	First, Last time.Time
}

// SortSourcesByAddr sorts srcs by Addr ascending (netip.Addr.Compare
// order; equal addresses keep their order). It is the tie-break of
// SourceLister.Sources and the order of plain-text blocklists, made cheap
// for the long lists those are: IPv4 addresses, the bulk, are sorted as
// integers without a comparison function, and the elements are then moved
// into place once each (a 56,000-address list sorts in a few milliseconds
// instead of tens).
func SortSourcesByAddr(srcs []Source) {
	if len(srcs) < 2 || uint64(len(srcs)) > math.MaxUint32 {
		slices.SortStableFunc(srcs, func(a, b Source) int { return a.Addr.Compare(b.Addr) })
		return
	}
	// key: the IPv4 address in the high 32 bits, the index in the low 32.
	keys := make([]uint64, 0, len(srcs))
	var others []int
	for i, s := range srcs {
		if s.Addr.Is4() {
			b := s.Addr.As4()
			a := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
			keys = append(keys, a<<32|uint64(i))
		} else {
			others = append(others, i)
		}
	}
	slices.Sort(keys)
	slices.SortStableFunc(others, func(a, b int) int { return srcs[a].Addr.Compare(srcs[b].Addr) })
	// order[i] is the index of the element that belongs at i: invalid
	// addresses (none in a Sources answer) first in Compare order, then
	// IPv4, then IPv6.
	nInvalid := 0
	for nInvalid < len(others) && !srcs[others[nInvalid]].Addr.IsValid() {
		nInvalid++
	}
	order := make([]uint32, 0, len(srcs))
	for _, i := range others[:nInvalid] {
		order = append(order, uint32(i))
	}
	for _, k := range keys {
		order = append(order, uint32(k))
	}
	for _, i := range others[nInvalid:] {
		order = append(order, uint32(i))
	}
	// Apply the permutation in place, one cycle at a time; done marks the
	// positions filled.
	done := make([]bool, len(srcs))
	for start := range srcs {
		if done[start] || int(order[start]) == start {
			continue
		}
		tmp := srcs[start]
		j := start
		for {
			k := int(order[j])
			done[j] = true
			if k == start {
				srcs[j] = tmp
				break
			}
			srcs[j] = srcs[k]
			j = k
		}
	}
}
