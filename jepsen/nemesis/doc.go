// Package nemesis plans the faults of a run: a seeded generator turns a
// Family, a duration and the cluster's shape into a Schedule of Steps
// (partition this, kill that, skew a clock, ...), and a Player executes a
// Schedule against a Nemesis, the interface the process driver implements
// (network namespaces or the transport fault layer, signals, the unsafe
// test hooks of leasenode).
//
// A schedule is data: it is printed, stored in the run directory and
// replayed. The same Options (seed included) always give the same
// Schedule. Steps that aim at a role rather than a node (the leader, the
// lease holder, a follower) carry a Selector and a Pick number; the
// Nemesis resolves them against the cluster as it is when the step starts
// (Resolve does it given a View), so the choice is reproducible given the
// cluster's state. Every schedule ends with a Heal step after which every
// fault is gone (partitions healed, processes running, clocks and storage
// back to normal), leaving the cluster time to converge before the run
// ends.
//
// # Goroutines
//
// None. Player.Play runs on the caller's goroutine and calls the Nemesis
// from it, one step event at a time.
package nemesis
