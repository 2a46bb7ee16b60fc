// Package cluster is a raftlease node: hashicorp/raft with raft-boltdb/v2 as
// the log and stable store on disk, a file snapshot store, and the lease
// state machine of package fsm. A *Node implements raftlease.Store; any node
// accepts any operation and forwards to the leader what only the leader may
// do.
//
// # Design
//
// Writes. Acquire, renew and release become fsm commands. On the leader they
// go to the proposer, which gathers every command already queued (up to
// MaxBatch, optionally waiting MaxBatchWait) into one Raft entry — group
// commit — stamps each with the leader's term and monotonic clock, and hands
// the entry to raft without waiting for the previous one, so batches
// pipeline. The completer waits for entries in order and answers each
// caller with its own result. A follower sends the unstamped command to the
// leader over the forwarding RPC (package transport) and returns the
// leader's answer. Failures that certainly applied nothing (no leader yet,
// leader changed before proposing) are retried until the operation's
// deadline; failures that may have applied are returned with
// OutcomeUnknown.
//
// Epochs. A node that becomes leader first commits an epoch command with its
// clock reading and serves nothing — writes, linearizable reads, forwarded
// requests — until that entry is applied. Every later command of its term is
// stamped against that epoch, so the consensus clock continues from where
// the previous leader left it (DESIGN.md, "Time").
//
// Housekeeping. The leader proposes expire commands for leases past their
// deadline, and a tick when it has proposed nothing for TickInterval while
// leases are live, so a failover pauses the consensus clock for at most a
// tick interval plus the leaderless gap (Options.WorstCaseFailoverDelay).
//
// Reads. A linearizable read is served by the serving leader after a quorum
// confirms its leadership (raft VerifyLeader, coalesced across concurrent
// reads by the verifier); followers forward it. Every acknowledged write is
// already applied on the leader: its own writes are applied before they are
// acknowledged, earlier leaders' before its epoch. A stale read answers
// from the local replica, estimating consensus time as the last applied
// consensus time plus local time elapsed since.
//
// Watch. Every node feeds its watch hub from the entries it applies, so
// watches on any node see every change in log order, with revisions equal to
// log indexes; a restore from snapshot resets the hub.
//
// Failure. A committed entry that cannot be decoded halts the replica
// (raft shut down, every call fails) rather than skipping it and diverging.
//
// # Goroutines
//
//   - monitorLeadership (one per node): drains raft's NotifyCh, starts and
//     stops the leadership goroutines. Ends at Close.
//   - lead (while leader): commits the epoch, then owns leaderState.
//   - propose, complete, housekeep (while serving as leader): owned by the
//     leaderState; they end when leadership ends.
//   - verifier.run: runs while reads wait for leadership confirmation.
//   - transport goroutines (accept loops, one per forwarding connection)
//     and raft's own; Close stops them all.
package cluster
