package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
)

// leaderState lives from the moment this node's epoch is applied until it
// stops leading. Its goroutines (proposer, completer, housekeeper) are
// owned by the leadership and end with it.
type leaderState struct {
	term      uint64
	ctx       context.Context
	cancel    context.CancelFunc
	proposals chan *proposal // unbuffered: a send succeeds only while the proposer runs
	inflight  chan *inflight
	slots     chan struct{} // one token per entry on its way (MaxInflight)
	// lastProposed is the leader-clock time (ns since origin) of the last
	// entry proposed; the housekeeper ticks when it grows old.
	lastProposed atomic.Int64
	wg           sync.WaitGroup
}

// proposal is one command waiting to be stamped and committed.
type proposal struct {
	cmd  fsm.Command // unstamped
	done chan proposalResult
}

type proposalResult struct {
	res fsm.Result
	err error
}

// inflight is a Raft entry on its way, with the proposals it carries.
type inflight struct {
	future raft.ApplyFuture
	props  []*proposal
	batch  bool
}

// monitorLeadership drains raft's NotifyCh (which must never back up) and
// starts or stops the leadership goroutines.
func (n *Node) monitorLeadership() {
	defer n.wg.Done()
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		select {
		case <-n.done:
			return
		case isLeader := <-n.notifyCh:
			switch {
			case isLeader && stop == nil:
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					n.lead(ctx)
				}()
				stop = func() { cancel(); wg.Wait() }
			case !isLeader && stop != nil:
				stop()
				stop = nil
			}
		}
	}
}

// lead runs while raft says this node leads: it commits the epoch, then
// serves until ctx ends.
func (n *Node) lead(ctx context.Context) {
	term := n.raft.CurrentTerm()
	log := n.logger.With("term", term)
	log.Info("gained leadership; committing epoch")
	for {
		err := n.commitEpoch(ctx, term)
		if err == nil {
			break
		}
		log.Warn("epoch commit failed", "error", err)
		if ctx.Err() != nil || n.raft.State() != raft.Leader {
			return
		}
		timer := n.clock.NewTimer(n.opts.CommitTimeout * 10)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
	}
	lctx, cancel := context.WithCancel(ctx)
	ls := &leaderState{
		term: term, ctx: lctx, cancel: cancel,
		proposals: make(chan *proposal),
		inflight:  make(chan *inflight, n.opts.MaxInflight),
		slots:     make(chan struct{}, n.opts.MaxInflight),
	}
	ls.lastProposed.Store(int64(n.clock.Now().Sub(n.origin)))
	ls.wg.Add(3)
	go n.propose(ls)
	go n.complete(ls)
	go n.housekeep(ls)
	n.mu.Lock()
	n.leading = ls
	n.mu.Unlock()
	log.Info("epoch applied; serving as leader")

	<-ctx.Done()
	n.mu.Lock()
	n.leading = nil
	n.mu.Unlock()
	cancel()
	ls.wg.Wait()
	log.Info("stopped leading")
}

func (n *Node) commitEpoch(ctx context.Context, term uint64) error {
	f := n.raft.Apply(fsm.Encode(fsm.Epoch(n.stamp(term))), n.opts.OperationTimeout)
	if err := waitFuture(ctx, f); err != nil {
		return err
	}
	resp, _ := f.Response().(applyResponse)
	if resp.err != nil {
		return resp.err
	}
	return resp.result.Err
}

// stamp reads the leader clock for a command of the given term.
func (n *Node) stamp(term uint64) fsm.Stamp {
	now := n.clock.Now()
	return fsm.Stamp{Term: term, Reading: int64(now.Sub(n.origin)), Wall: now.UnixNano() + n.opts.TestHooks.wall()}
}

// leader returns the current leadership, or nil.
func (n *Node) leader() *leaderState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leading
}

// submit hands cmd to the proposer and waits for its result. The error is
// an *raftlease.UnavailableError when the command did not get a result.
func (n *Node) submit(ctx context.Context, ls *leaderState, cmd fsm.Command) (fsm.Result, error) {
	p := &proposal{cmd: cmd, done: make(chan proposalResult, 1)}
	select {
	case ls.proposals <- p:
	case <-ls.ctx.Done():
		return fsm.Result{}, notApplied(raftlease.ErrNotLeader)
	case <-ctx.Done():
		return fsm.Result{}, notApplied(ctx.Err())
	}
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		// The entry may still commit; the caller cannot know.
		return fsm.Result{}, &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: ctx.Err()}
	}
}

// propose gathers queued proposals into one entry (group commit), stamps
// them and hands the entry to raft. At most MaxInflight entries are on
// their way at once: while all slots are taken, proposals keep gathering
// into the next entry, so the batch grows with the load by itself. A lone
// caller finds a free slot and is proposed at once.
func (n *Node) propose(ls *leaderState) {
	defer ls.wg.Done()
	defer close(ls.inflight)
	batch := make([]*proposal, 0, n.opts.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ls.ctx.Done():
			return
		case p := <-ls.proposals:
			batch = append(batch, p)
		}
		batch = n.gather(ls, batch)
		// Wait for a slot, gathering what arrives meanwhile.
	slot:
		for {
			if len(batch) >= n.opts.MaxBatch {
				select {
				case ls.slots <- struct{}{}:
					break slot
				case <-ls.ctx.Done():
					n.failAll(batch)
					return
				}
			}
			select {
			case ls.slots <- struct{}{}:
				break slot
			case p := <-ls.proposals:
				batch = append(batch, p)
			case <-ls.ctx.Done():
				n.failAll(batch)
				return
			}
		}
		st := n.stamp(ls.term)
		var data []byte
		if len(batch) == 1 {
			cmd := batch[0].cmd
			cmd.Stamp = st
			data = fsm.Encode(cmd)
		} else {
			cmds := make([]fsm.Command, len(batch))
			for i, p := range batch {
				cmds[i] = p.cmd
				cmds[i].Stamp = st
			}
			data = fsm.Encode(fsm.Batch(cmds...))
		}
		ls.lastProposed.Store(st.Reading)
		f := n.raft.Apply(data, n.opts.OperationTimeout)
		props := append([]*proposal(nil), batch...)
		// inflight has room for every slot, so this never blocks.
		ls.inflight <- &inflight{future: f, props: props, batch: len(props) > 1}
	}
}

