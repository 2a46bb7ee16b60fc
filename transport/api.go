package transport

import (
	"context"
	"io"

	"github.com/raftlease/raftlease"
)

// Backend is what the HTTP API serves: a lease store plus the node's view
// of its cluster. *cluster.Node implements it; `leasenode dev` wraps the
// in-process store in one.
type Backend interface {
	raftlease.Store

	// Status reports the node's Raft state, its leader and the members.
	Status(ctx context.Context) (StatusJSON, error)
	// Ready returns nil when the node can serve a linearizable read now
	// (it knows a leader that confirms its leadership with a quorum and has
	// applied its epoch), and an error matching raftlease.ErrUnavailable
	// otherwise.
	Ready(ctx context.Context) error
	// AddMember adds a server through whichever node leads; m.Voter false
	// adds a non-voter. Adding a member already present with the same
	// addresses is a no-op.
	AddMember(ctx context.Context, m MemberJSON) error
	// RemoveMember removes a server through whichever node leads.
	RemoveMember(ctx context.Context, id string) error
	// SaveSnapshot writes a consistent snapshot of the lease state (the
	// fsm snapshot format) to w, after a linearizable barrier, and returns
	// the bytes written.
	SaveSnapshot(ctx context.Context, w io.Writer) (int64, error)
	// RestoreSnapshot imports the leases of a snapshot written by
	// SaveSnapshot. It never lowers a fencing token: every imported lease is
	// granted a fresh token above every token the snapshot and the cluster
	// ever issued, so holders must re-acquire (same holder: idempotent).
	RestoreSnapshot(ctx context.Context, r io.Reader) (RestoreReportJSON, error)
}

// StatusJSON is the body of GET /v1/status.
type StatusJSON struct {
	// ID is the node id (the agent's --id).
	ID string `json:"id"`
	// State is the Raft state: "Leader", "Follower", "Candidate" or
	// "Shutdown".
	State string `json:"state"`
	// Serving is true on the leader once its epoch is applied.
	Serving bool `json:"serving"`
	// Leader is null while there is none.
	Leader       *LeaderJSON  `json:"leader"`
	Term         uint64       `json:"term"`
	CommitIndex  uint64       `json:"commit_index"`
	AppliedIndex uint64       `json:"applied_index"`
	LastIndex    uint64       `json:"last_index"`
	Members      []MemberJSON `json:"members"`
	// Leases is the number of leases in this replica's state (live or
	// expired but not yet removed); LastToken the highest token issued.
	Leases    int    `json:"leases"`
	LastToken uint64 `json:"last_token"`
	// Epochs and Expirations count the epoch commands and expired leases
	// this replica applied since it started.
	Epochs      uint64 `json:"epochs"`
	Expirations uint64 `json:"expirations"`
	// WorstCaseFailoverDelayMs is the most one failover can delay a lease's
	// expiry with this node's timing options.
	WorstCaseFailoverDelayMs int64 `json:"worst_case_failover_delay_ms"`
	// StateHash is a checksum of this replica's lease state (hex), and
	// StateIndex the log index it reflects: replicas at the same index
	// have the same hash. Optional (absent from older nodes).
	StateHash  string `json:"state_hash,omitempty"`
	StateIndex uint64 `json:"state_index,omitempty"`
}

// LeaderJSON names the Raft leader.
type LeaderJSON struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
}

// MemberJSON is one server of the Raft configuration, and the body of
// POST /v1/members (where "voter" defaults to true when absent).
type MemberJSON struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	// HTTPAddr is the member's client API address, empty when this node
	// could not learn it.
	HTTPAddr string `json:"http_addr"`
	Voter    bool   `json:"voter"`
}

// AddMemberJSON is the body of POST /v1/members.
type AddMemberJSON struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// Voter defaults to true.
	Voter *bool `json:"voter,omitempty"`
}

// ToMember converts the request to a MemberJSON.
func (j AddMemberJSON) ToMember() MemberJSON {
	voter := j.Voter == nil || *j.Voter
	return MemberJSON{ID: j.ID, RaftAddr: j.RaftAddr, HTTPAddr: j.HTTPAddr, Voter: voter}
}

// EventsJSON is the body of the blocking query GET /v1/events: the events
// with a revision above the requested index, in order, and the index to
// ask from next (the revision of the last event, or the store revision the
// wait ended at when there were none).
type EventsJSON struct {
	Events []EventJSON `json:"events"`
	Index  uint64      `json:"index"`
}

// RestoreReportJSON is the answer of a snapshot restore.
type RestoreReportJSON struct {
	// Imported counts the leases granted again; Skipped those left out
	// (expired in the snapshot, or held by another holder now), with why.
	Imported int           `json:"imported"`
	Skipped  []SkippedJSON `json:"skipped,omitempty"`
	// TokenFloor is the floor every imported token is above.
	TokenFloor uint64 `json:"token_floor"`
}

// SkippedJSON is one lease a restore or migration did not import.
type SkippedJSON struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}
