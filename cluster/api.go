package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
	"github.com/raftlease/raftlease/transport"
)

// The methods in this file make *Node a transport.Backend, the part of a
// node the HTTP API serves beyond raftlease.Store.
var _ transport.Backend = (*Node)(nil)

// infoTimeout bounds the question to another member for its API address.
const infoTimeout = 300 * time.Millisecond

func (n *Node) rememberAPIAddr(id, addr string) {
	n.apiMu.Lock()
	n.apiAddrs[id] = addr
	n.apiMu.Unlock()
}

// apiAddr returns member id's client API address: this node's own, one
// learned before, or one asked of the member now (bounded by infoTimeout).
// It returns "" when the member cannot be reached.
func (n *Node) apiAddr(ctx context.Context, id, raftAddr string) string {
	if id == n.opts.ID {
		return n.opts.APIAddr
	}
	n.apiMu.Lock()
	addr, ok := n.apiAddrs[id]
	n.apiMu.Unlock()
	if ok {
		return addr
	}
	ctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	resp, err := n.rpcClient.Call(ctx, raftAddr, methodInfo, nil)
	if err != nil {
		return ""
	}
	var info infoResponse
	if json.Unmarshal(resp, &info) != nil || info.ID != id {
		return ""
	}
	n.rememberAPIAddr(id, info.APIAddr)
	return info.APIAddr
}

// Status implements transport.Backend: this node's Raft state, the leader
// and every member with its client API address (asked of members this
// node has not heard it from yet, so it may take up to infoTimeout).
func (n *Node) Status(ctx context.Context) (transport.StatusJSON, error) {
	if n.closed() {
		return transport.StatusJSON{}, raftlease.ErrClosed
	}
	local := n.LocalStatus()
	st := transport.StatusJSON{
		ID: local.ID, State: local.State, Serving: local.Serving,
		Term: local.Term, CommitIndex: local.CommitIndex, AppliedIndex: local.AppliedIndex, LastIndex: local.LastIndex,
		Leases: local.Leases, LastToken: local.LastToken,
		Epochs: n.sm.epochs.Load(), Expirations: n.sm.expirations.Load(),
		WorstCaseFailoverDelayMs: n.opts.WorstCaseFailoverDelay().Milliseconds(),
		Members:                  []transport.MemberJSON{},
	}
	hash, index := n.StateHash()
	st.StateHash, st.StateIndex = fmt.Sprintf("%08x", hash), index
	for _, s := range n.configuration() {
		st.Members = append(st.Members, transport.MemberJSON{
			ID: string(s.ID), RaftAddr: string(s.Address), Voter: s.Suffrage == raft.Voter,
			HTTPAddr: n.apiAddr(ctx, string(s.ID), string(s.Address)),
		})
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].ID < st.Members[j].ID })
	if local.LeaderID != "" {
		st.Leader = &transport.LeaderJSON{ID: local.LeaderID, HTTPAddr: n.apiAddr(ctx, local.LeaderID, local.LeaderAddr)}
	}
	return st, nil
}

// Ready implements transport.Backend: nil when a linearizable read can be
// served now, through this node, and this replica has caught up with the
// leader's applied state.
func (n *Node) Ready(ctx context.Context) error {
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	index, err := n.verifyIndex(ctx)
	if err != nil {
		return err
	}
	if applied := n.raft.AppliedIndex(); applied < index {
		return notApplied(fmt.Errorf("%w: applied index %d behind the leader's %d", raftlease.ErrUnavailable, applied, index))
	}
	return nil
}

// verifyIndex confirms, through the serving leader, that it still leads a
// quorum, and returns the index it had applied then (a read index). On the
// leader it is local; a follower asks the leader once (no retries, so
// readiness answers promptly).
func (n *Node) verifyIndex(ctx context.Context) (uint64, error) {
	if n.closed() {
		return 0, raftlease.ErrClosed
	}
	if ls := n.leader(); ls != nil {
		return n.leaderVerify(ctx, ls)
	}
	var resp verifyResponse
	if err := n.forward(ctx, methodVerify, nil, &resp); err != nil {
		return 0, err
	}
	return resp.AppliedIndex, nil
}

