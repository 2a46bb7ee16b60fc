package checker

import (
	"cmp"
	"slices"

	"github.com/raftlease/raftlease/jepsen/history"
)

// TokenMonotonicity checks the fencing tokens of each lease name over the
// whole history (so across leader changes, restarts and snapshot
// restores):
//
//   - M1 one holder per token: no token is seen with two holders (in ok
//     acquires, renews and gets, lease_held refusals, and participants'
//     gained events);
//   - M2 later grants get greater tokens: an acquire that returned token
//     T2 and was invoked after an operation that saw token T1 had
//     completed has T2 ≥ T1 (equal only as the same holder's idempotent
//     re-acquire, which M1 covers);
//   - M3 tokens are never 0 in a successful answer;
//   - M4 each participant's gained tokens never go down (the same token
//     again is a restarted participant's idempotent re-acquire).
func TokenMonotonicity(h *history.History, o Options) Verdict {
	c := newCollector(NameTokenMonotonicity, o)
	seen := 0
	for _, p := range byName(h) {
		type owner struct{ holder, ref string }
		holderOf := map[uint64]owner{}
		claim := func(token uint64, holder, ref string, t int64) {
			if f, ok := holderOf[token]; ok {
				if f.holder != holder {
					c.add(t, refs(f.ref, ref), "M1: lease %q token %d seen with two holders: %s and %s", p.name, token, f.holder, holder)
				}
				return
			}
			holderOf[token] = owner{holder, ref}
		}
		for _, ob := range p.obs {
			holder, token, ok := ob.shows()
			if !ok {
				continue
			}
			seen++
			if token == 0 {
				c.add(ob.complete, refs(ob.ref), "M3: lease %q: token 0 in a successful answer", p.name)
				continue
			}
			claim(token, holder, ob.ref, ob.complete)
		}
		for _, e := range h.Participants {
			if e.Event == history.Gained && e.Name == p.name {
				claim(e.Token, e.Participant, e.Ref(), e.Time)
			}
		}
		// M2: prefix maxima of observed tokens by completion time.
		type peak struct {
			complete int64
			token    uint64
			ref      string
		}
		var peaks []peak
		for _, ob := range p.obs {
			if _, token, ok := ob.shows(); ok {
				if len(peaks) == 0 || token > peaks[len(peaks)-1].token {
					peaks = append(peaks, peak{ob.complete, token, ob.ref})
				} else {
					peaks = append(peaks, peak{ob.complete, peaks[len(peaks)-1].token, peaks[len(peaks)-1].ref})
				}
			}
		}
		for _, ob := range p.obs {
			if !ob.grant {
				continue
			}
			// the last peak completed strictly before the grant was invoked
			i, _ := slices.BinarySearchFunc(peaks, ob.invoke, func(pk peak, t int64) int { return cmp.Compare(pk.complete, t) })
			if i == 0 {
				continue
			}
			if pk := peaks[i-1]; ob.token < pk.token {
				c.add(ob.complete, refs(pk.ref, ob.ref), "M2: lease %q: token %d granted to %s after token %d had been seen: tokens went down", p.name, ob.token, ob.holder, pk.token)
			}
		}
	}
	// M4
	last := map[string]history.ParticipantEvent{}
	for _, e := range h.Participants {
		if e.Event != history.Gained {
			continue
		}
		seen++
		if prev, ok := last[e.Participant+"\x00"+e.Name]; ok && e.Token < prev.Token {
			c.add(e.Time, refs(prev.Ref(), e.Ref()), "M4: participant %s gained lease %q with token %d after token %d", e.Participant, e.Name, e.Token, prev.Token)
		}
		last[e.Participant+"\x00"+e.Name] = e
	}
	c.count("tokens_seen", int64(seen))
	if seen == 0 {
		return c.skip("no tokens in the history")
	}
	return c.verdict()
}
