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
	var worst time.Duration
	for _, op := range h.Ops {
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
