package checker

import "github.com/raftlease/raftlease/jepsen/history"

type heldKey struct {
	name, holder string
	token        uint64
}

// heldTokens lists the (name, holder, token) any register operation saw
// held.
func heldTokens(h *history.History) map[heldKey]bool {
	out := map[heldKey]bool{}
	for _, op := range h.Ops {
		if op.Workload != history.WorkloadRegister || op.Pending() {
			continue
		}
		switch {
		case op.Lease != nil && (op.Outcome == history.OK || op.Code == history.CodeLeaseHeld):
			out[heldKey{op.Name, op.Lease.Holder, op.Lease.Token}] = true
		case op.Outcome == history.OK && (op.Kind == history.Renew || op.Kind == history.Release):
			out[heldKey{op.Name, op.Holder, op.Token}] = true
		}
	}
	return out
}

// neededAmbiguousAcquires says, per lease name, which holders' ambiguous
// acquires the register history may need as grants. A token T seen held
// (by an ok get, acquire, renew or release, or a lease_held refusal) needs
// a grant before every operation that saw it. An ok acquire returning T
// can be that grant only if it was invoked no later than the first of
// those operations completed; when none was, T must come from an
// ambiguous acquire, by the holder T was seen with. Every other ambiguous
// acquire can be taken as never applied without hiding any legal
// linearization: had it applied, its token would be seen (and needed), or
// nothing would tell. A lease_held refusal that does not carry the
// current lease could hide such a token, so on its name every ambiguous
// acquire is kept.
//
// Dropping the others keeps porcupine fast: an ambiguous operation stays
// open to the end of the history, and a partition produces many of them.
func neededAmbiguousAcquires(h *history.History) map[string]map[string]bool {
	type tokenKey struct {
		name  string
		token uint64
	}
	grantInvoke := map[tokenKey]int64{}
	type seen struct {
		holder   string
		complete int64
	}
	firstSeen := map[tokenKey]seen{}
	blind := map[string]bool{}
	for _, op := range h.Ops {
		if op.Workload != history.WorkloadRegister || op.Pending() {
			continue
		}
		holder, token := "", uint64(0)
		switch {
		case op.Outcome == history.OK && (op.Kind == history.Acquire || op.Kind == history.Get) && op.Lease != nil:
			holder, token = op.Lease.Holder, op.Lease.Token
		case op.Outcome == history.OK && (op.Kind == history.Renew || op.Kind == history.Release):
			holder, token = op.Holder, op.Token
		case op.Outcome == history.Refused && op.Code == history.CodeLeaseHeld:
			if op.Lease == nil || op.Lease.Token == 0 {
				blind[op.Name] = true
				continue
			}
			holder, token = op.Lease.Holder, op.Lease.Token
		default:
			continue
		}
		k := tokenKey{op.Name, token}
		if op.Kind == history.Acquire && op.Outcome == history.OK {
			if g, ok := grantInvoke[k]; !ok || op.Invoke < g {
				grantInvoke[k] = op.Invoke
			}
		}
		if f, ok := firstSeen[k]; !ok || op.Complete < f.complete {
			firstSeen[k] = seen{holder, op.Complete}
		}
	}
	needed := map[string]map[string]bool{}
	mark := func(name, holder string) {
		if needed[name] == nil {
			needed[name] = map[string]bool{}
		}
		needed[name][holder] = true
	}
	for k, f := range firstSeen {
		if g, ok := grantInvoke[k]; !ok || f.complete < g {
			mark(k.name, f.holder)
		}
	}
	for _, op := range h.Ops {
		if blind[op.Name] && op.Kind == history.Acquire {
			mark(op.Name, op.Holder)
		}
	}
	return needed
}
