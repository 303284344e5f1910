package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/peba-go/peba"
)

// Limits on presented credentials. Longer values are rejected before any
// store lookup or hashing; real usernames and tokens are far shorter.
const (
	MaxUserLen  = 256
	MaxTokenLen = 1024
)

// Defaults for Options.
const (
	DefaultCacheTTL  = 5 * time.Minute
	DefaultCacheSize = 10000
)

// Credentials are a username and its plain token.
type Credentials struct {
	User, Token string
}

// UserFinder finds a registered user by exact name. It returns an error
// whose peba.ErrorCode is peba.ENOTFOUND when there is no such user.
// peba.Store satisfies it.
type UserFinder interface {
	FindUser(ctx context.Context, name string) (*peba.User, error)
}

// Principal is an authenticated caller.
type Principal struct {
	Name   string
	Domain peba.Domain // DomainCommunity for the community credentials, else DomainPrivate
	// User is the registered user (a copy the caller may keep), nil for the
	// community credentials. Its GetOnly and CommunityOnly flags are for the
	// caller to enforce (B-6).
	User *peba.User
}

// Options tune an Authenticator. Zero values mean the defaults.
type Options struct {
	// CacheTTL is how long a successful token check is remembered, so that
	// repeated posts skip the store and the slow hash. Negative disables the
	// cache. A token change or user deletion is seen at the latest after
	// CacheTTL, at once if the caller calls Invalidate.
	CacheTTL time.Duration
	// CacheSize bounds the number of remembered users.
	CacheSize int
	// Now is the clock, time.Now if nil.
	Now func() time.Time
}

// Authenticator decides who a caller is (peba.md §4.1 domain decision, with
// the fixes B-5 and B-6). It is safe for concurrent use.
type Authenticator struct {
	communityUser, communityToken [sha256.Size]byte
	communityOK                   bool
	users                         UserFinder
	ttl                           time.Duration
	size                          int
	now                           func() time.Time

	// verify bounds concurrent slow hash checks: each argon2id check holds
	// ~19 MiB, and a flood of wrong tokens must not exhaust memory.
	verify chan struct{}

	mu    sync.Mutex
	cache map[string]cacheEntry
	// gen counts Invalidate calls. A check that read the store before an
	// Invalidate must not cache what it read: the user may have changed.
	gen uint64
}

// cacheEntry remembers one successful check: the sha256 of the token (never
// the token itself) and the user as the store returned it.
type cacheEntry struct {
	tokenSum [sha256.Size]byte
	user     peba.User
	expires  time.Time
}

var errUnauthorized = &peba.Error{Code: peba.EUNAUTHORIZED, Message: "invalid credentials"}

// New returns an Authenticator. Community credentials with an empty User or
// Token disable the community path (an empty login must never be accepted).
func New(community Credentials, users UserFinder, opt Options) *Authenticator {
	a := &Authenticator{
		communityOK: community.User != "" && community.Token != "",
		users:       users,
		ttl:         opt.CacheTTL,
		size:        opt.CacheSize,
		now:         opt.Now,
		verify:      make(chan struct{}, runtime.GOMAXPROCS(0)),
		cache:       make(map[string]cacheEntry),
	}
	// Comparing fixed-size digests keeps the comparison constant-time even
	// in the length of the secret.
	a.communityUser = sha256.Sum256([]byte(community.User))
	a.communityToken = sha256.Sum256([]byte(community.Token))
	if a.ttl == 0 {
		a.ttl = DefaultCacheTTL
	}
	if a.size <= 0 {
		a.size = DefaultCacheSize
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
}

// Authenticate checks user and token:
//  1. the community credentials (both compared in constant time) give a
//     DomainCommunity principal;
//  2. otherwise a registered user whose stored verifier matches token gives a
//     DomainPrivate principal;
//  3. otherwise the error is a *peba.Error with code peba.EUNAUTHORIZED.
//
// A store failure other than "not found" is returned wrapped (its
// peba.ErrorCode is not EUNAUTHORIZED), so the caller can answer 503 and log
// the outage instead of blaming the credentials.
func (a *Authenticator) Authenticate(ctx context.Context, user, token string) (Principal, error) {
	if user == "" || token == "" || len(user) > MaxUserLen || len(token) > MaxTokenLen {
		return Principal{}, errUnauthorized
	}
	userSum := sha256.Sum256([]byte(user))
	tokenSum := sha256.Sum256([]byte(token))
	if a.communityOK &&
		subtle.ConstantTimeCompare(userSum[:], a.communityUser[:])&
			subtle.ConstantTimeCompare(tokenSum[:], a.communityToken[:]) == 1 {
		return Principal{Name: user, Domain: peba.DomainCommunity}, nil
	}
	if u, ok := a.cached(user, tokenSum); ok {
		return Principal{Name: u.Name, Domain: peba.DomainPrivate, User: u}, nil
	}
	// A cache miss and a cache mismatch both ask the store: the token may
	// have changed since it was cached (B-5).
	a.mu.Lock()
	gen := a.gen
	a.mu.Unlock()
	u, err := a.users.FindUser(ctx, user)
	if peba.ErrorCode(err) == peba.ENOTFOUND || (err == nil && u == nil) {
		return Principal{}, errUnauthorized
	}
	if err != nil {
		return Principal{}, fmt.Errorf("cannot find user %q: %w", user, err)
	}
	ok, err := a.verifyToken(ctx, u.TokenHash, token)
	if err != nil {
		return Principal{}, err
	}
	if !ok {
		return Principal{}, errUnauthorized
	}
	uc := *u
	a.remember(gen, user, tokenSum, uc)
	return Principal{Name: uc.Name, Domain: peba.DomainPrivate, User: &uc}, nil
}

func (a *Authenticator) verifyToken(ctx context.Context, stored, token string) (bool, error) {
	select {
	case a.verify <- struct{}{}:
	case <-ctx.Done():
		return false, fmt.Errorf("cannot verify token: %w", ctx.Err())
	}
	defer func() { <-a.verify }()
	return VerifyToken(stored, token), nil
}

// Invalidate forgets the cached check of user name. Call it after changing
// or deleting a user so the change applies at once.
func (a *Authenticator) Invalidate(name string) {
	a.mu.Lock()
	delete(a.cache, name)
	a.gen++
	a.mu.Unlock()
}

// cached returns a copy of the cached user if name's cached check is live
// and was made with the same token.
func (a *Authenticator) cached(name string, tokenSum [sha256.Size]byte) (*peba.User, bool) {
	if a.ttl < 0 {
		return nil, false
	}
	a.mu.Lock()
	e, ok := a.cache[name]
	a.mu.Unlock()
	if !ok || !a.now().Before(e.expires) ||
		subtle.ConstantTimeCompare(e.tokenSum[:], tokenSum[:]) != 1 {
		return nil, false
	}
	u := e.user
	return &u, true
}

// remember caches a successful check made with the store read at gen.
func (a *Authenticator) remember(gen uint64, name string, tokenSum [sha256.Size]byte, u peba.User) {
	if a.ttl < 0 {
		return
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen != a.gen {
		return
	}
	if _, ok := a.cache[name]; !ok && len(a.cache) >= a.size {
		for k, e := range a.cache {
			if !now.Before(e.expires) {
				delete(a.cache, k)
			}
		}
		// Still full: drop an arbitrary entry (map order is random); it
		// costs that user one slow check.
		for k := range a.cache {
			if len(a.cache) < a.size {
				break
			}
			delete(a.cache, k)
		}
	}
	a.cache[name] = cacheEntry{tokenSum: tokenSum, user: u, expires: now.Add(a.ttl)}
}
