package storetest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/raftlease/raftlease"
)

// contenders is how many goroutines race for one lease.
const contenders = 16

type outcome struct {
	lease raftlease.Lease
	err   error
}

// race runs f(i) for i in [0, n) on n goroutines released at once.
func race(n int, f func(i int) outcome) []outcome {
	out := make([]outcome, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// checkHeldBy checks that err refuses an acquisition because winner holds
// the lease.
func (e *env) checkHeldBy(what string, err error, winner raftlease.Lease) {
	e.t.Helper()
	var held *raftlease.HeldError
	switch {
	case !errors.Is(err, raftlease.ErrLeaseHeld):
		e.t.Errorf("%s: got %v, want an error matching ErrLeaseHeld", what, err)
	case !errors.As(err, &held):
		e.t.Errorf("%s: error %v (%T) is not a *raftlease.HeldError", what, err, err)
	case held.Current.Holder != winner.Holder || held.Current.Token != winner.Token:
		e.t.Errorf("%s: HeldError names holder %q token %d, want the winner %q token %d",
			what, held.Current.Holder, held.Current.Token, winner.Holder, winner.Token)
	}
}

// testConcurrentAcquire: of many holders acquiring a free name at once,
// exactly one wins and the others are told who.
func testConcurrentAcquire(e *env) {
	t := e.t
	n := e.name("job")
	var last uint64
	for round := 1; round <= 2; round++ {
		results := race(contenders, func(i int) outcome {
			l, err := e.tryAcquire(raftlease.AcquireRequest{Name: n, Holder: fmt.Sprintf("holder-%d-%02d", round, i), TTL: holdTTL})
			return outcome{l, err}
		})
		var winners []raftlease.Lease
		for _, r := range results {
			if r.err == nil {
				winners = append(winners, r.lease)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d of %d concurrent Acquires of a free name succeeded, want exactly 1: %v", round, len(winners), contenders, results)
		}
		win := winners[0]
		if win.Token <= last {
			t.Errorf("round %d: winner's token %d, want above the previous round's %d", round, win.Token, last)
		}
		last = win.Token
		for i, r := range results {
			if r.err != nil {
				e.checkHeldBy(fmt.Sprintf("round %d: contender %d", round, i), r.err, win)
			}
		}
		if d := diffLease(e.get(n), win); d != "" {
			t.Errorf("round %d: Get after the race: %s", round, d)
		}
		e.release(win)
	}
}

// testConcurrentRenewWhileContended: the holder's renewals all succeed while
// others try to take the lease, and the lease never changes hands.
func testConcurrentRenewWhileContended(e *env) {
	t := e.t
	n := e.name("job")
	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-0", TTL: holdTTL})
	results := race(contenders, func(i int) outcome {
		if i%2 == 0 {
			l, err := e.tryRenew(raftlease.RenewRequest{Name: n, Holder: a.Holder, Token: a.Token})
			return outcome{l, err}
		}
		l, err := e.tryAcquire(raftlease.AcquireRequest{Name: n, Holder: fmt.Sprintf("holder-%02d", i), TTL: holdTTL})
		return outcome{l, err}
	})
	for i, r := range results {
		if i%2 == 0 {
			if r.err != nil {
				t.Errorf("concurrent Renew %d by the holder: %v", i, r.err)
			} else if r.lease.Token != a.Token || r.lease.Holder != a.Holder {
				t.Errorf("concurrent Renew %d returned %s, want holder %q token %d", i, fmtLease(r.lease), a.Holder, a.Token)
			}
			continue
		}
		e.checkHeldBy(fmt.Sprintf("concurrent Acquire %d by another holder", i), r.err, a)
	}
	g := e.get(n)
	if g.Holder != a.Holder || g.Token != a.Token {
		t.Errorf("after the race: %s, want holder %q token %d", fmtLease(g), a.Holder, a.Token)
	}
	if g.Revision <= a.Revision {
		t.Errorf("after concurrent renewals: revision %d, want above %d", g.Revision, a.Revision)
	}
}
