package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
)

// Acquire implements raftlease.Store.
func (n *Node) Acquire(ctx context.Context, req raftlease.AcquireRequest) (raftlease.Lease, error) {
	if err := req.Validate(); err != nil {
		return raftlease.Lease{}, err
	}
	return n.write(ctx, fsm.Acquire(fsm.Stamp{}, req))
}

// Renew implements raftlease.Store.
func (n *Node) Renew(ctx context.Context, req raftlease.RenewRequest) (raftlease.Lease, error) {
	if err := req.Validate(); err != nil {
		return raftlease.Lease{}, err
	}
	return n.write(ctx, fsm.Renew(fsm.Stamp{}, req))
}

// Release implements raftlease.Store.
func (n *Node) Release(ctx context.Context, req raftlease.ReleaseRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	_, err := n.write(ctx, fsm.Release(fsm.Stamp{}, req))
	return err
}

// Get implements raftlease.Store. A linearizable read is served by the
// leader after it confirms its leadership with a quorum; a follower
// forwards it. A stale read answers from this replica.
func (n *Node) Get(ctx context.Context, name string, opts raftlease.ReadOptions) (raftlease.Lease, error) {
	if err := raftlease.ValidateName(name); err != nil {
		return raftlease.Lease{}, err
	}
	var out raftlease.Lease
	err := n.read(ctx, opts, methodGet, name, &out, func(m *fsm.FSM, now time.Duration) error {
		l, err := m.Get(name, now)
		out = l
		return err
	})
	return out, err
}

// List implements raftlease.Store.
func (n *Node) List(ctx context.Context, prefix string, opts raftlease.ReadOptions) (raftlease.LeaseList, error) {
	if err := raftlease.ValidatePrefix(prefix); err != nil {
		return raftlease.LeaseList{}, err
	}
	var out raftlease.LeaseList
	err := n.read(ctx, opts, methodList, prefix, &out, func(m *fsm.FSM, now time.Duration) error {
		leases, err := m.List(prefix, now)
		out = raftlease.LeaseList{Leases: leases, Revision: m.Index()}
		return err
	})
	return out, err
}

// Watch implements raftlease.Store. Events come from the entries this node
// applies, so a watch on any node sees every change, in log order.
func (n *Node) Watch(ctx context.Context, req raftlease.WatchRequest) (<-chan raftlease.Event, error) {
	return n.hub.Subscribe(ctx, req)
}

// opContext bounds ctx by OperationTimeout when it has no deadline.
func (n *Node) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.opts.OperationTimeout)
}

// write commits cmd through the leader, retrying while the failure is
// certain not to have applied anything (no leader yet, leader changed)
// until ctx ends.
func (n *Node) write(ctx context.Context, cmd fsm.Command) (raftlease.Lease, error) {
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	return retry(ctx, n, func() (raftlease.Lease, error) {
		if ls := n.leader(); ls != nil {
			res, err := n.submit(ctx, ls, cmd)
			return res.Lease, err
		}
		var out raftlease.Lease
		err := n.forward(ctx, methodWrite, fsm.Encode(cmd), &out)
		return out, err
	})
}

// read serves a read locally (stale, or on the leader after confirming
// leadership) or forwards it to the leader.
func (n *Node) read(ctx context.Context, opts raftlease.ReadOptions, method, arg string, out any, local func(*fsm.FSM, time.Duration) error) error {
	if n.closed() {
		return raftlease.ErrClosed
	}
	if opts.Stale || n.opts.TestHooks.unsafeStaleReads() {
		now := n.sm.staleNow()
		if ls := n.leader(); ls != nil {
			return n.sm.read(func(m *fsm.FSM) error { return local(m, m.Now(n.stamp(ls.term))) })
		}
		return n.sm.read(func(m *fsm.FSM) error { return local(m, now) })
	}
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	_, err := retry(ctx, n, func() (struct{}, error) {
		if ls := n.leader(); ls != nil {
			return struct{}{}, n.leaderRead(ctx, ls, local)
		}
		return struct{}{}, n.forward(ctx, method, []byte(arg), out)
	})
	return err
}

// leaderRead confirms leadership with a quorum, then reads. Every write
// acknowledged before the read began is applied here: this leader's own
// writes are applied before they are acknowledged, and earlier leaders'
// precede this leader's epoch, which was applied before it served.
func (n *Node) leaderRead(ctx context.Context, ls *leaderState, local func(*fsm.FSM, time.Duration) error) error {
	if err := n.verifier.verify(ctx); err != nil {
		return err
	}
	if n.leader() != ls {
		return notApplied(raftlease.ErrNotLeader)
	}
	return n.sm.read(func(m *fsm.FSM) error { return local(m, m.Now(n.stamp(ls.term))) })
}

// retry calls op until it succeeds, fails for good, or fails with an
// outcome that may have applied; it retries only not-applied failures.
func retry[T any](ctx context.Context, n *Node, op func() (T, error)) (T, error) {
	backoff := 2 * time.Millisecond
	for {
		if n.closed() {
			var zero T
			return zero, raftlease.ErrClosed
		}
		v, err := op()
		if err == nil || !raftlease.IsRetryable(err) || raftlease.OutcomeOf(err) != raftlease.OutcomeNotApplied {
			return v, err
		}
		timer := n.clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return v, err
		case <-n.done:
			timer.Stop()
			return v, raftlease.ErrClosed
		case <-timer.C():
		}
		backoff = min(backoff*2, n.opts.HeartbeatTimeout/2)
	}
}

// forward sends a request to the leader's forwarding endpoint.
func (n *Node) forward(ctx context.Context, method string, body []byte, out any) error {
	addr, id := n.raft.LeaderWithID()
	if addr == "" {
		return notApplied(fmt.Errorf("%w: no leader known", raftlease.ErrNoQuorum))
	}
	if string(id) == n.opts.ID {
		// Raft says we lead but the epoch is not applied yet.
		return notApplied(&raftlease.NotLeaderError{LeaderID: n.opts.ID, LeaderAddr: string(addr)})
	}
	resp, err := n.rpcClient.Call(ctx, string(addr), method, body)
	if err != nil {
		return err
	}
	if out == nil || len(resp) == 0 {
		return nil
	}
	if err := json.Unmarshal(resp, out); err != nil {
		return &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: fmt.Errorf("cluster: bad forwarded response: %w", err)}
	}
	return nil
}

// State returns this node's raft state (Leader, Follower, Candidate, …).
func (n *Node) State() raft.RaftState { return n.raft.State() }

// IsLeader reports whether this node leads and serves (its epoch applied).
func (n *Node) IsLeader() bool { return n.leader() != nil }
