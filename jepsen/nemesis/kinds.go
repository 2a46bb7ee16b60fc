package nemesis

import "slices"

// Family is a group of related faults; one run injects one family.
type Family string

// The families. FamilyClockBeyond is a negative control: it breaks the
// drift bound on purpose, and the harness must detect early takeover.
const (
	FamilyNone        Family = "none"
	FamilyPartition   Family = "partition"
	FamilyNetwork     Family = "network"
	FamilyKill        Family = "kill"
	FamilyPause       Family = "pause"
	FamilyClock       Family = "clock"
	FamilyClockBeyond Family = "clock-beyond"
	FamilyMembership  Family = "membership"
	FamilyRestart     Family = "restart"
	FamilyStorage     Family = "storage"
	FamilySnapshot    Family = "snapshot"
)

// Families lists every family, in the order `make jepsen-short` runs them.
func Families() []Family {
	return []Family{FamilyNone, FamilyPartition, FamilyNetwork, FamilyKill, FamilyPause, FamilyClock, FamilyMembership,
		FamilyRestart, FamilyStorage, FamilySnapshot, FamilyClockBeyond}
}

// Kind is one fault.
type Kind string

// Fault kinds. Unless noted, a step holds its fault for Step.Hold and the
// Stop undoes it (heal the links, restart the process, SIGCONT, reset the
// clock, restore the log store).
const (
	// Partitions cut the directed links listed in Step.Links.
	PartitionOne    Kind = "partition-one"     // isolate one node
	PartitionLeader Kind = "partition-leader"  // isolate the leader (Select leader)
	PartitionHalves Kind = "partition-halves"  // two sides, the larger a majority
	PartitionRing   Kind = "partition-ring"    // 5 nodes: each talks only to its two ring neighbours
	PartitionOneWay Kind = "partition-one-way" // drop traffic from one node to the others only
	PartitionBridge Kind = "partition-bridge"  // two sides that only one bridge node connects

	// Degraded links, through the nodes' transport fault layer: every
	// link to and from the target (a node, or the leader) is slowed by
	// Delay per write, or drops writes with probability DropRate.
	LinkDelay Kind = "link-delay"
	LinkDrop  Kind = "link-drop"

	// kill -9, restarted at Stop.
	KillRandom   Kind = "kill-random"
	KillLeader   Kind = "kill-leader"   // Select leader
	KillMajority Kind = "kill-majority" // a majority of the nodes at once
	KillHolder   Kind = "kill-holder"   // the participant holding the elector lease (Select holder)

	// SIGSTOP, SIGCONT at Stop.
	PauseNode        Kind = "pause-node"
	PauseLeader      Kind = "pause-leader"      // Select leader
	PauseParticipant Kind = "pause-participant" // longer than the TTL
	PauseHolder      Kind = "pause-holder"      // Select holder; longer than the TTL, except nested in clock-beyond

	// Clocks of the injectable clock (leasenode's unsafe test hooks).
	ClockJump Kind = "clock-jump" // step the node's wall clock by ClockOffset
	ClockSkew Kind = "clock-skew" // run the node's monotonic clock at ClockRate

	// Membership changes are instantaneous (Hold 0) and permanent.
	MemberAdd          Kind = "member-add"           // add Targets[0], a spare node, as a voter
	MemberRemove       Kind = "member-remove"        // remove a follower (Select follower)
	MemberRemoveLeader Kind = "member-remove-leader" // remove the leader (Select leader)
	MemberReplace      Kind = "member-replace"       // wipe a follower and rejoin it as NewID

	// Graceful stops.
	TermLeader     Kind = "sigterm-leader"  // SIGTERM the leader, restart at Stop
	RollingRestart Kind = "rolling-restart" // SIGTERM and restart Targets one at a time over Hold

	// The log store of the unsafe test hooks.
	StoreSlow Kind = "store-slow" // add Delay to every log-store write
	StoreFail Kind = "store-fail" // fail log-store writes with probability ErrorRate
	// StoreCorrupt kills a follower, damages its data dir (Corrupt names
	// what: the bolt log store or its newest snapshot) and restarts it,
	// which must refuse to start with a clear error while the others
	// serve on; Stop puts the undamaged data dir back and restarts it.
	StoreCorrupt Kind = "store-corrupt"

	// Heal ends every schedule: every fault is undone.
	Heal Kind = "heal"
)

// Domain says what a kind's targets are.
type Domain int

// Domains.
const (
	DomainNone         Domain = iota // heal
	DomainNodes                      // leasenode processes
	DomainParticipants               // elector participant processes
)

// Domain returns the target domain of k.
func (k Kind) Domain() Domain {
	switch k {
	case Heal:
		return DomainNone
	case KillHolder, PauseParticipant, PauseHolder:
		return DomainParticipants
	}
	return DomainNodes
}

// IsPartition reports whether k cuts links.
func (k Kind) IsPartition() bool {
	switch k {
	case PartitionOne, PartitionLeader, PartitionHalves, PartitionRing, PartitionOneWay, PartitionBridge:
		return true
	}
	return false
}

// IsMembership reports whether k changes the membership.
func (k Kind) IsMembership() bool {
	switch k {
	case MemberAdd, MemberRemove, MemberRemoveLeader, MemberReplace:
		return true
	}
	return false
}

// Instantaneous reports whether k is applied at once and never held
// (membership changes, heal).
func (k Kind) Instantaneous() bool { return k == Heal || k.IsMembership() }

// familyKinds lists the kinds each family draws from.
var familyKinds = map[Family][]Kind{
	FamilyNone:        {},
	FamilyPartition:   {PartitionOne, PartitionLeader, PartitionHalves, PartitionRing, PartitionOneWay, PartitionBridge},
	FamilyNetwork:     {LinkDelay, LinkDrop},
	FamilyKill:        {KillRandom, KillLeader, KillMajority, KillHolder},
	FamilyPause:       {PauseNode, PauseLeader, PauseParticipant, PauseHolder},
	FamilyClock:       {ClockJump, ClockSkew},
	FamilyClockBeyond: {ClockSkew, PauseHolder, KillLeader},
	FamilyMembership:  {MemberAdd, MemberRemove, MemberRemoveLeader, MemberReplace},
	FamilyRestart:     {TermLeader, RollingRestart},
	FamilyStorage:     {StoreSlow, StoreFail, StoreCorrupt},
	FamilySnapshot:    {PartitionOne, KillRandom},
}

// Kinds returns the kinds family f draws from (nil for an unknown family).
func (f Family) Kinds() []Kind { return slices.Clone(familyKinds[f]) }

// Valid reports whether f is a known family.
func (f Family) Valid() bool {
	_, ok := familyKinds[f]
	return ok
}

// NegativeControl reports whether f is expected to produce violations.
func (f Family) NegativeControl() bool { return f == FamilyClockBeyond }
