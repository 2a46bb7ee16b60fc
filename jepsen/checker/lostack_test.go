package checker

import (
	"testing"
	"time"

	"github.com/raftlease/raftlease/jepsen/history"
)

const msNs = int64(time.Millisecond)

func TestNoLostAcksValid(t *testing.T) {
	ttl := 2 * time.Second // with drift 0.1: held for at least 1.8 s after each invoke
	h := hist(
		withTTL(acquireOK("a", "x", "A", 1, 0, 10*msNs), ttl),
		getOK("c", "x", "A", 1, 100*msNs, 110*msNs),
		withTTL(renewOK("a", "x", "A", 1, 1000*msNs, 1010*msNs), ttl),
		// after the renewal's earliest expiry (2.8 s) the lease may be gone
		getFree("c", "x", 2900*msNs, 2910*msNs),
		withTTL(acquireOK("b", "x", "B", 2, 3000*msNs, 3010*msNs), ttl),
		// a release that may have applied excuses a free read
		ambiguous(releaseOK("b", "x", "B", 2, 3100*msNs, 3200*msNs)),
		getFree("c", "x", 3150*msNs, 3160*msNs),
		// a wrong-token renewal is refused: no evidence either way
		renewRefused("a", "x", "A", 1, 3300*msNs, 3310*msNs),
	)
	wantValid(t, NoLostAcks(h, opts()))
}

func TestNoLostAcksViolations(t *testing.T) {
	ttl := 2 * time.Second
	t.Run("L1 older token after an ack", func(t *testing.T) {
		h := hist(
			acquireOK("a", "x", "A", 1, 0, 10),
			releaseOK("a", "x", "A", 1, 11, 20),
			acquireOK("b", "x", "B", 2, 21, 30),
			getOK("c", "x", "A", 1, 40, 50),
		)
		wantViolation(t, NoLostAcks(h, opts()), "L1", "op b#1", "op c#1")
	})
	t.Run("L2 acknowledged acquire lost: free before expiry", func(t *testing.T) {
		h := hist(
			withTTL(acquireOK("a", "x", "A", 1, 0, 10*msNs), ttl),
			getFree("c", "x", 100*msNs, 110*msNs),
		)
		wantViolation(t, NoLostAcks(h, opts()), "L2", "op a#1", "op c#1")
	})
	t.Run("L2 acknowledged renewal lost: holder refused before expiry", func(t *testing.T) {
		h := hist(
			withTTL(acquireOK("a", "x", "A", 1, 0, 10*msNs), ttl),
			withTTL(renewOK("a", "x", "A", 1, 1000*msNs, 1010*msNs), ttl),
			renewRefused("a", "x", "A", 1, 2500*msNs, 2510*msNs), // before 2.8 s
		)
		wantViolation(t, NoLostAcks(h, opts()), "L2", "op a#2", "op a#3")
	})
	t.Run("L3 acknowledged release lost", func(t *testing.T) {
		h := hist(
			acquireOK("a", "x", "A", 1, 0, 10),
			releaseOK("a", "x", "A", 1, 11, 20),
			getOK("c", "x", "A", 1, 30, 40),
		)
		wantViolation(t, NoLostAcks(h, opts()), "L3", "op a#2", "op c#1")
	})
	t.Run("L3 renewal after an acknowledged release", func(t *testing.T) {
		h := hist(
			acquireOK("a", "x", "A", 1, 0, 10),
			releaseOK("a", "x", "A", 1, 11, 20),
			renewOK("a", "x", "A", 1, 30, 40),
		)
		wantViolation(t, NoLostAcks(h, opts()), "L3", "op a#2", "op a#3")
	})
}

func TestNoLostAcksElectorWorkload(t *testing.T) {
	// The check covers elector operations too (their leases expire).
	op := withTTL(acquireOK("p1", "e", "p1", 1, 0, 10*msNs), 2*time.Second)
	op.Workload = history.WorkloadElector
	get := getFree("p2", "e", 100*msNs, 110*msNs)
	get.Workload = history.WorkloadElector
	wantViolation(t, NoLostAcks(hist(op, get), opts()), "L2")
}
