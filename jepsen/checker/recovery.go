package checker

import (
	"slices"
	"time"

	"github.com/raftlease/raftlease/jepsen/history"
)

// Recovery holds the recovery-time distributions of a run.
type Recovery struct {
	// LeaderLoss: from the start of a nemesis step of a kind that takes a
	// node out (deposing) whose targets include the current Raft leader
	// (the leader sample of the highest term seen so far) to the first
	// sample of a leader in a higher term.
	LeaderLoss Distribution `json:"leader_loss_to_new_leader"`
	// HealToWrite: from the stop of a nemesis step (a heal) to the first
	// successful write after it: an ok acquire/renew/release invoked at or
	// after the stop (its completion), or an accepted fenced write.
	HealToWrite Distribution `json:"heal_to_first_ok_write"`
	// HolderDeath: from the start of a nemesis step whose targets include
	// the current holder (the writer of the last accepted fenced write) to
	// the first accepted fenced write by another writer with a higher
	// token.
	HolderDeath Distribution `json:"holder_death_to_new_holder_write"`
}

// Recoveries measures the recovery times of h.
func Recoveries(h *history.History) Recovery {
	var r Recovery
	var leaders []history.NodeStatus
	for _, s := range h.Statuses {
		if s.IsLeader() {
			leaders = append(leaders, s)
		}
	}
	var accepted []history.FencedWrite
	for _, w := range h.Writes {
		if w.Fenced && w.Accepted {
			accepted = append(accepted, w)
		}
	}
	var leaderSamples, healSamples, holderSamples []time.Duration
	for _, e := range h.Nemesis {
		if e.Error != "" {
			continue
		}
		switch e.Phase {
		case history.PhaseStart:
			if d, ok, hit := leaderRecovery(leaders, e, stopTime(h, e)); hit {
				if ok {
					leaderSamples = append(leaderSamples, d)
				} else {
					r.LeaderLoss.Unrecovered++
				}
			}
			if d, ok, hit := holderRecovery(accepted, e); hit {
				if ok {
					holderSamples = append(holderSamples, d)
				} else {
					r.HolderDeath.Unrecovered++
				}
			}
		case history.PhaseStop:
			if d, ok := healRecovery(h, accepted, e.Time); ok {
				healSamples = append(healSamples, d)
			} else {
				r.HealToWrite.Unrecovered++
			}
		}
	}
	keep := func(d *Distribution, s []time.Duration) {
		u := d.Unrecovered
		*d = Summarise(s)
		d.Unrecovered = u
	}
	keep(&r.LeaderLoss, leaderSamples)
	keep(&r.HealToWrite, healSamples)
	keep(&r.HolderDeath, holderSamples)
	return r
}

// deposing are the nemesis kinds that take their targets out of the
// cluster, so that a leader among them must be replaced. The others (a
// bridge node, slow or lossy links, clock and storage faults, a rolling
// restart whose start is not when the leader goes) do not start a leader
// loss even when they target the leader.
var deposing = map[string]bool{
	"kill-random": true, "kill-leader": true, "kill-majority": true,
	"pause-node": true, "pause-leader": true,
	"partition-one": true, "partition-leader": true, "partition-halves": true, "partition-one-way": true,
	"sigterm-leader": true, "member-remove-leader": true, "member-replace": true, "store-corrupt": true,
}

// mayDepose are the kinds that depose a leader among their targets only
// sometimes: in a ring of 5, every node still reaches a majority through
// its two neighbours. They count as a leader loss only when a new leader
// was elected before the step ended.
var mayDepose = map[string]bool{"partition-ring": true}

// leaderRecovery: hit when e, a deposing step, targets the leader of the
// moment.
// stop is the time the step ended (-1: never).
func leaderRecovery(leaders []history.NodeStatus, e history.NemesisEvent, stop int64) (d time.Duration, ok, hit bool) {
	if !deposing[e.Kind] && !mayDepose[e.Kind] {
		return 0, false, false
	}
	var cur *history.NodeStatus
	for i := range leaders {
		s := &leaders[i]
		if s.Time > e.Time {
			break
		}
		if cur == nil || s.Term >= cur.Term {
			cur = s
		}
	}
	if cur == nil || !slices.Contains(e.Targets, cur.Node) {
		return 0, false, false
	}
	for _, s := range leaders {
		if s.Time > e.Time && s.Term > cur.Term {
			if mayDepose[e.Kind] && stop >= 0 && s.Time > stop {
				return 0, false, false // the leader kept its place through the step
			}
			return time.Duration(s.Time - e.Time), true, true
		}
	}
	if mayDepose[e.Kind] {
		return 0, false, false
	}
	return 0, false, true
}

// stopTime is the time of the stop event of start event e's step (-1:
// none).
func stopTime(h *history.History, e history.NemesisEvent) int64 {
	for _, x := range h.Nemesis {
		if x.Step == e.Step && x.Phase == history.PhaseStop && x.Time >= e.Time {
			return x.Time
		}
	}
	return -1
}

// holderRecovery: hit when e targets the holder of the moment.
func holderRecovery(accepted []history.FencedWrite, e history.NemesisEvent) (d time.Duration, ok, hit bool) {
	var cur *history.FencedWrite
	for i := range accepted {
		if accepted[i].Time > e.Time {
			break
		}
		cur = &accepted[i]
	}
	if cur == nil || !slices.Contains(e.Targets, cur.Writer) {
		return 0, false, false
	}
	for _, w := range accepted {
		if w.Time > e.Time && w.Writer != cur.Writer && w.Token > cur.Token {
			return time.Duration(w.Time - e.Time), true, true
		}
	}
	return 0, false, true
}

func healRecovery(h *history.History, accepted []history.FencedWrite, at int64) (time.Duration, bool) {
	first := int64(-1)
	for _, op := range h.Ops {
		if op.Kind.IsWrite() && op.Outcome == history.OK && op.Invoke >= at && (first < 0 || op.Complete < first) {
			first = op.Complete
		}
	}
	for _, w := range accepted {
		if w.Time >= at {
			if first < 0 || w.Time < first {
				first = w.Time
			}
			break
		}
	}
	if first < 0 {
		return 0, false
	}
	return time.Duration(first - at), true
}

// Latencies returns, per operation kind, the latency distribution of the
// completed operations (every outcome but pending).
func Latencies(h *history.History) map[history.Kind]Distribution {
	samples := map[history.Kind][]time.Duration{}
	for _, op := range h.Ops {
		if !op.Pending() {
			samples[op.Kind] = append(samples[op.Kind], op.Latency())
		}
	}
	out := map[history.Kind]Distribution{}
	for k, s := range samples {
		out[k] = Summarise(s)
	}
	return out
}
