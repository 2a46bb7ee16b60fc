package redisbridge_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/elector"
	"github.com/raftlease/raftlease/redisbridge"
	"github.com/raftlease/raftlease/testutil"
)

// TestElectorFailover runs the elector, unchanged, on the bridge: three
// participants, each with its own store (as three processes would have),
// with the FastFailover profile. Exactly one leads; when it stops without
// releasing, another takes over with a larger token once the lease has
// expired in Redis.
func TestElectorFailover(t *testing.T) {
	r := testutil.StartRedis(t)
	c := ctx(t)
	var electors []*elector.Elector
	var stores []*redisbridge.Store
	for i := range 3 {
		s := newStore(t, r, redisbridge.Options{})
		opts := elector.FastFailover()
		opts.Name = "svc"
		opts.Holder = fmt.Sprintf("node-%d", i)
		e, err := elector.New(s, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Stop(c) })
		electors = append(electors, e)
		stores = append(stores, s)
	}
	leaders := func() []int {
		var out []int
		for i, e := range electors {
			if e.IsLeader() {
				out = append(out, i)
			}
		}
		return out
	}
	// watchLeaders samples the leaders for d and fails on two at once.
	watchLeaders := func(d time.Duration, until func([]int) bool) []int {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			l := leaders()
			if len(l) > 1 {
				t.Fatalf("%d leaders at once: %v", len(l), l)
			}
			if until != nil && until(l) {
				return l
			}
			if time.Now().After(deadline) {
				if until != nil {
					t.Fatalf("no expected leadership within %v (leaders %v)", d, l)
				}
				return l
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	first := watchLeaders(10*time.Second, func(l []int) bool { return len(l) == 1 })[0]
	// Leadership stays put across several renewals.
	if l := watchLeaders(1500*time.Millisecond, nil); len(l) != 1 || l[0] != first {
		t.Fatalf("leaders %v after 1.5s, want only node-%d", l, first)
	}
	oldToken, ok := electors[first].Token()
	if !ok {
		t.Fatal("the leader has no token")
	}
	lease, err := stores[0].Get(c, "svc", raftlease.ReadOptions{})
	if err != nil || lease.Holder != fmt.Sprintf("node-%d", first) || lease.Token != oldToken {
		t.Fatalf("Get(svc) = %v, %v; want node-%d token %d", lease, err, first, oldToken)
	}

	// Stop without release: the lease stays in Redis until it expires.
	stopped := time.Now()
	if err := electors[first].Stop(c); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[0].Get(c, "svc", raftlease.ReadOptions{}); err != nil {
		t.Fatalf("the lease went away when its holder stopped without release: %v", err)
	}
	opts := electors[first].Options()
	next := watchLeaders(opts.WorstCaseFailover()+2*time.Second, func(l []int) bool { return len(l) == 1 && l[0] != first })[0]
	took := time.Since(stopped)
	t.Logf("node-%d took over %v after node-%d stopped (lease %v, worst case %v)", next, took, first, opts.LeaseDuration, opts.WorstCaseFailover())
	newToken, _ := electors[next].Token()
	if newToken <= oldToken {
		t.Errorf("new leader's token %d, want above %d", newToken, oldToken)
	}
	lease, err = stores[1].Get(c, "svc", raftlease.ReadOptions{})
	if err != nil || lease.Holder != fmt.Sprintf("node-%d", next) || lease.Token != newToken {
		t.Errorf("Get(svc) = %v, %v; want node-%d token %d", lease, err, next, newToken)
	}
	if _, err := stores[2].Renew(c, raftlease.RenewRequest{Name: "svc", Holder: fmt.Sprintf("node-%d", first), Token: oldToken}); !errors.Is(err, raftlease.ErrNotHolder) {
		t.Errorf("Renew by the stopped leader: %v, want ErrNotHolder", err)
	}
	if l := watchLeaders(time.Second, nil); len(l) != 1 || l[0] != next {
		t.Errorf("leaders %v, want only node-%d", l, next)
	}
}
