package checker

import (
	"cmp"
	"slices"

	"github.com/raftlease/raftlease/jepsen/history"
)

// UnfencedOverlap reports (it never fails) how often the unfenced control
// writes of two writers overlapped in time. A stint is the interval from
// the first to the last unfenced write of one writer under one token; two
// stints of different writers overlap when their intervals intersect.
// Every overlap is a moment when two participants believed they led and
// an unfenced resource would have taken both their writes: the harm that
// fencing prevents. With pauses longer than the TTL it is expected to be
// non-zero, while FencedExclusion stays valid.
//
// Counters: stints, overlaps, overlap_ns (sum of the overlapping spans).
func UnfencedOverlap(h *history.History, o Options) Verdict {
	c := newCollector(NameUnfencedOverlap, o)
	c.v.Informational = true
	c.v.Note = "reported, not a failure"
	type key struct {
		writer string
		token  uint64
	}
	type stint struct {
		key
		first, last       int64
		firstRef, lastRef string
	}
	idx := map[key]int{}
	var stints []stint
	for _, w := range h.Writes {
		if w.Fenced {
			continue
		}
		k := key{w.Writer, w.Token}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(stints)
			stints = append(stints, stint{key: k, first: w.Time, last: w.Time, firstRef: w.Ref(), lastRef: w.Ref()})
			continue
		}
		s := &stints[i]
		if w.Time < s.first {
			s.first, s.firstRef = w.Time, w.Ref()
		}
		if w.Time > s.last {
			s.last, s.lastRef = w.Time, w.Ref()
		}
	}
	if len(stints) == 0 {
		return c.skip("no unfenced writes")
	}
	slices.SortStableFunc(stints, func(a, b stint) int {
		return cmp.Or(cmp.Compare(a.first, b.first), cmp.Compare(a.writer, b.writer), cmp.Compare(a.token, b.token))
	})
	c.count("stints", int64(len(stints)))
	for i, a := range stints {
		for _, b := range stints[i+1:] {
			if b.first > a.last {
				break
			}
			if a.writer == b.writer {
				continue
			}
			from, to := b.first, min(a.last, b.last)
			c.count("overlaps", 1)
			c.count("overlap_ns", to-from)
			c.add(from, refs(a.firstRef, a.lastRef, b.firstRef, b.lastRef),
				"%s (token %d) and %s (token %d) both wrote unfenced for %s", a.writer, a.token, b.writer, b.token, ms(to-from))
		}
	}
	return c.verdict()
}
