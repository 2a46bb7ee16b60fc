package checker

import (
	"fmt"
	"slices"
	"strings"

	"github.com/raftlease/raftlease/jepsen/history"
)

// OneLeaderPerTerm checks the node status samples: no two nodes ever
// report themselves leader of the same Raft term. Only self-reports count
// (State "leader"): a follower's idea of the leader may lag its term.
func OneLeaderPerTerm(h *history.History, o Options) Verdict {
	c := newCollector(NameOneLeaderPerTerm, o)
	if len(h.Statuses) == 0 {
		return c.skip("no node status samples")
	}
	type claim struct{ node, ref string }
	leaders := map[uint64]claim{}
	reported := map[string]bool{}
	for _, s := range h.Statuses {
		if !s.IsLeader() {
			continue
		}
		c.count("leader_samples", 1)
		prev, ok := leaders[s.Term]
		switch {
		case !ok:
			leaders[s.Term] = claim{s.Node, s.Ref()}
		case prev.node != s.Node:
			key := fmt.Sprintf("%d\x00%s", s.Term, s.Node)
			if !reported[key] {
				reported[key] = true
				c.add(s.Time, refs(prev.ref, s.Ref()), "term %d has two leaders: %s and %s", s.Term, prev.node, s.Node)
			}
		}
	}
	c.count("samples", int64(len(h.Statuses)))
	c.count("terms", int64(len(leaders)))
	return c.verdict()
}

// Convergence checks the final node states recorded after the last heal:
// every node reports the same applied index and the same FSM hash, and
// every node could be read.
func Convergence(h *history.History, o Options) Verdict {
	c := newCollector(NameConvergence, o)
	if len(h.Finals) == 0 {
		return c.skip("no final node states")
	}
	c.count("nodes", int64(len(h.Finals)))
	var ref *history.NodeFinal
	var parts, all []string
	converged := true
	for i, f := range h.Finals {
		all = append(all, f.Ref())
		if f.Error != "" {
			c.add(f.Time, refs(f.Ref()), "node %s: final state unreadable: %s", f.Node, f.Error)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: applied %d hash %s", f.Node, f.AppliedIndex, f.FSMHash))
		if ref == nil {
			ref = &h.Finals[i]
		} else if f.AppliedIndex != ref.AppliedIndex || f.FSMHash != ref.FSMHash {
			converged = false
		}
	}
	if !converged {
		slices.Sort(parts)
		c.add(h.Finals[len(h.Finals)-1].Time, all, "nodes did not converge: %s", strings.Join(parts, "; "))
	}
	return c.verdict()
}
