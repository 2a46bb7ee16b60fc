package storetest

import (
	"slices"
	"time"

	"github.com/raftlease/raftlease"
)

// testExpiryDeadline: a lease lives until its deadline and not past it;
// then it is gone for reads, renewals, and a new holder can take it.
func testExpiryDeadline(e *env) {
	t := e.t
	n := e.name("job")
	keep := e.acquire(raftlease.AcquireRequest{Name: e.name("keep"), Holder: "holder-9", TTL: holdTTL})
	ttl := 2 * time.Second
	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: ttl})
	if e.manual() {
		// Exact boundaries: alive 1ms before the deadline, gone at it.
		const margin = time.Millisecond
		e.pass(ttl - margin)
		g := e.get(n)
		if g.Token != a.Token {
			t.Errorf("1ms before the deadline: token %d, want %d", g.Token, a.Token)
		}
		if g.Remaining > margin {
			t.Errorf("%v into a %v lease: Remaining %v, want at most %v", ttl-margin, ttl, g.Remaining, margin)
		}
		if got := names(e.list(e.prefix).Leases); !slices.Equal(got, []string{n, keep.Name}) {
			t.Errorf("List 1ms before the deadline: %q, want %q", got, []string{n, keep.Name})
		}
		e.pass(margin)
		e.gone(n)
	} else {
		if d := diffLease(e.get(n), a); d != "" {
			t.Errorf("Get right after Acquire with TTL %v: %s", ttl, d)
		}
		e.awaitExpiry(n)
	}
	if got := names(e.list(e.prefix).Leases); !slices.Equal(got, []string{keep.Name}) {
		t.Errorf("List after expiry: %q, want %q", got, []string{keep.Name})
	}
	_, err := e.tryRenew(raftlease.RenewRequest{Name: n, Holder: a.Holder, Token: a.Token})
	e.wantErr(err, raftlease.ErrNotHolder, "Renew after expiry")
	b := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-2", TTL: holdTTL})
	if b.Token <= a.Token {
		t.Errorf("Acquire after expiry: token %d, want above %d", b.Token, a.Token)
	}
	e.unchanged(keep, "another lease's expiry")
}

// testExpiryRenewKeepsAlive: a renewed lease outlives its first deadline and
// expires at the renewed one.
func testExpiryRenewKeepsAlive(e *env) {
	t := e.t
	n := e.name("job")
	first, renewAfter, second := 2*time.Second, 500*time.Millisecond, 4*time.Second
	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: first})
	e.pass(renewAfter)
	r := e.renew(raftlease.RenewRequest{Name: n, Holder: "holder-1", Token: a.Token, TTL: second})
	if r.Deadline <= a.Deadline {
		t.Errorf("Renew did not move the deadline: %v, first %v", r.Deadline, a.Deadline)
	}
	// Now past the first deadline, well before the renewed one.
	e.pass(first)
	g := e.get(n)
	if d := diffLease(g, r); d != "" {
		t.Errorf("past the first deadline: %s", d)
	}
	if left := second - first; e.manual() && g.Remaining > left {
		t.Errorf("%v after a renewal to %v: Remaining %v, want at most %v", first, second, g.Remaining, left)
	}
	e.awaitExpiry(n)
}

// testExpiryUnremovedInvisible: once the deadline passes, reads and writes
// treat the lease as gone even if the store has not yet removed it, and the
// vacancy is reported before the next grant.
func testExpiryUnremovedInvisible(e *env) {
	t := e.t
	if !e.manual() {
		t.Skip("needs Subject.Advance: on real time the suite cannot hold back the store's own expiry")
	}
	n := e.name("job")
	keep := e.acquire(raftlease.AcquireRequest{Name: e.name("keep"), Holder: "holder-9", TTL: holdTTL})
	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: time.Second})
	w := e.watch(raftlease.WatchRequest{Name: n, FromRevision: a.Revision})

	e.subj.Advance(a.TTL) // no Settle: whether the store removed it yet is up to the store
	e.gone(n)
	if got := names(e.list(e.prefix).Leases); !slices.Equal(got, []string{keep.Name}) {
		t.Errorf("List at the deadline: %q, want %q", got, []string{keep.Name})
	}
	_, err := e.tryRenew(raftlease.RenewRequest{Name: n, Holder: a.Holder, Token: a.Token})
	e.wantErr(err, raftlease.ErrNotHolder, "Renew at the deadline")
	err = e.tryRelease(raftlease.ReleaseRequest{Name: n, Holder: a.Holder, Token: a.Token})
	e.wantErr(err, raftlease.ErrNotHolder, "Release at the deadline")
	b := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-2", TTL: holdTTL})
	if b.Token <= a.Token {
		t.Errorf("Acquire at the deadline: token %d, want above %d", b.Token, a.Token)
	}

	e.expectEvents(w, "watch of "+n, []wantEvent{
		{raftlease.EventAcquired, a},
		{raftlease.EventExpired, a},
		{raftlease.EventAcquired, b},
	})
	e.settle()
	e.unchanged(keep, "another lease's expiry")
}

