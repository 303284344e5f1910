package duckdb

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/peba-go/peba"
)

// TestTopN compares topN's selection with sorting everything and cutting.
func TestTopN(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for round := range 500 {
		n := r.IntN(200)
		var all []peba.Bucket
		for i := range n {
			all = append(all, peba.Bucket{Key: "k" + strconv.Itoa(i), Count: r.Int64N(7) - 2}) // ties, zeros, negatives
		}
		limit := r.IntN(12) - 1
		top := newTopN(limit)
		for _, b := range all {
			top.add(b)
		}
		var want []peba.Bucket
		for _, b := range all {
			if b.Count != 0 {
				want = append(want, b)
			}
		}
		slices.SortFunc(want, peba.CompareBuckets)
		if limit > 0 && len(want) > limit {
			want = want[:limit]
		}
		if got := top.result(); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d, limit %d: got %v, want %v", round, limit, got, want)
		}
	}
}