// failAll answers proposals that were never handed to raft.
func (n *Node) failAll(batch []*proposal) {
	for _, p := range batch {
		p.done <- proposalResult{err: notApplied(raftlease.ErrNotLeader)}
	}
}

// gather adds proposals that are already waiting, and with MaxBatchWait
// those arriving within it, up to MaxBatch.
func (n *Node) gather(ls *leaderState, batch []*proposal) []*proposal {
	for len(batch) < n.opts.MaxBatch {
		select {
		case p := <-ls.proposals:
			batch = append(batch, p)
			continue
		default:
		}
		break
	}
	if n.opts.MaxBatchWait <= 0 || len(batch) >= n.opts.MaxBatch {
		return batch
	}
	timer := time.NewTimer(n.opts.MaxBatchWait)
	defer timer.Stop()
	for len(batch) < n.opts.MaxBatch {
		select {
		case p := <-ls.proposals:
			batch = append(batch, p)
		case <-timer.C:
			return batch
		case <-ls.ctx.Done():
			return batch
		}
	}
	return batch
}

// complete waits for entries in the order they were proposed and answers
// their proposals.
func (n *Node) complete(ls *leaderState) {
	defer ls.wg.Done()
	for in := range ls.inflight {
		err := in.future.Error()
		<-ls.slots
		var resp applyResponse
		if err == nil {
			resp, _ = in.future.Response().(applyResponse)
			err = resp.err
		}
		for i, p := range in.props {
			switch {
			case err != nil:
				p.done <- proposalResult{err: applyError(err)}
			case in.batch && i < len(resp.result.Results):
				r := resp.result.Results[i]
				p.done <- proposalResult{res: r, err: r.Err}
			case in.batch:
				p.done <- proposalResult{err: fmt.Errorf("cluster: batch result %d missing", i)}
			default:
				p.done <- proposalResult{res: resp.result, err: resp.result.Err}
			}
		}
	}
}

// applyError maps a raft apply failure to the outcome the caller may act on.
func applyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return notApplied(fmt.Errorf("%w: %v", raftlease.ErrNotLeader, err))
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: fmt.Errorf("%w: %v", raftlease.ErrNoQuorum, err)}
	case errors.Is(err, raft.ErrRaftShutdown):
		return raftlease.ErrClosed
	default:
		return &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: err}
	}
}

func notApplied(err error) error {
	return &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: err}
}

// housekeep proposes expire commands for leases past their deadline and a
// tick when the leader has been idle for a tick interval while leases are
// live, so the consensus clock keeps pace with the leader's. It wakes at the
// earliest deadline or after a tick interval, whichever comes first; a lease
// granted while it sleeps has a deadline at least MinTTL away, so its expiry
// is proposed at most one tick interval late.
func (n *Node) housekeep(ls *leaderState) {
	defer ls.wg.Done()
	for {
		wait := n.housekeepOnce(ls)
		if ls.ctx.Err() != nil {
			return
		}
		if wait <= 0 {
			continue
		}
		timer := n.clock.NewTimer(wait)
		select {
		case <-ls.ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
	}
}

// housekeepOnce does one round and returns how long to sleep.
func (n *Node) housekeepOnce(ls *leaderState) time.Duration {
	tick := n.opts.TickInterval
	var due []fsm.ExpireTarget
	var next time.Duration
	var live bool
	var now time.Duration
	_ = n.sm.read(func(m *fsm.FSM) error {
		now = m.Now(n.stamp(ls.term))
		due = m.Expired(now, n.opts.MaxExpireBatch)
		next, live = m.NextDeadline()
		return nil
	})
	if len(due) > 0 {
		ctx, cancel := context.WithTimeout(ls.ctx, n.opts.OperationTimeout)
		_, err := n.submit(ctx, ls, fsm.Expire(fsm.Stamp{}, due))
		cancel()
		if err != nil {
			n.logger.Debug("expire failed", "error", err)
			return tick
		}
		return 0 // more may be due
	}
	if !live {
		return tick
	}
	idle := time.Duration(int64(n.clock.Now().Sub(n.origin)) - ls.lastProposed.Load())
	if idle >= tick {
		ctx, cancel := context.WithTimeout(ls.ctx, n.opts.OperationTimeout)
		_, err := n.submit(ctx, ls, fsm.Tick(fsm.Stamp{}))
		cancel()
		if err != nil {
			n.logger.Debug("tick failed", "error", err)
		}
		idle = 0
	}
	wait := tick - idle
	if untilDeadline := next - now; untilDeadline < wait {
		wait = max(untilDeadline, time.Millisecond)
	}
	return wait
}
