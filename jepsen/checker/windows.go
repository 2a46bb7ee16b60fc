package checker

import "github.com/raftlease/raftlease/jepsen/history"

// Window is one nemesis step from start to stop.
type Window struct {
	Step    int
	Kind    string
	Targets []string
	Detail  string
	Start   int64
	// Stop is the stop time, or the end of the history when the step never
	// stopped.
	Stop int64
}

// NemesisWindows pairs the nemesis start and stop events of h.
func NemesisWindows(h *history.History) []Window {
	var out []Window
	open := map[int]int{}
	for _, e := range h.Nemesis {
		switch e.Phase {
		case history.PhaseStart:
			open[e.Step] = len(out)
			out = append(out, Window{Step: e.Step, Kind: e.Kind, Targets: e.Targets, Detail: e.Detail, Start: e.Time, Stop: -1})
		case history.PhaseStop:
			if i, ok := open[e.Step]; ok {
				out[i].Stop = e.Time
				delete(open, e.Step)
			}
		}
	}
	end := h.End()
	for i := range out {
		if out[i].Stop < 0 {
			out[i].Stop = max(end, out[i].Start)
		}
	}
	return out
}
