package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
	"github.com/raftlease/raftlease/transport"
)

// Forwarding methods. Bodies: write carries an unstamped fsm command in its
// binary encoding (the leader stamps it); get and list carry the name or
// prefix; join and remove carry JSON. Answers are JSON.
const (
	methodWrite  = "write"
	methodGet    = "get"
	methodList   = "list"
	methodJoin   = "join"
	methodRemove = "remove"
	methodInfo   = "info"
	methodVerify = "verify"
)

// joinRequest asks the leader to add a member.
type joinRequest struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	NonVoter bool   `json:"non_voter,omitempty"`
}

// infoResponse answers methodInfo: who this node is and where its client
// API listens.
type infoResponse struct {
	ID      string `json:"id"`
	APIAddr string `json:"api_addr"`
}

// verifyResponse answers methodVerify: the serving leader confirmed its
// leadership with a quorum, and had applied AppliedIndex when it did.
type verifyResponse struct {
	AppliedIndex uint64 `json:"applied_index"`
}

// handleRPC serves requests forwarded by other nodes. It only ever acts
// locally: a node that is not the serving leader answers not-leader (not
// applied) and the sender retries, so requests never bounce between nodes.
func (n *Node) handleRPC(ctx context.Context, method string, body []byte) ([]byte, error) {
	// Membership changes are rare and may arrive at any member (a new node
	// joins through whichever address it was given): route them on.
	switch method {
	case methodJoin:
		var req joinRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, fmt.Errorf("%w: join: %v", raftlease.ErrInvalidArgument, err)
		}
		return nil, n.addMember(ctx, req)
	case methodRemove:
		return nil, n.RemoveMember(ctx, string(body))
	case methodInfo:
		return json.Marshal(infoResponse{ID: n.opts.ID, APIAddr: n.opts.APIAddr})
	}
	ls := n.leader()
	if ls == nil {
		addr, id := n.raft.LeaderWithID()
		return nil, notApplied(&raftlease.NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)})
	}
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	switch method {
	case methodWrite:
		cmd, err := fsm.Decode(body)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", raftlease.ErrInvalidArgument, err)
		}
		switch cmd.Kind {
		case fsm.KindAcquire, fsm.KindRenew, fsm.KindRelease:
		default:
			return nil, fmt.Errorf("%w: %s cannot be forwarded", raftlease.ErrInvalidArgument, cmd.Kind)
		}
		res, err := n.submit(ctx, ls, cmd)
		if err != nil {
			return nil, err
		}
		return json.Marshal(res.Lease)
	case methodVerify:
		index, err := n.leaderVerify(ctx, ls)
		if err != nil {
			return nil, err
		}
		return json.Marshal(verifyResponse{AppliedIndex: index})
	case methodGet:
		var out raftlease.Lease
		err := n.leaderRead(ctx, ls, func(m *fsm.FSM, now time.Duration) error {
			l, err := m.Get(string(body), now)
			out = l
			return err
		})
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	case methodList:
		var out raftlease.LeaseList
		err := n.leaderRead(ctx, ls, func(m *fsm.FSM, now time.Duration) error {
			leases, err := m.List(string(body), now)
			out = raftlease.LeaseList{Leases: leases, Revision: m.Index()}
			return err
		})
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	default:
		return nil, fmt.Errorf("%w: unknown method %q", raftlease.ErrInvalidArgument, method)
	}
}

// Member describes one server in the Raft configuration.
type Member struct {
	ID     string `json:"id"`
	Addr   string `json:"raft_addr"`
	Voter  bool   `json:"voter"`
	Leader bool   `json:"leader"`
}

// Members returns the current configuration as this node knows it.
func (n *Node) Members() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	_, leaderID := n.raft.LeaderWithID()
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter, Leader: s.ID == leaderID})
	}
	return out, nil
}

// AddMember adds a server through whichever node leads: a voter, or a
// non-voter when m.Voter is false. m.HTTPAddr, when set, is remembered as
// the member's client API address. Adding a member already present with
// the same address and suffrage is a no-op.
func (n *Node) AddMember(ctx context.Context, m transport.MemberJSON) error {
	return n.addMember(ctx, joinRequest{ID: m.ID, Addr: m.RaftAddr, APIAddr: m.HTTPAddr, NonVoter: !m.Voter})
}

