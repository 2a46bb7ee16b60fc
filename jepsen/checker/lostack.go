package checker

import (
	"cmp"
	"slices"

	"github.com/raftlease/raftlease/jepsen/history"
)

// NoLostAcks checks that no acknowledged acquire, renew or release is
// lost. For each lease name, let an ack be an ok acquire or renew under
// token T, and let an observation be any completed operation that shows
// the lease's state: ok get/acquire/renew (held by H under T'), lease_held
// refusal (held by its current holder under T'), get not_found (free),
// renew/release refused not_holder (not held by H under T'). For an
// observation O invoked after acks have completed, let T* be the highest
// token acknowledged by then and B* the latest EarliestExpiry over the
// acks of T* completed by then. Then:
//
//   - L1 O shows no token below T* (an acknowledged grant is never
//     undone);
//   - L2 if O completed before B*, it shows the lease held under T*
//     unless a release of T* that may have applied (ok, ambiguous or
//     pending) was invoked before O completed: free, another token, or a
//     not_holder refusal for T* means the acknowledged acquire or renew was
//     lost;
//   - L3 O shows no token whose ok release completed before O was invoked.
//
// TTLs come from each operation (Op.TTL), the drift bound from Options.
func NoLostAcks(h *history.History, o Options) Verdict {
	c := newCollector(NameNoLostAcks, o)
	checked := 0
	for _, p := range byName(h) {
		if len(p.acks) == 0 && len(p.ackedRelease) == 0 {
			continue
		}
		// prefix[k] summarises acks[0..k].
		type best struct {
			token  uint64
			bound  int64
			ref    string
			holder string
		}
		prefix := make([]best, len(p.acks))
		var cur best
		for k, a := range p.acks {
			b := EarliestExpiry(a.invoke, a.ttl, o.MaxDrift)
			switch {
			case a.token > cur.token:
				cur = best{a.token, b, a.ref, a.holder}
			case a.token == cur.token && b > cur.bound:
				cur.bound, cur.ref = b, a.ref
			}
			prefix[k] = cur
		}
		obs := slices.Clone(p.obs)
		slices.SortStableFunc(obs, func(a, b observation) int { return cmp.Compare(a.invoke, b.invoke) })
		for _, ob := range obs {
			checked++
			holder, token, shows := ob.shows()
			if shows {
				if done, ok := p.ackedRelease[token]; ok && done < ob.invoke {
					c.add(ob.complete, refs(p.ackedReleaseRef[token], ob.ref), "L3: lease %q: acknowledged release of token %d lost: %s still sees %s holding it", p.name, token, ob.ref, holder)
				}
			}
			k, _ := slices.BinarySearchFunc(p.acks, ob.invoke, func(a ack, t int64) int { return cmp.Compare(a.complete, t) })
			if k == 0 {
				continue
			}
			b := prefix[k-1]
			if shows && token < b.token {
				c.add(ob.complete, refs(b.ref, ob.ref), "L1: lease %q: %s saw token %d after token %d (%s) was acknowledged", p.name, ob.ref, token, b.token, b.holder)
				continue
			}
			lost := false
			what := ""
			switch {
			case ob.free:
				lost, what = true, "the lease free"
			case ob.notHeld:
				lost, what = ob.holder == b.holder && ob.token == b.token, "the holder refused (not_holder)"
			case token != b.token:
				lost, what = true, "it held by "+holder+" under another token"
			}
			if !lost || ob.complete >= b.bound {
				continue
			}
			if rel, ok := p.mayRelease[b.token]; ok && rel < ob.complete {
				continue
			}
			c.add(ob.complete, refs(b.ref, ob.ref), "L2: lease %q: acknowledged grant of token %d to %s lost: %s found %s, %s before its earliest expiry, with no release",
				p.name, b.token, b.holder, ob.ref, what, ms(b.bound-ob.complete))
		}
	}
	c.count("observations", int64(checked))
	if checked == 0 {
		return c.skip("no acknowledged operations with later observations")
	}
	return c.verdict()
}
