package duckdb

import (
	"bytes"
	"slices"
	"strconv"
	"sync"

	"github.com/peba-go/peba"
)

// The decoded sensor summaries (sensorsum.go). Decoding a day's summary
// (600 groups with their identifiers and types on the benchmark data) and
// merging the two domains' groups cost about as much CPU as the statement
// that reads the summaries (getStats and TpotStats of today, which is
// open, so the closed-bucket memo does not keep it). The store keeps the
// last decoded summary of each day and domain together with its bytes, and
// uses it only when the bytes read are equal: so it is exact whatever
// wrote the table, and needs no invalidation. The merged groups of the
// summaries of one window are kept with the summaries they came from.
//
// Under ingest, today's summary is stale (its day's total moved on) and
// recounted on every read: the decoded groups are still reused (the row
// did not change), the counts are summed into a copy, and the merge is
// done again.

// sensorCacheDays bounds the kept summaries (days and domains) and merged
// windows; a few MB at most on the benchmark data.
const sensorCacheDays = 64

type sensorCache struct {
	mu     sync.Mutex
	dec    map[dayDomain]*decodedSummary
	merged map[string]*mergedSensors
}

// decodedSummary is one summary's bytes and its decoded groups, which are
// shared: never modified (callers clone before changing counts or order).
type decodedSummary struct {
	blob   []byte
	groups []peba.SensorGroup
}

// mergedSensors is Sensors of a window merged from the summaries of its
// days and domains, which were from.
type mergedSensors struct {
	from []*decodedSummary
	out  []peba.SensorGroup // shared, as decodedSummary.groups
}

// decodeSummary returns the groups of a summary's bytes from the cache if
// the same bytes were decoded last for the day and domain, and decodes
// and keeps them otherwise. The groups are shared: clone before change.
func (c *sensorCache) decodeSummary(k dayDomain, blob []byte) (*decodedSummary, error) {
	c.mu.Lock()
	d := c.dec[k]
	c.mu.Unlock()
	if d != nil && bytes.Equal(d.blob, blob) {
		return d, nil
	}
	groups, err := decodeSensorGroups(blob)
	if err != nil {
		return nil, err
	}
	d = &decodedSummary{blob: blob, groups: groups}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dec == nil || len(c.dec) >= sensorCacheDays {
		c.dec = map[dayDomain]*decodedSummary{}
	}
	c.dec[k] = d
	return d, nil
}

// mergedKey names a window's list of summaries.
func mergedKey(ds []daySensors) string {
	b := make([]byte, 0, 24*len(ds))
	for _, d := range ds {
		b = strconv.AppendInt(b, d.day, 10)
		b = strconv.AppendBool(b, d.community)
		b = append(b, ';')
	}
	return string(b)
}

// merge returns mergeSensors of the groups of ds, from the cache if the
// same decoded summaries were merged before. Every element of ds must
// carry its unchanged decoded summary (daySensors.dec); otherwise it
// merges without the cache.
func (c *sensorCache) merge(ds []daySensors) []peba.SensorGroup {
	from := make([]*decodedSummary, len(ds))
	for i, d := range ds {
		if d.dec == nil {
			return mergeSensors(sensorLists(ds))
		}
		from[i] = d.dec
	}
	key := mergedKey(ds)
	c.mu.Lock()
	m := c.merged[key]
	c.mu.Unlock()
	if m != nil && slices.Equal(m.from, from) {
		return slices.Clone(m.out)
	}
	out := mergeSensors(sensorLists(ds))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.merged == nil || len(c.merged) >= sensorCacheDays {
		c.merged = map[string]*mergedSensors{}
	}
	c.merged[key] = &mergedSensors{from: from, out: slices.Clone(out)}
	return out
}

// sensorLists returns the groups of ds, each list a copy that
// mergeSensors may reorder.
func sensorLists(ds []daySensors) [][]peba.SensorGroup {
	lists := make([][]peba.SensorGroup, len(ds))
	for i, d := range ds {
		lists[i] = slices.Clone(d.groups)
	}
	return lists
}
