package history

import (
	"fmt"
	"strings"
	"time"
)

// Record types: the "type" field of each history.jsonl line.
const (
	TypeRun         = "run"         // RunInfo, first line of the harness's file
	TypeInvoke      = "invoke"      // Op without its completion
	TypeComplete    = "complete"    // Completion of an earlier invoke
	TypeNemesis     = "nemesis"     // NemesisEvent
	TypeParticipant = "participant" // ParticipantEvent
	TypeWrite       = "write"       // FencedWrite
	TypeStatus      = "status"      // NodeStatus
	TypeFinal       = "final"       // NodeFinal
	TypeEnd         = "end"         // End of the run
)

// Record is one line of history.jsonl: Type says which one field is set.
type Record struct {
	Type        string            `json:"type"`
	Run         *RunInfo          `json:"run,omitempty"`
	Op          *Op               `json:"op,omitempty"`
	Completion  *Completion       `json:"completion,omitempty"`
	Nemesis     *NemesisEvent     `json:"nemesis,omitempty"`
	Participant *ParticipantEvent `json:"participant,omitempty"`
	Write       *FencedWrite      `json:"write,omitempty"`
	Status      *NodeStatus       `json:"status,omitempty"`
	Final       *NodeFinal        `json:"final,omitempty"`
	End         *End              `json:"end,omitempty"`
}

// Completion is the completion of operation (Process, ID).
type Completion struct {
	Process  string       `json:"process"`
	ID       int64        `json:"id"`
	Complete int64        `json:"complete_ns"`
	Outcome  Outcome      `json:"outcome"`
	Code     string       `json:"code,omitempty"`
	Lease    *LeaseResult `json:"lease,omitempty"`
	Error    string       `json:"error,omitempty"`
}

// RunConfig is what the checkers need to know about a run's timing, and
// what a person needs to reproduce it.
type RunConfig struct {
	// Workloads run: WorkloadRegister and/or WorkloadElector.
	Workloads []string `json:"workloads,omitempty"`
	// Nodes and Participants are the ids of the leasenode processes and
	// elector participant processes.
	Nodes        []string `json:"nodes,omitempty"`
	Participants []string `json:"participants,omitempty"`
	// Names are the lease names of the register workload; ElectorName is
	// the elector workload's lease.
	Names       []string `json:"names,omitempty"`
	ElectorName string   `json:"elector_name,omitempty"`
	// DurationNs is the planned run duration.
	DurationNs int64 `json:"duration_ns,omitempty"`
	// RegisterTTLNs is the TTL of the register workload (long: nothing
	// expires); ElectorTTLNs the elector's lease duration.
	RegisterTTLNs int64 `json:"register_ttl_ns,omitempty"`
	ElectorTTLNs  int64 `json:"elector_ttl_ns,omitempty"`
	// MaxDrift is the clock-rate drift bound the cluster is configured with
	// (0.01 = 1%).
	MaxDrift float64 `json:"max_drift"`
	// OpTimeoutNs bounds every client operation.
	OpTimeoutNs int64 `json:"op_timeout_ns,omitempty"`
	// Extra holds free-form settings (snapshot threshold, nemesis
	// parameters, unsafe test modes) for the report.
	Extra map[string]string `json:"extra,omitempty"`
}

// OpTimeout returns OpTimeoutNs as a duration.
func (c RunConfig) OpTimeout() time.Duration { return time.Duration(c.OpTimeoutNs) }

// RunInfo heads a run's history.
type RunInfo struct {
	Seed   uint64    `json:"seed"`
	Family string    `json:"family,omitempty"`
	GitSHA string    `json:"git_sha,omitempty"`
	Start  int64     `json:"start_ns"`
	Config RunConfig `json:"config"`
}

// End marks the end of recording.
type End struct {
	Time int64 `json:"time_ns"`
}

// Nemesis phases.
const (
	PhaseStart = "start"
	PhaseStop  = "stop"
)

