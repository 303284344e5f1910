//go:build !linux || !cgo

package main

func setMallocMmapThreshold(int) bool { return false }

func secondAllocMmapped(int) bool { return false }
