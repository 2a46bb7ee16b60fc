package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/transport"
)

// Options configure a Node. Start from DefaultOptions (or a timing profile)
// and fill in the identity fields.
type Options struct {
	// ID is this node's unique, stable id within the cluster.
	ID string
	// DataDir holds the Raft log (raft.db, bolt) and snapshots. It must be
	// private to this node.
	DataDir string
	// BindAddr is the TCP address for Raft and node-to-node forwarding
	// ("127.0.0.1:0" picks a free port). AdvertiseAddr, when set, is the
	// address other nodes dial.
	BindAddr      string
	AdvertiseAddr string
	// APIAddr is this node's client API address (leasenode's HTTP address),
	// reported to other nodes so that status can name every member's and
	// the leader's. Informational; empty for embedded nodes without one.
	APIAddr string
	// Bootstrap starts a new cluster with this node as its only voter when
	// DataDir holds no Raft state. Set it on exactly one node of a new
	// cluster; the others Join.
	Bootstrap bool
	// TLS, when set, secures node-to-node traffic with mutual TLS.
	TLS *tls.Config
	// Faults injects network faults (tests only).
	Faults *transport.Faults
	// TestHooks, when set, turns on the UNSAFE fault-injection hooks of the
	// jepsen harness (crash points, log store faults, the stale-read
	// negative control, the wall-clock offset); see TestHooks. Nil, the
	// default, leaves the node exactly as it is without them. Pass the
	// hooks' Clock and Faults as Clock and Faults to inject those too.
	TestHooks *TestHooks

	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout and
	// CommitTimeout tune hashicorp/raft (see its Config).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration

	// TickInterval: a leader that has committed nothing for this long while
	// leases are live commits a tick, so a failover pauses consensus time by
	// at most this plus the election time.
	TickInterval time.Duration
	// OperationTimeout caps every operation whose ctx has no deadline.
	OperationTimeout time.Duration

	// MaxBatch is the most lease operations the leader puts in one Raft
	// entry (group commit); 1 turns group commit off. MaxBatchWait is how
	// long the leader may hold a non-full batch for more operations; zero
	// batches only what is already queued.
	MaxBatch     int
	MaxBatchWait time.Duration
	// MaxInflight is how many group-commit entries the leader lets be on
	// their way through Raft at once. While all are taken, operations gather
	// into the next entry, so batches grow with the load without a timer.
	MaxInflight int
	// MaxExpireBatch bounds the leases one expire command removes.
	MaxExpireBatch int

	// SnapshotThreshold (entries since the last snapshot), SnapshotInterval
	// (how often to check) and TrailingLogs (entries kept after a snapshot)
	// tune log compaction.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// SnapshotRetain is how many snapshots stay on disk.
	SnapshotRetain int

	// WatchRetain is how many recent events a node keeps so watches can
	// resume from a revision; WatchBuffer is each watch channel's capacity.
	WatchRetain int
	WatchBuffer int

	// NoSync turns off fsync of the log (benchmarks only; an acknowledged
	// write may then be lost on power failure).
	NoSync bool

	// Clock stamps commands and drives ticks and expiry; nil means the
	// system clock. Raft's own timers always use real time.
	Clock raftlease.Clock
	// Logger receives the node's logs; nil discards them.
	Logger hclog.Logger
}

// DefaultOptions returns options for a small cluster on a LAN: elections
// within about a second, a tick every 250 ms, group commit on.
func DefaultOptions() Options {
	return Options{
		BindAddr:           "127.0.0.1:0",
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
		TickInterval:       250 * time.Millisecond,
		OperationTimeout:   5 * time.Second,
		MaxBatch:           256,
		MaxBatchWait:       0,
		MaxInflight:        2,
		MaxExpireBatch:     256,
		SnapshotThreshold:  8192,
		SnapshotInterval:   30 * time.Second,
		TrailingLogs:       10240,
		SnapshotRetain:     2,
		WatchRetain:        4096,
		WatchBuffer:        256,
	}
}

// LocalOptions returns options for nodes on one machine (tests, `leasenode
// dev`, embedded clusters on loopback): fast elections and ticks.
func LocalOptions() Options {
	o := DefaultOptions()
	o.HeartbeatTimeout = 150 * time.Millisecond
	o.ElectionTimeout = 150 * time.Millisecond
	o.LeaderLeaseTimeout = 100 * time.Millisecond
	o.CommitTimeout = 5 * time.Millisecond
	o.TickInterval = 100 * time.Millisecond
	return o
}

