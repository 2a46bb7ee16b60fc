// Package fsm is raftlease's pure, deterministic lease state machine.
//
// It holds the named leases, their fencing tokens and the consensus clock,
// and applies commands: acquire, renew, release, expire, epoch, tick, and a
// batch of these (group commit). It does no I/O, starts no goroutines, reads
// no clock and draws no random numbers: the same commands at the same
// indexes give every replica the same state, byte for byte in snapshots.
// Time enters only as the proposing leader's clock reading inside each
// command (Stamp). The package imports nothing of raftlease but the root
// package, and nothing of raft or net. The raft.FSM adapter lives in
// package cluster; the in-process store (package memstore) drives it with a
// mutex and a Clock.
//
// # Design
//
// Consensus time. Each command carries a Stamp: the term and monotonic clock
// reading of the leader that proposed it. An epoch command, committed by
// every new leader before it serves anything, records the leader's reading
// and the consensus time reached so far. A command's consensus time is the
// epoch base plus the leader's clock advance since its epoch, and never less
// than the latest consensus time applied (ConsensusClock). So the clock is
// continuous across leaders, never goes back, pauses for a leaderless gap,
// and never restarts a lease's TTL on failover. A stamp from another term
// than the current epoch's does not move time.
//
// Deadlines. Every deadline is a point on the consensus clock. A lease is
// live at consensus time t when t < deadline. Acquire, renew and release
// decide with the consensus time of their own command, so an expired lease
// that the leader has not yet removed is treated as free. Expire commands,
// proposed by the leader for leases past their deadline, re-check the
// deadline and the token before removing anything.
//
// Fencing tokens. One counter serves all names: a new holder gets
// max(last token, request floor) + 1. A token is therefore greater than
// every token ever issued for any name, which implies the per-name rule, and
// needs no tombstones for released or expired names, so memory stays
// proportional to live leases. Renewals and re-acquires keep the token.
//
// Rejections. Invalid input (checked against the raftlease limits, which may
// therefore only ever be relaxed), a lease held by another holder, and a
// caller that is not the holder are ordinary results that change nothing.
// A command that cannot be decoded is a fatal error for a replica
// (ErrUnknownCommand, ErrUnknownVersion, ErrMalformed), unless its kind byte
// carries the ignorable bit.
//
// Revisions. Apply takes the log index; every lease change records it as
// the lease's revision and as the revision of the events it produces.
// Commands of one batch share their entry's index.
//
// Snapshots. Snapshot copies the lease pointers (lease values are never
// mutated in place) and WriteTo streams a versioned, checksummed encoding
// sorted by name. Restore builds a fresh FSM and verifies the checksum
// before returning it, so the caller swaps state in whole.
package fsm
