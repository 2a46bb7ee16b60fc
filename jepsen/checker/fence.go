package checker

import (
	"github.com/raftlease/raftlease/jepsen/history"
)

// FencedExclusion checks the fenced register's writes, in the register's
// order (FencedWrite.Index), fenced writes only:
//
//   - F1 one writer per token: no token is accepted from two different
//     writers;
//   - F2 accepted tokens never go down: every accepted token is at least
//     the highest accepted before it;
//   - F3 only stale writes are rejected: a rejected write carried a token
//     below the highest accepted before it (the register's own rule; a
//     violation means the register is broken, or records are missing);
//   - F4 the writer of an accepted token is the participant that gained
//     it, when a participant "gained" event names that token.
//
// Each violation names the offending write last in its Refs.
//
// Counters: fenced_accepted, stale_rejected, unfenced, writers.
func FencedExclusion(h *history.History, o Options) Verdict {
	c := newCollector(NameFencedExclusion, o)
	gainedBy := map[uint64]history.ParticipantEvent{}
	for _, e := range h.Participants {
		if e.Event == history.Gained {
			if _, ok := gainedBy[e.Token]; !ok {
				gainedBy[e.Token] = e
			}
		}
	}
	type first struct {
		writer string
		ref    string
	}
	tokenWriter := map[uint64]first{}
	writers := map[string]bool{}
	var highest uint64
	highestRef := ""
	fenced := 0
	for _, w := range h.Writes {
		writers[w.Writer] = true
		if !w.Fenced {
			c.count("unfenced", 1)
			continue
		}
		fenced++
		if !w.Accepted {
			if w.Token >= highest {
				c.add(w.Time, refs(w.Ref()), "F3: register rejected %s's write with token %d although the highest accepted token was %d", w.Writer, w.Token, highest)
			} else {
				c.count("stale_rejected", 1)
			}
			continue
		}
		c.count("fenced_accepted", 1)
		if f, ok := tokenWriter[w.Token]; ok && f.writer != w.Writer {
			c.add(w.Time, refs(f.ref, w.Ref()), "F1: token %d accepted from two writers: %s and %s", w.Token, f.writer, w.Writer)
		} else if !ok {
			tokenWriter[w.Token] = first{w.Writer, w.Ref()}
		}
		if w.Token < highest {
			c.add(w.Time, refs(highestRef, w.Ref()), "F2: accepted token went down: %s wrote with token %d after token %d was accepted", w.Writer, w.Token, highest)
		}
		if g, ok := gainedBy[w.Token]; ok && g.Participant != w.Writer {
			c.add(w.Time, refs(g.Ref(), w.Ref()), "F4: %s wrote with token %d, which %s gained", w.Writer, w.Token, g.Participant)
		}
		if w.Token >= highest {
			highest, highestRef = w.Token, w.Ref()
		}
	}
	c.count("writers", int64(len(writers)))
	if len(h.Writes) == 0 {
		return c.skip("no fenced-register writes")
	}
	if fenced == 0 {
		c.v.Note = "no fenced writes, only unfenced"
	}
	return c.verdict()
}
