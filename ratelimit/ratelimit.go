// Package ratelimit holds keyed token buckets for the ingest abuse limits:
// the community credentials are public (they ship with every T-Pot), so
// anyone can post into the community domain, and limits per source address,
// per user and per sensor keep one abuser from flooding the store
// (issue 7, "Abuse of the public community credentials").
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Limiter is a set of token buckets, one per key, each holding at most
// Burst tokens and refilled at Rate tokens per second. It keeps at most
// MaxKeys buckets, so a flood of distinct keys (spoofed sensor names, IPv6
// addresses) cannot grow memory without bound. Safe for concurrent use.
type Limiter struct {
	rate, burst float64
	maxKeys     int
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter refilling rate tokens per second up to burst per
// key (burst < 1 is taken as 1), keeping at most maxKeys keys. now is the
// clock (time.Now if nil). New returns nil when rate <= 0: a nil *Limiter
// allows everything, so "limit off" needs no special case at call sites.
func New(rate float64, burst, maxKeys int, now func() time.Time) *Limiter {
	if rate <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{rate: rate, burst: math.Max(1, float64(burst)), maxKeys: max(1, maxKeys), now: now, buckets: map[string]*bucket{}}
}

// Take removes n tokens from key's bucket and returns 0, or takes nothing
// and returns how long the caller should wait before trying again. A
// request larger than the burst is let through when the bucket is full and
// leaves it in debt (tokens below zero), so one big batch cannot be refused
// forever but still pays for its size before the next one.
func (l *Limiter) Take(key string, n int) time.Duration {
	if l == nil || n <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.fill(key)
	need := math.Min(float64(n), l.burst)
	if b.tokens < need {
		return l.wait(need - b.tokens)
	}
	b.tokens -= float64(n)
	return 0
}

// Wait returns how long key's bucket is still in debt (0 when it holds a
// token), without taking anything: a cheap check before reading a body.
func (l *Limiter) Wait(key string) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return 0
	}
	l.refill(b)
	if b.tokens >= 1 {
		return 0
	}
	return l.wait(1 - b.tokens)
}

// Refund gives n tokens back to key's bucket (a later limit refused the
// request that Take charged for).
func (l *Limiter) Refund(key string, n int) {
	if l == nil || n <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[key]; ok {
		b.tokens = math.Min(l.burst, b.tokens+float64(n))
	}
}

// Len returns the number of keys held.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

func (l *Limiter) wait(deficit float64) time.Duration {
	return time.Duration(math.Ceil(deficit / l.rate * float64(time.Second)))
}

func (l *Limiter) refill(b *bucket) {
	now := l.now()
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.rate)
	}
	b.last = now
}

// fill returns key's bucket, refilled to now, creating a full one.
func (l *Limiter) fill(key string) *bucket {
	if b, ok := l.buckets[key]; ok {
		l.refill(b)
		return b
	}
	if len(l.buckets) >= l.maxKeys {
		l.shrink()
	}
	b := &bucket{tokens: l.burst, last: l.now()}
	l.buckets[key] = b
	return b
}

// shrink makes room: first it drops buckets that have refilled completely
// (forgetting them changes nothing); if that frees less than a quarter,
// it drops arbitrary buckets (Go's map order) down to three quarters. That
// hands a flooder of distinct keys fresh buckets, which is the price of
// bounded memory; the per-address limit keys on /64 for IPv6 so one host
// cannot cheaply mint keys.
func (l *Limiter) shrink() {
	now := l.now()
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	target := l.maxKeys * 3 / 4
	for k := range l.buckets {
		if len(l.buckets) <= target {
			break
		}
		delete(l.buckets, k)
	}
}
