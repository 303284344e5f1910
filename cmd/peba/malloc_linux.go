//go:build linux && cgo

package main

/*
#include <malloc.h>
#include <stdlib.h>

// second_alloc_mmapped reports whether malloc serves an n-byte block by
// mmap after such a block was freed (TestServeMallocMmapThreshold).
// The pointers are volatile: the compiler may drop a malloc whose block is
// only freed.
static int second_alloc_mmapped(size_t n) {
	void *volatile p = malloc(n);
	free(p);
	struct mallinfo2 before = mallinfo2();
	p = malloc(n);
	struct mallinfo2 after = mallinfo2();
	free(p);
	return after.hblks > before.hblks;
}
*/
import "C"

// setMallocMmapThreshold fixes glibc's mmap threshold at n bytes, and
// reports whether glibc took it.
func setMallocMmapThreshold(n int) bool {
	return C.mallopt(C.M_MMAP_THRESHOLD, C.int(n)) == 1
}

func secondAllocMmapped(n int) bool { return C.second_alloc_mmapped(C.size_t(n)) == 1 }
