package checker

import (
	"testing"
	"time"

	"github.com/raftlease/raftlease/jepsen/history"
)

func TestEarliestExpiry(t *testing.T) {
	if got, want := EarliestExpiry(1000*msNs, 2*time.Second, 0.1), 2800*msNs; got != want {
		t.Fatalf("EarliestExpiry = %d, want %d", got, want)
	}
	if got := EarliestExpiry(0, 2*time.Second, 0); got != 2000*msNs {
		t.Fatalf("no drift: %d", got)
	}
}

// takeover returns a history where A holds token 1 (acquired at 0, last
// renewed at 1 s, TTL 2 s, so its earliest expiry with drift 0.1 is 2.8 s)
// and B's acquire of token 2 completes at grant.
func takeover(grant int64) *history.History {
	ttl := 2 * time.Second
	return hist(
		withTTL(acquireOK("a", "e", "A", 1, 0, 10*msNs), ttl),
		withTTL(renewOK("a", "e", "A", 1, 1000*msNs, 1010*msNs), ttl),
		withTTL(acquireOK("b", "e", "B", 2, 2000*msNs, grant), ttl),
	)
}

func TestNoEarlyTakeoverBoundary(t *testing.T) {
	bound := EarliestExpiry(1000*msNs, 2*time.Second, 0.1)
	wantValid(t, NoEarlyTakeover(takeover(bound), opts()))
	wantViolation(t, NoEarlyTakeover(takeover(bound-1), opts()), "granted to B", "op a#2", "op b#1")
	// A smaller drift bound moves the boundary later: 1 s + 2 s × 0.99.
	o := opts()
	o.MaxDrift = 0.01
	wantViolation(t, NoEarlyTakeover(takeover(bound), o), "before token 1")
	wantValid(t, NoEarlyTakeover(takeover(EarliestExpiry(1000*msNs, 2*time.Second, 0.01)), o))
}

func TestNoEarlyTakeoverExemptions(t *testing.T) {
	t.Run("release", func(t *testing.T) {
		h := takeover(1500 * msNs)
		h.Ops = append(h.Ops, releaseOK("a", "e", "A", 1, 1200*msNs, 1300*msNs))
		h.Ops[len(h.Ops)-1].ID = 3
		h.Ops[len(h.Ops)-1].Workload = history.WorkloadRegister
		h.Ops[2].Invoke = 1400 * msNs
		h.Sort()
		wantValid(t, NoEarlyTakeover(h, opts()))
	})
	t.Run("ambiguous release", func(t *testing.T) {
		h := takeover(1500 * msNs)
		h.Ops = append(h.Ops, ambiguous(releaseOK("a", "e", "A", 1, 1200*msNs, 2000*msNs)))
		h.Ops[len(h.Ops)-1].ID = 3
		h.Ops[2].Invoke = 1400 * msNs
		h.Sort()
		wantValid(t, NoEarlyTakeover(h, opts()))
	})
	t.Run("the holder's release refused not_holder may have applied", func(t *testing.T) {
		// The Store contract: a retried release whose first attempt applied
		// is answered not_holder.
		h := takeover(1500 * msNs)
		rel := releaseOK("a", "e", "A", 1, 1200*msNs, 1300*msNs)
		rel.Outcome, rel.Code, rel.ID = history.Refused, history.CodeNotHolder, 3
		h.Ops = append(h.Ops, rel)
		h.Ops[2].Invoke = 1400 * msNs
		h.Sort()
		wantValid(t, NoEarlyTakeover(h, opts()))
	})
	t.Run("a refused release by another holder does not excuse", func(t *testing.T) {
		h := takeover(1500 * msNs)
		rel := releaseOK("c", "e", "C", 1, 1200*msNs, 1300*msNs)
		rel.Outcome, rel.Code, rel.ID = history.Refused, history.CodeNotHolder, 3
		h.Ops = append(h.Ops, rel)
		h.Ops[2].Invoke = 1400 * msNs
		h.Sort()
		wantViolation(t, NoEarlyTakeover(h, opts()), "granted to B")
	})
}

func TestNoEarlyTakeoverFromGainedEvent(t *testing.T) {
	// B's acquire is not recorded, but B announced the grant at 2.5 s.
	ttl := 2 * time.Second
	h := hist(
		withTTL(acquireOK("a", "e", "A", 1, 0, 10*msNs), ttl),
		withTTL(renewOK("a", "e", "A", 1, 1000*msNs, 1010*msNs), ttl),
	)
	h.Participants = []history.ParticipantEvent{{Participant: "B", Seq: 1, Name: "e", Event: history.Gained, Token: 2, Time: 2500 * msNs}}
	wantViolation(t, NoEarlyTakeover(h, opts()), "granted to B", "participant B#1", "op a#2")
}
