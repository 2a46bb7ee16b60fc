package raftlease

import (
	"maps"
	"time"
)

// Lease is a snapshot of one named lease as a store last saw it.
type Lease struct {
	// Name identifies the lease.
	Name string
	// Holder is the participant id of the current holder.
	Holder string
	// Token is the fencing token issued at acquisition. It is at least 1,
	// strictly greater than every token issued before for this name, and
	// kept by renewals.
	Token uint64
	// TTL is the duration granted by the last acquire or renew.
	TTL time.Duration
	// Metadata is the holder's advertised metadata (an address, say). Treat it
	// as read-only.
	Metadata map[string]string
	// AcquiredAt is the wall-clock time at which the store granted the current
	// token, as read by the node that proposed it. It is informational only:
	// no decision is ever taken on wall-clock time.
	AcquiredAt time.Time
	// Deadline is the point on the store's consensus clock at which the lease
	// expires unless renewed. It is comparable only with other deadlines of
	// the same store.
	Deadline time.Duration
	// Remaining is the time left before Deadline, measured on the consensus
	// clock when the lease was read. A lease returned by a read always has
	// Remaining > 0; expired leases are never returned.
	Remaining time.Duration
	// Revision is the position in the store's log of the lease's last change
	// (for the Raft node, the log index). It only grows.
	Revision uint64
}

// Clone returns a copy of l that shares no memory with it.
func (l Lease) Clone() Lease {
	l.Metadata = maps.Clone(l.Metadata)
	return l
}

// AcquireRequest asks for a lease.
type AcquireRequest struct {
	Name     string
	Holder   string
	TTL      time.Duration
	Metadata map[string]string
	// TokenFloor, when non-zero, makes the issued token strictly greater than
	// TokenFloor. Migration from another store uses it to carry the old
	// store's fencing counter over. Ordinary callers leave it zero.
	TokenFloor uint64
}

// RenewRequest extends a lease held by Holder under Token.
type RenewRequest struct {
	Name   string
	Holder string
	Token  uint64
	// TTL, when non-zero, replaces the lease's TTL; zero keeps it.
	TTL time.Duration
	// Metadata, when non-nil, replaces the lease's metadata; nil keeps it.
	// This is how a leader updates what it advertises without a new election.
	Metadata map[string]string
}

// ReleaseRequest frees a lease held by Holder under Token.
type ReleaseRequest struct {
	Name   string
	Holder string
	Token  uint64
}

// ReadOptions tune Get and List.
type ReadOptions struct {
	// Stale allows the answer to come from the local replica without
	// confirming leadership with a quorum. It may be behind the latest
	// acknowledged write. Stores without replicas ignore it.
	Stale bool
}

// WatchRequest selects the changes a Watch delivers.
type WatchRequest struct {
	// Prefix selects every lease whose name starts with it; the empty prefix
	// selects all leases. To watch exactly one name, set Name instead.
	Prefix string
	// Name, when non-empty, selects exactly that lease name. Name and Prefix
	// are exclusive.
	Name string
	// FromRevision, when non-zero, replays retained changes with a revision
	// at or above it before delivering live ones, so a consumer that saw
	// everything up to revision R resumes from R+1 without a gap. Zero
	// delivers only changes after the watch starts.
	FromRevision uint64
}

// Matches reports whether a lease name is selected by the request.
func (r WatchRequest) Matches(name string) bool {
	if r.Name != "" {
		return name == r.Name
	}
	return len(name) >= len(r.Prefix) && name[:len(r.Prefix)] == r.Prefix
}

// EventType says what happened to a lease.
type EventType uint8

const (
	// EventAcquired: a holder was granted the lease with a new token.
	EventAcquired EventType = iota + 1
	// EventRenewed: the holder extended the lease (or re-acquired it, or
	// changed its metadata); the token is unchanged.
	EventRenewed
	// EventReleased: the holder released the lease.
	EventReleased
	// EventExpired: the lease passed its deadline and was removed.
	EventExpired
	// EventCompacted: the watcher fell behind the retained history or asked
	// for a revision older than it. Revision is the oldest revision still
	// retained; the channel closes after this event. Re-read with List and
	// watch again from the revision List reported.
	EventCompacted
)

var eventTypeNames = [...]string{
	EventAcquired:  "acquired",
	EventRenewed:   "renewed",
	EventReleased:  "released",
	EventExpired:   "expired",
	EventCompacted: "compacted",
}

func (t EventType) String() string {
	if int(t) < len(eventTypeNames) && eventTypeNames[t] != "" {
		return eventTypeNames[t]
	}
	return "unknown"
}

// Event is one change of one lease.
type Event struct {
	Type EventType
	// Lease is the lease after the change; for released and expired events,
	// the lease as it was just before it went away.
	Lease Lease
	// Revision is the revision of the change. Several events may share one
	// revision when the store committed them together.
	Revision uint64
}
