package fsm

import (
	"time"

	"github.com/raftlease/raftlease"
)

// Kind names a command type. It is the first byte of every encoded command.
type Kind uint8

const (
	KindAcquire Kind = 1
	KindRenew   Kind = 2
	KindRelease Kind = 3
	KindExpire  Kind = 4
	KindEpoch   Kind = 5
	KindTick    Kind = 6
	KindBatch   Kind = 7

	// kindIgnorable marks a command type that replicas which do not know it
	// may skip. No current type carries it; a future one that only adds
	// information (not state) may.
	kindIgnorable Kind = 0x80
)

var kindNames = map[Kind]string{
	KindAcquire: "acquire",
	KindRenew:   "renew",
	KindRelease: "release",
	KindExpire:  "expire",
	KindEpoch:   "epoch",
	KindTick:    "tick",
	KindBatch:   "batch",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "unknown"
}

// Stamp is the proposing leader's clock at the moment it proposed a command.
// It is the only way time enters the state machine.
type Stamp struct {
	// Term identifies the leadership that took the reading (the Raft term).
	// Readings are only compared with the epoch of the same term.
	Term uint64
	// Reading is the leader's monotonic clock, in nanoseconds from an
	// arbitrary origin of that leader's process.
	Reading int64
	// Wall is the leader's wall clock in Unix nanoseconds. It is reported as
	// a lease's acquired-at time and never used for a decision.
	Wall int64
}

// ExpireTarget names a lease the leader believes has expired. The token
// guards against removing a lease that was re-acquired since.
type ExpireTarget struct {
	Name  string
	Token uint64
}

// Command is one state machine command. Kind selects which fields matter;
// use the constructors (Acquire, Renew, …) to build one.
type Command struct {
	Kind  Kind
	Stamp Stamp

	Name     string
	Holder   string
	Token    uint64
	TTL      time.Duration
	Metadata map[string]string
	// SetMetadata, for renew, replaces the metadata with Metadata (which may
	// be empty); false keeps it.
	SetMetadata bool
	// TokenFloor, for acquire, makes a new token strictly greater than it.
	TokenFloor uint64

	// Targets, for expire.
	Targets []ExpireTarget
	// Commands, for batch. A batch never nests another batch.
	Commands []Command
}

// Acquire builds an acquire command.
func Acquire(s Stamp, r raftlease.AcquireRequest) Command {
	return Command{Kind: KindAcquire, Stamp: s, Name: r.Name, Holder: r.Holder, TTL: r.TTL, Metadata: r.Metadata, TokenFloor: r.TokenFloor}
}

// Renew builds a renew command.
func Renew(s Stamp, r raftlease.RenewRequest) Command {
	return Command{Kind: KindRenew, Stamp: s, Name: r.Name, Holder: r.Holder, Token: r.Token, TTL: r.TTL, Metadata: r.Metadata, SetMetadata: r.Metadata != nil}
}

// Release builds a release command.
func Release(s Stamp, r raftlease.ReleaseRequest) Command {
	return Command{Kind: KindRelease, Stamp: s, Name: r.Name, Holder: r.Holder, Token: r.Token}
}

// Expire builds an expire command for the given targets.
func Expire(s Stamp, targets []ExpireTarget) Command {
	return Command{Kind: KindExpire, Stamp: s, Targets: targets}
}

// Epoch builds the command a new leader commits before serving anything.
func Epoch(s Stamp) Command { return Command{Kind: KindEpoch, Stamp: s} }

// Tick builds the command an idle leader commits to keep consensus time
// moving while leases are live.
func Tick(s Stamp) Command { return Command{Kind: KindTick, Stamp: s} }

// Batch groups commands into one log entry (group commit). They apply in
// order, each with its own stamp, and share the entry's revision.
func Batch(cmds ...Command) Command { return Command{Kind: KindBatch, Commands: cmds} }
