package peba

import (
	"context"
	"net/netip"
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
