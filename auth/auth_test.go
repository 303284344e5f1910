package auth

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// users is an in-memory UserFinder that counts calls. It follows the
// consumer-side contract: peba.ErrNotFound for an unknown name.
type users struct {
	mu    sync.Mutex
	m     map[string]peba.User
	err   error
	calls atomic.Int64
}

func (s *users) FindUser(_ context.Context, name string) (*peba.User, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	u, ok := s.m[name]
	if !ok {
		return nil, peba.ErrNotFound
	}
	return &u, nil
}

func (s *users) set(u peba.User) {
	s.mu.Lock()
	s.m[u.Name] = u
	s.mu.Unlock()
}

// mustHash hashes with cheap argon2id parameters (64 KiB, 1 pass) so the
// tests stay fast under -race; VerifyToken reads them from the string.
func mustHash(t testing.TB, token string) string {
	t.Helper()
	h, err := hashToken(token, 64, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var community = Credentials{User: "community-01-user", Token: "foth{a5maiCee8fineu7"}

func newTestAuth(t testing.TB, opt Options) (*Authenticator, *users) {
	t.Helper()
	sha := sha512.Sum512([]byte("legacy-token"))
	s := &users{m: map[string]peba.User{
		"alice":  {Name: "alice", TokenHash: mustHash(t, "alice-token"), CommunityOnly: true},
		"legacy": {Name: "legacy", TokenHash: hex.EncodeToString(sha[:]), GetOnly: true},
	}}
	return New(community, s, opt), s
}

func wantUnauthorized(t *testing.T, err error) {
	t.Helper()
	if peba.ErrorCode(err) != peba.EUNAUTHORIZED {
		t.Errorf("error %v has code %q, want %q", err, peba.ErrorCode(err), peba.EUNAUTHORIZED)
	}
}

func TestAuthenticate(t *testing.T) {
	a, s := newTestAuth(t, Options{})
	ctx := context.Background()

	p, err := a.Authenticate(ctx, community.User, community.Token)
	if err != nil || p.Domain != peba.DomainCommunity || p.User != nil || p.Name != community.User {
		t.Errorf("community: %+v, %v", p, err)
	}
	if s.calls.Load() != 0 {
		t.Error("community credentials consulted the store")
	}

	p, err = a.Authenticate(ctx, "alice", "alice-token")
	if err != nil || p.Domain != peba.DomainPrivate || p.Name != "alice" || p.User == nil || !p.User.CommunityOnly {
		t.Errorf("alice: %+v, %v", p, err)
	}
	p, err = a.Authenticate(ctx, "legacy", "legacy-token")
	if err != nil || p.Domain != peba.DomainPrivate || p.User == nil || !p.User.GetOnly {
		t.Errorf("legacy: %+v, %v", p, err)
	}

	for _, c := range []Credentials{
		{community.User, community.Token + "x"},
		{community.User, ""},
		{"", community.Token},
		{"alice", "wrong"},
		{"alice", ""},
		{"alice", community.Token},
		{"nobody", "alice-token"},
		{"alice", string(make([]byte, MaxTokenLen+1))},
	} {
		_, err := a.Authenticate(ctx, c.User, c.Token)
		wantUnauthorized(t, err)
	}
}

func TestEmptyCommunityDisabled(t *testing.T) {
	a := New(Credentials{}, &users{m: map[string]peba.User{}}, Options{})
	_, err := a.Authenticate(context.Background(), "", "")
	wantUnauthorized(t, err)
	_, err = a.Authenticate(context.Background(), "x", "y")
	wantUnauthorized(t, err)
}

func TestStoreOutageIsNotUnauthorized(t *testing.T) {
	a, s := newTestAuth(t, Options{})
	outage := errors.New("connection refused")
	s.err = outage
	_, err := a.Authenticate(context.Background(), "alice", "alice-token")
	if !errors.Is(err, outage) || peba.ErrorCode(err) == peba.EUNAUTHORIZED {
		t.Errorf("store outage gave %v (code %q), want the wrapped store error", err, peba.ErrorCode(err))
	}
	s.err = peba.ErrUnavailable
	_, err = a.Authenticate(context.Background(), "alice", "alice-token")
	if peba.ErrorCode(err) != peba.EUNAVAILABLE {
		t.Errorf("got code %q, want %q", peba.ErrorCode(err), peba.EUNAVAILABLE)
	}
}

func TestCache(t *testing.T) {
	now := time.Unix(1700000000, 0)
	a, s := newTestAuth(t, Options{CacheTTL: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	auth := func(token string) error {
		_, err := a.Authenticate(ctx, "alice", token)
		return err
	}
	if err := auth("alice-token"); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if err := auth("alice-token"); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.calls.Load(); n != 1 {
		t.Errorf("store called %d times for 101 checks, want 1", n)
	}

	// A wrong token is not served from the cache, and asks the store.
	wantUnauthorized(t, auth("wrong"))
	if n := s.calls.Load(); n != 2 {
		t.Errorf("store calls = %d, want 2", n)
	}

	// Token change: without Invalidate the old token works until the TTL,
	// the new one works at once (B-5: a cache mismatch re-checks the store).
	s.set(peba.User{Name: "alice", TokenHash: mustHash(t, "new-token")})
	if err := auth("new-token"); err != nil {
		t.Errorf("new token rejected before Invalidate: %v", err)
	}
	a.Invalidate("alice")
	wantUnauthorized(t, auth("alice-token"))
	if err := auth("new-token"); err != nil {
		t.Errorf("new token after Invalidate: %v", err)
	}

	// Expiry.
	n := s.calls.Load()
	now = now.Add(time.Minute)
	if err := auth("new-token"); err != nil {
		t.Fatal(err)
	}
	if s.calls.Load() != n+1 {
		t.Error("expired entry served without asking the store")
	}

	// Callers may modify the returned user without touching the cache.
	p, _ := a.Authenticate(ctx, "alice", "new-token")
	p.User.GetOnly = true
	p, _ = a.Authenticate(ctx, "alice", "new-token")
	if p.User.GetOnly {
		t.Error("cached user was modified through a returned Principal")
	}
}

func TestCacheBounded(t *testing.T) {
	s := &users{m: map[string]peba.User{}}
	sum := sha512.Sum512([]byte("t"))
	for _, n := range []string{"a", "b", "c", "d"} {
		s.set(peba.User{Name: n, TokenHash: hex.EncodeToString(sum[:])})
	}
	a := New(community, s, Options{CacheSize: 2})
	for _, n := range []string{"a", "b", "c", "d"} {
		if _, err := a.Authenticate(context.Background(), n, "t"); err != nil {
			t.Fatal(err)
		}
	}
	if len(a.cache) > 2 {
		t.Errorf("cache holds %d entries, bound is 2", len(a.cache))
	}
}

// TestInvalidateDuringCheck: a check that read the store before an
// Invalidate must not cache the old user.
func TestInvalidateDuringCheck(t *testing.T) {
	sum := sha512.Sum512([]byte("old"))
	s := &users{m: map[string]peba.User{"u": {Name: "u", TokenHash: hex.EncodeToString(sum[:])}}}
	a := New(community, s, Options{})
	gen := a.gen
	a.Invalidate("u")
	a.remember(gen, "u", [32]byte{}, peba.User{Name: "u"})
	if _, ok := a.cache["u"]; ok {
		t.Error("stale check was cached after Invalidate")
	}
}

func TestConcurrent(t *testing.T) {
	a, s := newTestAuth(t, Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				switch (i + j) % 4 {
				case 0:
					if _, err := a.Authenticate(context.Background(), "alice", "alice-token"); err != nil {
						t.Error(err)
					}
				case 1:
					_, err := a.Authenticate(context.Background(), "alice", "wrong")
					wantUnauthorized(t, err)
				case 2:
					a.Invalidate("alice")
				case 3:
					if _, err := a.Authenticate(context.Background(), community.User, community.Token); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if s.calls.Load() == 0 {
		t.Error("store never consulted")
	}
}

func TestCanceledContext(t *testing.T) {
	a, _ := newTestAuth(t, Options{})
	// Fill the verification slots so the check must wait.
	for range cap(a.verify) {
		a.verify <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.Authenticate(ctx, "alice", "alice-token")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}
