package checker

import (
	"slices"

	"github.com/raftlease/raftlease/jepsen/history"
)

// NoEarlyTakeover checks that no lease is granted under a new token while
// an earlier token's lease may still be live. For each lease name and each
// token T1 with acknowledged acquires or renews (ok, invoked at S with TTL
// d), its earliest expiry is B(T1) = max over them of S + d×(1 − drift)
// (EarliestExpiry): no store respecting the drift bound can let the lease
// go before then, and the holder's own safe-until comes before it. For
// every later token T2 > T1, the grant of T2 happened no later than
// G(T2): the earliest completion of an ok acquire returning T2, or the
// earliest participant "gained" event for it. The check is
//
//	G(T2) ≥ B(T1), unless a release of T1 that may have applied (ok,
//	ambiguous or pending) was invoked before G(T2).
//
// G is an upper bound of the grant instant, so every violation reported is
// certain; a grant exactly at B(T1) passes.
func NoEarlyTakeover(h *history.History, o Options) Verdict {
	c := newCollector(NameNoEarlyTakeover, o)
	gained := map[string][]history.ParticipantEvent{}
	for _, e := range h.Participants {
		if e.Event == history.Gained {
			gained[e.Name] = append(gained[e.Name], e)
		}
	}
	pairs := 0
	for _, p := range byName(h) {
		type term struct {
			holder   string
			bound    int64 // B, when hasBound
			hasBound bool
			boundRef string
			grant    int64 // G, when hasGrant
			hasGrant bool
			grantRef string
		}
		terms := map[uint64]*term{}
		get := func(t uint64) *term {
			if terms[t] == nil {
				terms[t] = &term{}
			}
			return terms[t]
		}
		for _, a := range p.acks {
			t := get(a.token)
			t.holder = a.holder
			if b := EarliestExpiry(a.invoke, a.ttl, o.MaxDrift); !t.hasBound || b > t.bound {
				t.bound, t.hasBound, t.boundRef = b, true, a.ref
			}
		}
		grantAt := func(token uint64, holder string, at int64, ref string) {
			t := get(token)
			if t.holder == "" {
				t.holder = holder
			}
			if !t.hasGrant || at < t.grant {
				t.grant, t.hasGrant, t.grantRef = at, true, ref
			}
		}
		for _, ob := range p.obs {
			if ob.grant {
				grantAt(ob.token, ob.holder, ob.complete, ob.ref)
			}
		}
		for _, e := range gained[p.name] {
			grantAt(e.Token, e.Participant, e.Time, e.Ref())
		}
		tokens := make([]uint64, 0, len(terms))
		for t := range terms {
			tokens = append(tokens, t)
		}
		slices.Sort(tokens)
		for j, t2 := range tokens {
			g := terms[t2]
			if !g.hasGrant {
				continue
			}
			for _, t1 := range tokens[:j] {
				prev := terms[t1]
				if !prev.hasBound {
					continue
				}
				pairs++
				if g.grant >= prev.bound {
					continue
				}
				if rel, ok := p.mayRelease[t1]; ok && rel < g.grant {
					continue
				}
				c.add(g.grant, refs(prev.boundRef, g.grantRef),
					"lease %q: token %d granted to %s by %s, %s before token %d (%s) could expire (earliest expiry from %s), with no release",
					p.name, t2, g.holder, g.grantRef, ms(prev.bound-g.grant), t1, prev.holder, prev.boundRef)
			}
		}
	}
	c.count("pairs_checked", int64(pairs))
	if pairs == 0 {
		return c.skip("no successive grants of a lease")
	}
	return c.verdict()
}
