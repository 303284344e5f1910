package postgres

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// TestByCount checks both of byCount's ways (counting sort for small
// counts, comparison sort past them) against a stable sort by count.
func TestByCount(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, maxN := range []int64{1, 3, 50, 100_000} {
		for _, size := range []int{1, 2, 10, 3000} {
			sums := make([]keyRow, size)
			for i := range sums {
				sums[i] = keyRow{n: 1 + r.Int64N(maxN), rank: int32(i)}
			}
			if maxN == 100_000 {
				sums[size-1].n = 100_000 // past the counting sort's bound
			}
			want := slices.Clone(sums)
			slices.SortStableFunc(want, func(a, b keyRow) int { return int(b.n - a.n) })
			if got := byCount(slices.Clone(sums)); !reflect.DeepEqual(got, want) {
				t.Fatalf("byCount of %d keys with counts up to %d: wrong order", size, maxN)
			}
		}
	}
}