// WorstCaseFailoverDelay is the most a single failover can delay a lease's
// expiry beyond its deadline: the consensus clock pauses from the last
// entry the old leader committed until the new leader's epoch. That is at
// most one tick interval of idleness, plus failure detection (heartbeat
// timeout) and an election (up to twice the election timeout, randomised),
// plus the epoch commit.
func (o Options) WorstCaseFailoverDelay() time.Duration {
	return o.TickInterval + o.HeartbeatTimeout + 2*o.ElectionTimeout + o.CommitTimeout
}

// Validate reports every problem with the options, by field name. It never
// changes them.
func (o Options) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &raftlease.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if err := raftlease.ValidateHolder(o.ID); err != nil {
		bad("ID", "%v", err)
	}
	if o.DataDir == "" {
		bad("DataDir", "must be set")
	}
	if o.BindAddr == "" {
		bad("BindAddr", "must be set")
	}
	positive := map[string]time.Duration{
		"HeartbeatTimeout": o.HeartbeatTimeout, "ElectionTimeout": o.ElectionTimeout,
		"LeaderLeaseTimeout": o.LeaderLeaseTimeout, "CommitTimeout": o.CommitTimeout,
		"TickInterval": o.TickInterval, "OperationTimeout": o.OperationTimeout,
		"SnapshotInterval": o.SnapshotInterval,
	}
	for _, field := range []string{"HeartbeatTimeout", "ElectionTimeout", "LeaderLeaseTimeout", "CommitTimeout", "TickInterval", "OperationTimeout", "SnapshotInterval"} {
		if positive[field] <= 0 {
			bad(field, "must be positive, is %v", positive[field])
		}
	}
	if o.HeartbeatTimeout > 0 && o.HeartbeatTimeout < 5*time.Millisecond {
		bad("HeartbeatTimeout", "%v is below raft's 5ms minimum", o.HeartbeatTimeout)
	}
	if o.LeaderLeaseTimeout > o.HeartbeatTimeout {
		bad("LeaderLeaseTimeout", "%v exceeds HeartbeatTimeout %v", o.LeaderLeaseTimeout, o.HeartbeatTimeout)
	}
	if o.ElectionTimeout < o.HeartbeatTimeout {
		bad("ElectionTimeout", "%v is below HeartbeatTimeout %v", o.ElectionTimeout, o.HeartbeatTimeout)
	}
	// A lease must be able to outlive one failover, or a healthy holder
	// loses it every time the leader changes.
	if d := o.WorstCaseFailoverDelay(); d >= raftlease.MaxTTL {
		bad("TickInterval", "worst-case failover delay %v leaves no usable TTL", d)
	}
	if o.TickInterval > 0 && o.TickInterval < raftlease.MinTTL/4 {
		bad("TickInterval", "%v is below %v; ticks would flood the log", o.TickInterval, raftlease.MinTTL/4)
	}
	if o.OperationTimeout > 0 && o.OperationTimeout <= o.ElectionTimeout {
		bad("OperationTimeout", "%v must exceed ElectionTimeout %v so an operation can outlast one election", o.OperationTimeout, o.ElectionTimeout)
	}
	if o.MaxBatch < 1 || o.MaxBatch > 4096 {
		bad("MaxBatch", "%d is outside [1, 4096]", o.MaxBatch)
	}
	if o.MaxBatchWait < 0 || o.MaxBatchWait > o.CommitTimeout*10 && o.MaxBatchWait > 10*time.Millisecond {
		bad("MaxBatchWait", "%v is negative or too long (at most 10ms)", o.MaxBatchWait)
	}
	if o.MaxInflight < 1 || o.MaxInflight > 64 {
		bad("MaxInflight", "%d is outside [1, 64]", o.MaxInflight)
	}
	if o.MaxExpireBatch < 1 {
		bad("MaxExpireBatch", "must be at least 1")
	}
	if o.SnapshotThreshold < 1 {
		bad("SnapshotThreshold", "must be at least 1")
	}
	if o.SnapshotRetain < 1 {
		bad("SnapshotRetain", "must be at least 1")
	}
	if o.WatchRetain < 1 || o.WatchBuffer < 1 {
		bad("WatchRetain", "WatchRetain and WatchBuffer must be at least 1")
	}
	return errors.Join(errs...)
}