// NemesisEvent is the start or stop of one nemesis step, with the targets
// the step resolved to at run time (the leader, the holder, ...).
type NemesisEvent struct {
	Step  int    `json:"step"`
	Phase string `json:"phase"`
	Kind  string `json:"kind"`
	// Targets are node or participant ids.
	Targets []string `json:"targets,omitempty"`
	// Detail describes the fault for people ("cut n1->n2, n1->n3").
	Detail string `json:"detail,omitempty"`
	Time   int64  `json:"time_ns"`
	// Error is set when applying or healing the fault failed.
	Error string `json:"error,omitempty"`
	// Observed is what the nemesis saw while applying the fault, when the
	// fault is itself a test (store-corrupt: "refused: <the node's error>").
	Observed string `json:"observed,omitempty"`
}

// Ref names the event in reports: "nemesis step 3 start".
func (e NemesisEvent) Ref() string { return fmt.Sprintf("nemesis step %d %s", e.Step, e.Phase) }

// Participant event kinds.
const (
	Gained = "gained" // the participant's elector became leader
	Lost   = "lost"   // it stopped being leader
)

// ParticipantEvent is an elector participant gaining or losing leadership.
type ParticipantEvent struct {
	Participant string `json:"participant"`
	// Seq numbers the participant's events.
	Seq   int64  `json:"seq"`
	Name  string `json:"name"`
	Event string `json:"event"`
	Token uint64 `json:"token"`
	// Reason is the elector's Change.Reason.
	Reason string `json:"reason,omitempty"`
	Time   int64  `json:"time_ns"`
}

// Ref names the event in reports: "participant p2#5".
func (e ParticipantEvent) Ref() string { return fmt.Sprintf("participant %s#%d", e.Participant, e.Seq) }

// FencedWrite is one write the fenced register received.
type FencedWrite struct {
	// Index is the register's order of writes, from 1.
	Index  int64  `json:"index"`
	Writer string `json:"writer"`
	Token  uint64 `json:"token"`
	// Fenced writes are checked against the highest token; unfenced
	// (control) writes are always accepted.
	Fenced bool `json:"fenced"`
	// Seq is the writer's own sequence number.
	Seq      int64 `json:"seq"`
	Accepted bool  `json:"accepted"`
	// Highest is the highest fenced token accepted before this write.
	Highest uint64 `json:"highest"`
	// Time is when the register decided.
	Time int64 `json:"time_ns"`
}

// Ref names the write in reports: "write #12".
func (w FencedWrite) Ref() string { return fmt.Sprintf("write #%d", w.Index) }

// NodeStatus is one sample of a node's Raft status.
type NodeStatus struct {
	Node string `json:"node"`
	Time int64  `json:"time_ns"`
	// State is the Raft state: "leader", "follower", "candidate",
	// "shutdown".
	State string `json:"state"`
	Term  uint64 `json:"term"`
	// Leader is the leader this node knows of ("" when none).
	Leader       string `json:"leader,omitempty"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index,omitempty"`
}

// Ref names the sample in reports: "status n1@123456".
func (s NodeStatus) Ref() string { return fmt.Sprintf("status %s@%d", s.Node, s.Time) }

// IsLeader reports whether the node said it was the leader.
func (s NodeStatus) IsLeader() bool { return strings.EqualFold(s.State, "leader") }

// NodeFinal is a node's state after the final heal, once the driver has
// let the cluster settle.
type NodeFinal struct {
	Node         string `json:"node"`
	Time         int64  `json:"time_ns"`
	AppliedIndex uint64 `json:"applied_index"`
	// FSMHash is the node's state-machine hash, as the node reports it.
	FSMHash string `json:"fsm_hash"`
	// Error is set when the driver could not read the node's state.
	Error string `json:"error,omitempty"`
}

// Ref names the record in reports: "final n2".
func (f NodeFinal) Ref() string { return "final " + f.Node }
