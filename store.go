package raftlease

import "context"

// Store is the contract every raftlease backend implements: the in-process
// store, the embedded Raft node, the HTTP client and the Redis bridge. The
// conformance suite in testutil/storetest checks it.
//
// Every method validates its input first; invalid input returns an error
// matching ErrInvalidArgument and changes nothing. A store that cannot reach
// a quorum returns an error matching ErrUnavailable and never answers from a
// guess. All methods are safe for concurrent use.
type Store interface {
	// Acquire grants the named lease to req.Holder when the name is free or
	// its lease has expired at the time the store decides the request, and
	// returns the granted lease with a new fencing token greater than every
	// token issued before for that name.
	//
	// Acquire by the current holder is idempotent: it keeps the token,
	// restarts the deadline with req.TTL and replaces the metadata, like a
	// renewal. When another holder has the lease, Acquire returns a
	// *HeldError (matching ErrLeaseHeld) carrying the current lease.
	//
	// A retry after an ErrUnavailable error is safe: for the same holder it
	// either acquires or finds the holder already holding the lease.
	Acquire(ctx context.Context, req AcquireRequest) (Lease, error)

	// Renew moves the deadline of a lease that req.Holder holds under
	// req.Token, before it expires, and returns the lease. It fails with
	// ErrNotHolder when the lease is free, expired, held by someone else, or
	// held under another token. A retry is safe.
	Renew(ctx context.Context, req RenewRequest) (Lease, error)

	// Release frees a lease that req.Holder holds under req.Token at once.
	// It fails with ErrNotHolder otherwise, including when the lease is
	// already free; a retry after ErrUnavailable may therefore report
	// ErrNotHolder for a release that did take effect.
	Release(ctx context.Context, req ReleaseRequest) error

	// Get returns the named lease, or ErrNotFound when the name is free or
	// its lease has passed its deadline (even if the store has not yet
	// removed it). Reads are linearizable unless opts.Stale is set.
	Get(ctx context.Context, name string, opts ReadOptions) (Lease, error)

	// List returns the live leases whose names start with prefix, sorted by
	// name, and the store revision the listing reflects. Watching from that
	// revision + 1 continues without a gap.
	List(ctx context.Context, prefix string, opts ReadOptions) (LeaseList, error)

	// Watch streams the changes selected by req until ctx ends, then closes
	// the channel. The channel is bounded; a consumer that falls too far
	// behind receives an EventCompacted event and the channel closes. Watch
	// returns ErrCompacted at once when req.FromRevision is older than the
	// retained history.
	Watch(ctx context.Context, req WatchRequest) (<-chan Event, error)
}

// LeaseList is the answer of Store.List.
type LeaseList struct {
	// Leases are sorted by name.
	Leases []Lease
	// Revision is the store revision the listing reflects.
	Revision uint64
}