// leaderVerify confirms leadership with a quorum and returns the applied
// index. Every acknowledged write is at or below it.
func (n *Node) leaderVerify(ctx context.Context, ls *leaderState) (uint64, error) {
	index := n.raft.AppliedIndex()
	if err := n.verifier.verify(ctx); err != nil {
		return 0, err
	}
	if n.leader() != ls {
		return 0, notApplied(raftlease.ErrNotLeader)
	}
	return index, nil
}

// waitApplied waits until this replica has applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	backoff := time.Millisecond
	for n.raft.AppliedIndex() < index {
		select {
		case <-ctx.Done():
			return notApplied(fmt.Errorf("%w: replica did not catch up to index %d: %v", raftlease.ErrUnavailable, index, ctx.Err()))
		case <-n.done:
			return raftlease.ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
	return nil
}

// SaveSnapshot implements transport.Backend: after a read index confirmed
// through the leader, and this replica caught up to it, it streams the
// replica's state in the fsm snapshot format. The snapshot therefore holds
// every write acknowledged before the call.
func (n *Node) SaveSnapshot(ctx context.Context, w io.Writer) (int64, error) {
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	var index uint64
	_, err := retry(ctx, n, func() (struct{}, error) {
		var err error
		index, err = n.verifyIndex(ctx)
		return struct{}{}, err
	})
	if err != nil {
		return 0, err
	}
	if err := n.waitApplied(ctx, index); err != nil {
		return 0, err
	}
	var snap *fsm.Snapshot
	if err := n.sm.read(func(m *fsm.FSM) error {
		snap = m.Snapshot()
		return nil
	}); err != nil {
		return 0, err
	}
	return snap.WriteTo(w)
}

// RestoreSnapshot implements transport.Backend. It reads a snapshot written
// by SaveSnapshot (or found in a data dir's snapshots) and acquires each of
// its live leases again for the same holder, with its remaining time (at
// least MinTTL) and metadata, with a token floor of the snapshot's highest
// token. No token ever goes down: a name held by someone else now is
// skipped, and every new token is above both the snapshot's and the
// cluster's. When nothing is imported, the floor is still raised through a
// short-lived marker lease (RestoreFloorLease) released at once.
func (n *Node) RestoreSnapshot(ctx context.Context, r io.Reader) (transport.RestoreReportJSON, error) {
	restored, err := fsm.Restore(r)
	if err != nil {
		return transport.RestoreReportJSON{}, fmt.Errorf("%w: snapshot: %v", raftlease.ErrInvalidArgument, err)
	}
	now := restored.Clock().Now
	leases, err := restored.List("", now)
	if err != nil {
		return transport.RestoreReportJSON{}, err
	}
	report := transport.RestoreReportJSON{TokenFloor: restored.LastToken()}
	for _, l := range leases {
		ttl := max(l.Remaining, raftlease.MinTTL)
		_, err := n.Acquire(ctx, raftlease.AcquireRequest{Name: l.Name, Holder: l.Holder, TTL: ttl, Metadata: l.Metadata, TokenFloor: report.TokenFloor})
		var held *raftlease.HeldError
		switch {
		case err == nil:
			report.Imported++
		case errors.As(err, &held):
			report.Skipped = append(report.Skipped, transport.SkippedJSON{Name: l.Name, Reason: fmt.Sprintf("held by %s now (token %d)", held.Current.Holder, held.Current.Token)})
		default:
			return report, fmt.Errorf("restore %s: %w", l.Name, err)
		}
	}
	if report.Imported == 0 && report.TokenFloor > 0 {
		marker, err := n.Acquire(ctx, raftlease.AcquireRequest{Name: RestoreFloorLease, Holder: n.opts.ID, TTL: raftlease.MinTTL, TokenFloor: report.TokenFloor})
		if err != nil && !errors.Is(err, raftlease.ErrLeaseHeld) {
			return report, fmt.Errorf("restore: raise token floor: %w", err)
		}
		if err == nil {
			_ = n.Release(ctx, raftlease.ReleaseRequest{Name: RestoreFloorLease, Holder: n.opts.ID, Token: marker.Token})
		}
	}
	return report, nil
}

// RestoreFloorLease is the lease name a restore acquires and releases at
// once to raise the token floor when it imports no lease.
const RestoreFloorLease = "raftlease.restore-floor"
