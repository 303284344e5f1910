package peba

import (
	"context"
	"time"
)

// Store is the persistence contract. Two implementations exist (duckdb: the
// embedded default; postgres: multi-node) and both must pass the shared
// contract suite in package storetest.
//
// All methods are safe for concurrent use. Errors are *Error values where the
// caller must distinguish them (ErrNotFound, ErrConflict, ErrUnavailable);
// anything else is internal.
type Store interface {
	// AppendEvents stores events in one transaction: either all new events of
	// the call are stored, or none and an error is returned. Events whose ID is
	// already stored (or that repeat an ID earlier in the same call) are
	// skipped, which makes resent batches idempotent. Payload bookkeeping
	// (payload records, counters, first/last seen) is updated in the same
	// transaction and counts only the events that were actually inserted.
	// The returned result lists the inserted events in input order.
	// The call returns only after the transaction is durably committed.
	AppendEvents(ctx context.Context, events []Event) (AppendResult, error)

	// FindEvents returns the events matching f, newest receive time first
	// and then by ID ascending (byte order), and the total count of matches
	// ignoring Limit, Offset and After (-1 if f.NoTotal).
	FindEvents(ctx context.Context, f EventFilter) ([]Event, int64, error)

	// ExportEvents calls fn for every stored event in receive-time order.
	// It stops and returns fn's error if fn fails.
	ExportEvents(ctx context.Context, fn func(*Event) error) error

	// DeleteEventsBefore removes events received before t (retention) and
	// returns how many were removed.
	DeleteEventsBefore(ctx context.Context, t time.Time) (int64, error)

	// FindPayload returns the payload record for an md5 (without Data), or
	// ErrNotFound. FuzzyCount is filled.
	FindPayload(ctx context.Context, md5 string) (*Payload, error)

	// Users (registered, private-domain submitters and readers).
	CreateUser(ctx context.Context, u *User) error // ErrConflict if the name exists
	UpdateUser(ctx context.Context, u *User) error // ErrNotFound if missing
	FindUser(ctx context.Context, name string) (*User, error)
	ListUsers(ctx context.Context) ([]User, error)
	DeleteUser(ctx context.Context, name string) error

	// Ping reports whether the store can serve requests (readiness).
	Ping(ctx context.Context) error
	// Close flushes and closes the store.
	Close() error
}

// AppendResult describes what AppendEvents did.
type AppendResult struct {
	Inserted   []Event // events that were new, in input order (may be the input slice itself)
	Duplicates int     // events skipped because their ID was already stored
}

// EventFilter selects events. Zero values mean "no restriction".
type EventFilter struct {
	Domains   []Domain // empty = all domains
	ID        string
	SrcIP     string
	PeerIdent string
	PeerType  string
	// Sensor matches events whose Hostname, SensorUUID or PeerIdent equals
	// it (one search box for "which sensor").
	Sensor string
	Since  time.Time // ReceivedTime >= Since
	Until  time.Time // ReceivedTime <  Until
	Limit  int       // 0 = no limit
	Offset int
	// After continues a listing by keyset instead of Offset: only events
	// after *After in FindEvents order (ReceivedTime before After's, or
	// equal and ID greater). Deep pages cost no more than the first.
	After *EventKey
	// NoTotal skips counting the matches (FindEvents returns -1), which
	// otherwise costs a second scan per page.
	NoTotal bool
}

// EventKey is an event's position in FindEvents order, a paging cursor.
type EventKey struct {
	ReceivedTime time.Time
	ID           string
}

// User is a registered user (PEBA's "users" index, §5.5). Registered users
// submit private-domain data and may read it.
type User struct {
	Name string
	// TokenHash is the stored token verifier: a PHC-style "$argon2id$..." string
	// for tokens set by this service, or PEBA's legacy lowercase hex sha512
	// (128 chars) or md5 (32 chars) for imported users.
	TokenHash string
	Email     string
	// GetOnly users may read but not submit; CommunityOnly users may only read
	// community data. PEBA stored but ignored both flags (B-6); we enforce them.
	GetOnly       bool
	CommunityOnly bool
	Created       time.Time
}
