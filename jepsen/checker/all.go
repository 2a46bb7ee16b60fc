package checker

import "github.com/raftlease/raftlease/jepsen/history"

// All runs every checker on h, in a fixed order, and returns the verdicts
// and porcupine's linearization (nil without register operations).
// logFiles are the node and participant logs NodeLogs scans.
func All(h *history.History, logFiles []string, o Options) ([]Verdict, *Linearization) {
	lin, l := Linearizability(h, o)
	return []Verdict{
		lin,
		FencedExclusion(h, o),
		UnfencedOverlap(h, o),
		TokenMonotonicity(h, o),
		NoLostAcks(h, o),
		NoEarlyTakeover(h, o),
		OneLeaderPerTerm(h, o),
		Convergence(h, o),
		NoHangs(h, o),
		NodeLogs(logFiles, o),
		DamagedDataRefused(h, o),
	}, l
}

// Valid reports whether every verdict is valid.
func Valid(vs []Verdict) bool {
	for _, v := range vs {
		if !v.Valid {
			return false
		}
	}
	return true
}