// testListPrefix: List returns exactly the live leases under a prefix,
// sorted by name, at a revision covering them.
func testListPrefix(e *env) {
	t := e.t
	p := e.prefix
	rel := []string{"b", "a", "c/y", "cz", "c/x", "d"}
	leases := map[string]raftlease.Lease{}
	var maxRev uint64
	for i, r := range rel {
		l := e.acquire(raftlease.AcquireRequest{
			Name: p + r, Holder: "holder-" + r, TTL: holdTTL + time.Duration(i)*time.Second,
			Metadata: map[string]string{"i": r},
		})
		leases[l.Name] = l
		maxRev = max(maxRev, l.Revision)
	}
	out := e.acquire(raftlease.AcquireRequest{Name: e.outside("a"), Holder: "holder-x", TTL: holdTTL})
	maxRev = max(maxRev, out.Revision)

	check := func(prefix string, want ...string) raftlease.LeaseList {
		t.Helper()
		ls := e.list(prefix)
		got := names(ls.Leases)
		if !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
		for _, l := range ls.Leases {
			if w, ok := leases[l.Name]; ok {
				if d := diffLease(l, w); d != "" {
					t.Errorf("List(%q) lease %q: %s", prefix, l.Name, d)
				}
			}
		}
		if ls.Revision < maxRev {
			t.Errorf("List(%q) revision %d is below the last write's revision %d", prefix, ls.Revision, maxRev)
		}
		return ls
	}
	check(p, p+"a", p+"b", p+"c/x", p+"c/y", p+"cz", p+"d")
	check(p+"c", p+"c/x", p+"c/y", p+"cz")
	check(p+"c/", p+"c/x", p+"c/y")
	check(p+"a", p+"a")
	check(p + "zzz")

	// The empty prefix lists everything: ours, the outside one, and
	// whatever else a shared store holds, still sorted (List checks).
	all := e.list("")
	var ours []string
	for _, l := range all.Leases {
		if _, ok := leases[l.Name]; ok || l.Name == out.Name {
			ours = append(ours, l.Name)
		}
	}
	want := []string{p + "a", p + "b", p + "c/x", p + "c/y", p + "cz", p + "d", out.Name}
	slices.Sort(want)
	if !slices.Equal(ours, want) {
		t.Errorf("List(\"\") holds %q of this subtest's leases, want %q", ours, want)
	}
	if all.Revision < maxRev {
		t.Errorf("List(\"\") revision %d is below the last write's revision %d", all.Revision, maxRev)
	}

	e.release(leases[p+"b"])
	delete(leases, p+"b")
	check(p, p+"a", p+"c/x", p+"c/y", p+"cz", p+"d")
}

// testListExcludesExpired: expired leases drop out of List.
func testListExcludesExpired(e *env) {
	t := e.t
	live := e.acquire(raftlease.AcquireRequest{Name: e.name("live"), Holder: "holder-1", TTL: holdTTL})
	short := e.acquire(raftlease.AcquireRequest{Name: e.name("short"), Holder: "holder-2", TTL: shortTTL})
	if got, want := names(e.list(e.prefix).Leases), []string{live.Name, short.Name}; !e.manual() {
		// On real time the short lease may be gone already.
		if !slices.Equal(got, want) && !slices.Equal(got, want[:1]) {
			t.Errorf("List = %q, want %q", got, want)
		}
	} else if !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	e.awaitExpiry(short.Name)
	ls := e.list(e.prefix)
	if got := names(ls.Leases); !slices.Equal(got, []string{live.Name}) {
		t.Errorf("List after expiry = %q, want %q", got, []string{live.Name})
	}
	if len(ls.Leases) == 1 {
		if d := diffLease(ls.Leases[0], live); d != "" {
			t.Errorf("List after another lease's expiry: %s", d)
		}
	}
}