func (n *Node) addMember(ctx context.Context, req joinRequest) error {
	if err := raftlease.ValidateHolder(req.ID); err != nil {
		return &raftlease.FieldError{Field: "id", Reason: err.Error()}
	}
	if req.Addr == "" {
		return &raftlease.FieldError{Field: "raft_addr", Reason: "must not be empty"}
	}
	if _, _, err := net.SplitHostPort(req.Addr); err != nil {
		return &raftlease.FieldError{Field: "raft_addr", Reason: fmt.Sprintf("%q is not host:port", req.Addr)}
	}
	if req.APIAddr != "" {
		n.rememberAPIAddr(req.ID, req.APIAddr)
	}
	body, _ := json.Marshal(req)
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	_, err := retry(ctx, n, func() (struct{}, error) {
		if n.leader() != nil {
			return struct{}{}, n.addLocal(ctx, req)
		}
		return struct{}{}, n.forward(ctx, methodJoin, body, nil)
	})
	return err
}

// RemoveMember removes a server through whichever node leads.
func (n *Node) RemoveMember(ctx context.Context, id string) error {
	if err := raftlease.ValidateHolder(id); err != nil {
		return err
	}
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	_, err := retry(ctx, n, func() (struct{}, error) {
		if n.leader() != nil {
			return struct{}{}, n.removeLocal(ctx, id)
		}
		return struct{}{}, n.forward(ctx, methodRemove, []byte(id), nil)
	})
	return err
}

// Join asks the cluster member at memberAddr (its Raft address) to add this
// node. Use it on a new node started without Bootstrap.
func (n *Node) Join(ctx context.Context, memberAddr string, nonVoter bool) error {
	body, _ := json.Marshal(joinRequest{ID: n.opts.ID, Addr: n.Addr(), APIAddr: n.opts.APIAddr, NonVoter: nonVoter})
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	backoff := 20 * time.Millisecond
	for {
		_, err := n.rpcClient.Call(ctx, memberAddr, methodJoin, body)
		if err == nil || !raftlease.IsRetryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

func (n *Node) addLocal(ctx context.Context, req joinRequest) error {
	if err := raftlease.ValidateHolder(req.ID); err != nil {
		return err
	}
	for _, s := range n.configuration() {
		if string(s.ID) == req.ID && string(s.Address) == req.Addr && (s.Suffrage == raft.Voter) == !req.NonVoter {
			return nil
		}
	}
	if req.APIAddr != "" {
		n.rememberAPIAddr(req.ID, req.APIAddr)
	}
	var f raft.IndexFuture
	if req.NonVoter {
		f = n.raft.AddNonvoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, n.opts.OperationTimeout)
	} else {
		f = n.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, n.opts.OperationTimeout)
	}
	if err := waitFuture(ctx, f); err != nil {
		return applyError(err)
	}
	n.logger.Info("member added", "member", req.ID, "addr", req.Addr, "voter", !req.NonVoter)
	return nil
}

func (n *Node) removeLocal(ctx context.Context, id string) error {
	found := false
	for _, s := range n.configuration() {
		found = found || string(s.ID) == id
	}
	if !found {
		return fmt.Errorf("%w: no member %q", raftlease.ErrNotFound, id)
	}
	f := n.raft.RemoveServer(raft.ServerID(id), 0, n.opts.OperationTimeout)
	if err := waitFuture(ctx, f); err != nil {
		return applyError(err)
	}
	n.logger.Info("member removed", "member", id)
	return nil
}

func (n *Node) configuration() []raft.Server {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	return f.Configuration().Servers
}

// LocalStatus is this node's own view of Raft and its replica, read without
// asking any other node.
type LocalStatus struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	LeaderAddr   string `json:"leader_addr"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastIndex    uint64 `json:"last_index"`
	Serving      bool   `json:"serving"` // leader with its epoch applied
	Leases       int    `json:"leases"`
	LastToken    uint64 `json:"last_token"`
}

// LocalStatus reports the node's raft state and indexes.
func (n *Node) LocalStatus() LocalStatus {
	addr, id := n.raft.LeaderWithID()
	st := LocalStatus{
		ID: n.opts.ID, State: n.raft.State().String(), LeaderID: string(id), LeaderAddr: string(addr),
		Term: n.raft.CurrentTerm(), CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.raft.AppliedIndex(),
		LastIndex: n.raft.LastIndex(), Serving: n.leader() != nil,
	}
	_ = n.sm.read(func(m *fsm.FSM) error {
		st.Leases, st.LastToken = m.Len(), m.LastToken()
		return nil
	})
	return st
}

// Snapshot forces a Raft snapshot and log compaction now.
func (n *Node) Snapshot() error {
	err := n.raft.Snapshot().Error()
	if err == raft.ErrNothingNewToSnapshot {
		return nil
	}
	return err
}

// StateHash returns a checksum of the replicated state and the index it
// reflects, for comparing replicas in tests and diagnostics.
func (n *Node) StateHash() (hash uint32, index uint64) {
	_ = n.sm.read(func(m *fsm.FSM) error {
		hash, index = m.Hash(), m.Index()
		return nil
	})
	return hash, index
}
