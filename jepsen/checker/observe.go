package checker

import (
	"cmp"
	"slices"
	"time"

	"github.com/raftlease/raftlease/jepsen/history"
)

// An observation is what one completed operation tells about the state of
// a lease at some instant within [invoke, complete].
type observation struct {
	ref              string
	invoke, complete int64
	// free: the lease was free (get not_found).
	free bool
	// notHeld: the lease was not held by holder under token (renew or
	// release refused not_holder).
	notHeld bool
	// otherwise holder held the lease under token.
	holder string
	token  uint64
	// grant: an acquire that returned the token.
	grant bool
}

func (o observation) shows() (holder string, token uint64, ok bool) {
	if o.free || o.notHeld {
		return "", 0, false
	}
	return o.holder, o.token, true
}

// ack is an acknowledged acquire or renew: from some instant within
// [invoke, complete] the lease was held under token until at least
// EarliestExpiry(invoke, ttl, drift).
type ack struct {
	ref              string
	holder           string
	token            uint64
	invoke, complete int64
	ttl              time.Duration
}

// perName is what the history says about one lease name.
type perName struct {
	name string
	obs  []observation // sorted by complete
	acks []ack         // sorted by complete
	// releases: earliest invoke of a release of each token that may have
	// applied (ok, ambiguous or pending, or refused not_holder when sent
	// by the token's holder: see history.Op.MayHaveApplied).
	mayRelease map[uint64]int64
	// ackedRelease: earliest completion of an ok release of each token,
	// and its ref.
	ackedRelease    map[uint64]int64
	ackedReleaseRef map[uint64]string
}

// byName groups the operations of h per lease name, with names sorted.
func byName(h *history.History) []*perName {
	m := map[string]*perName{}
	get := func(name string) *perName {
		p := m[name]
		if p == nil {
			p = &perName{name: name, mayRelease: map[uint64]int64{}, ackedRelease: map[uint64]int64{}, ackedReleaseRef: map[uint64]string{}}
			m[name] = p
		}
		return p
	}
	// The holder each token was seen with (tokens are unique per holder).
	holderOf := map[string]map[uint64]string{}
	for _, op := range h.Ops {
		if op.Lease != nil && op.Lease.Token != 0 {
			if holderOf[op.Name] == nil {
				holderOf[op.Name] = map[uint64]string{}
			}
			holderOf[op.Name][op.Lease.Token] = op.Lease.Holder
		}
	}
	for _, op := range h.Ops {
		p := get(op.Name)
		refusedByOther := op.Outcome == history.Refused && holderOf[op.Name][op.Token] != op.Holder
		if op.Kind == history.Release && op.MayHaveApplied() && !refusedByOther {
			if t, ok := p.mayRelease[op.Token]; !ok || op.Invoke < t {
				p.mayRelease[op.Token] = op.Invoke
			}
		}
		if op.Pending() {
			continue
		}
		o := observation{ref: op.Ref(), invoke: op.Invoke, complete: op.Complete}
		switch {
		case op.Kind == history.Get && op.Outcome == history.OK && op.Lease != nil:
			o.holder, o.token = op.Lease.Holder, op.Lease.Token
		case op.Kind == history.Get && op.Outcome == history.Refused && op.Code == history.CodeNotFound:
			o.free = true
		case op.Kind == history.Acquire && op.Outcome == history.OK && op.Lease != nil:
			o.holder, o.token, o.grant = op.Lease.Holder, op.Lease.Token, true
			p.acks = append(p.acks, ack{ref: o.ref, holder: o.holder, token: o.token, invoke: op.Invoke, complete: op.Complete, ttl: op.TTL()})
		case op.Kind == history.Acquire && op.Outcome == history.Refused && op.Code == history.CodeLeaseHeld && op.Lease != nil && op.Lease.Token != 0:
			o.holder, o.token = op.Lease.Holder, op.Lease.Token
		case op.Kind == history.Renew && op.Outcome == history.OK:
			o.holder, o.token = op.Holder, op.Token
			p.acks = append(p.acks, ack{ref: o.ref, holder: o.holder, token: o.token, invoke: op.Invoke, complete: op.Complete, ttl: op.TTL()})
		case (op.Kind == history.Renew || op.Kind == history.Release) && op.Outcome == history.Refused && op.Code == history.CodeNotHolder:
			o.notHeld, o.holder, o.token = true, op.Holder, op.Token
		case op.Kind == history.Release && op.Outcome == history.OK:
			if t, ok := p.ackedRelease[op.Token]; !ok || op.Complete < t {
				p.ackedRelease[op.Token] = op.Complete
				p.ackedReleaseRef[op.Token] = o.ref
			}
			continue
		default:
			continue
		}
		p.obs = append(p.obs, o)
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]*perName, 0, len(names))
	for _, n := range names {
		p := m[n]
		slices.SortStableFunc(p.obs, func(a, b observation) int { return cmp.Compare(a.complete, b.complete) })
		slices.SortStableFunc(p.acks, func(a, b ack) int { return cmp.Compare(a.complete, b.complete) })
		out = append(out, p)
	}
	return out
}
