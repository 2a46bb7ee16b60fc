package checker

import (
	"time"

	"github.com/raftlease/raftlease/jepsen/history"
)

// NoHangs checks that operations return in bounded time: every completed
// operation (ok, refused, failed or ambiguous) returned within OpTimeout +
// HangGrace of its invoke, and no operation invoked more than that before
// the end of the history is still pending. Operations pending at the end
// that were invoked later are only counted (pending_at_end).
func NoHangs(h *history.History, o Options) Verdict {
	c := newCollector(NameNoHangs, o)
	if o.OpTimeout <= 0 {
		return c.skip("no operation timeout configured")
	}
	if len(h.Ops) == 0 {
		return c.skip("no operations")
	}
	limit := o.OpTimeout + o.hangGrace()
	end := h.End()
	stopped := processStops(h)
	var worst time.Duration
	for _, op := range h.Ops {
		if op.Workload == history.WorkloadElector && stopped.during(op.Holder, op.Invoke, opEnd(op, end)) {
			c.count("excused_process_stopped", 1)
			continue
		}
		if op.Pending() {
			c.count("pending_at_end", 1)
			if waited := time.Duration(end - op.Invoke); waited > limit {
				c.add(op.Invoke, refs(op.Ref()), "%s still pending at the end, %s after its invoke (limit %s)", op.String(), waited, limit)
			}
			continue
		}
		l := op.Latency()
		worst = max(worst, l)
		if l > limit {
			c.add(op.Complete, refs(op.Ref()), "%s took %s (limit %s)", op.String(), l, limit)
		}
	}
	c.count("max_latency_ns", int64(worst))
	return c.verdict()
}

func opEnd(op history.Op, end int64) int64 {
	if op.Pending() {
		return end
	}
	return op.Complete
}

// stops holds, per participant, the nemesis windows that stopped its
// process (paused or killed it).
type stops map[string][]Window

func processStops(h *history.History) stops {
	out := stops{}
	for _, w := range NemesisWindows(h) {
		switch w.Kind {
		case "pause-participant", "pause-holder", "kill-holder":
			for _, t := range w.Targets {
				out[t] = append(out[t], w)
			}
		}
	}
	return out
}

// during reports whether participant p was stopped at some time in
// [from, to].
func (s stops) during(p string, from, to int64) bool {
	for _, w := range s[p] {
		if w.Start <= to && from <= w.Stop {
			return true
		}
	}
	return false
}
