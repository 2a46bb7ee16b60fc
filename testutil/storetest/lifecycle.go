package storetest

import (
	"errors"
	"maps"
	"time"

	"github.com/raftlease/raftlease"
)

// testAcquireFree: a free name is granted with a token, the TTL and the
// metadata asked for, and reads return the same lease.
func testAcquireFree(e *env) {
	t := e.t
	n := e.name("job")
	md := map[string]string{"addr": "10.0.0.7:8080", "zone": "eu-west-1a", "note": "héllo, wörld ✓", "empty": ""}
	ttl := 7654 * time.Millisecond
	req := raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: ttl, Metadata: maps.Clone(md)}
	l := e.acquire(req)
	if l.Token < 1 {
		t.Errorf("token %d, want at least 1", l.Token)
	}
	if l.TTL != ttl {
		t.Errorf("TTL %v, want exactly the %v asked for", l.TTL, ttl)
	}
	if !sameMetadata(l.Metadata, md) {
		t.Errorf("metadata %v, want %v", l.Metadata, md)
	}
	checkRemaining(t, "Acquire", l)
	if l.Revision == 0 {
		t.Errorf("revision 0, want > 0")
	}
	if l.AcquiredAt.IsZero() {
		t.Errorf("AcquiredAt is zero, want the time the token was granted")
	}

	// The store must not keep the caller's map.
	clear(req.Metadata)
	req.Metadata["changed"] = "after-acquire"

	g := e.get(n)
	if d := diffLease(g, l); d != "" {
		t.Errorf("Get after Acquire: %s", d)
	}
	ls := e.list(e.prefix)
	if len(ls.Leases) != 1 {
		t.Fatalf("List(prefix) returned %d leases, want the 1 acquired", len(ls.Leases))
	}
	if d := diffLease(ls.Leases[0], l); d != "" {
		t.Errorf("List after Acquire: %s", d)
	}
	if ls.Revision < l.Revision {
		t.Errorf("List revision %d is below the acquired lease's revision %d", ls.Revision, l.Revision)
	}

	bare := e.acquire(raftlease.AcquireRequest{Name: e.name("bare"), Holder: "holder-2", TTL: holdTTL})
	if len(bare.Metadata) != 0 {
		t.Errorf("Acquire without metadata returned metadata %v", bare.Metadata)
	}
	if bare.Revision <= l.Revision {
		t.Errorf("a later Acquire has revision %d, not above the earlier %d", bare.Revision, l.Revision)
	}
}

// testAcquireHeld: a lease held by another holder is refused with a
// *HeldError naming the current holder, and nothing changes.
func testAcquireHeld(e *env) {
	t := e.t
	n := e.name("job")
	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: holdTTL, Metadata: map[string]string{"addr": "one"}})

	for attempt := 1; attempt <= 2; attempt++ { // a retry is refused the same way
		_, err := e.tryAcquire(raftlease.AcquireRequest{Name: n, Holder: "holder-2", TTL: holdTTL / 2, Metadata: map[string]string{"addr": "two"}})
		if !errors.Is(err, raftlease.ErrLeaseHeld) {
			t.Fatalf("attempt %d: Acquire of a held lease by another holder: got %v, want an error matching ErrLeaseHeld", attempt, err)
		}
		var held *raftlease.HeldError
		if !errors.As(err, &held) {
			t.Errorf("attempt %d: error %v (%T) is not a *raftlease.HeldError", attempt, err, err)
		} else if d := diffLease(held.Current, a); d != "" {
			t.Errorf("attempt %d: HeldError.Current differs from the lease held: %s", attempt, d)
		}
		e.unchanged(a, "a refused Acquire")
	}
	// Time passing does not hand the lease over before its deadline.
	e.pass(time.Second)
	_, err := e.tryAcquire(raftlease.AcquireRequest{Name: n, Holder: "holder-2", TTL: holdTTL})
	e.wantErr(err, raftlease.ErrLeaseHeld, "Acquire by another holder 1s into a %v lease", holdTTL)
	e.unchanged(a, "a refused Acquire")
}

// testAcquireReacquire: Acquire by the holder keeps the token, restarts the
// deadline with the new TTL and replaces the metadata.
func testAcquireReacquire(e *env) {
	t := e.t
	n := e.name("job")
	const step = time.Second
	ttl1, ttl2 := 5*time.Second, 7*time.Second
	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: ttl1, Metadata: map[string]string{"v": "1"}})
	e.pass(step)
	md2 := map[string]string{"v": "2", "addr": "10.0.0.8:8080"}
	b := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: ttl2, Metadata: md2})
	if b.Token != a.Token {
		t.Errorf("re-acquire by the holder: token %d, want the same token %d", b.Token, a.Token)
	}
	if b.TTL != ttl2 {
		t.Errorf("re-acquire: TTL %v, want the new %v", b.TTL, ttl2)
	}
	if !sameMetadata(b.Metadata, md2) {
		t.Errorf("re-acquire: metadata %v, want the new %v", b.Metadata, md2)
	}
	if b.Revision <= a.Revision {
		t.Errorf("re-acquire: revision %d, want above %d", b.Revision, a.Revision)
	}
	if !b.AcquiredAt.Equal(a.AcquiredAt) {
		t.Errorf("re-acquire: AcquiredAt %v, want the token's grant time %v", b.AcquiredAt, a.AcquiredAt)
	}
	if b.Remaining <= ttl2-step/2 || b.Remaining > ttl2 {
		t.Errorf("re-acquire: Remaining %v, want the deadline restarted: in (%v, %v]", b.Remaining, ttl2-step/2, ttl2)
	}
	if minMove := ttl2 - ttl1 + step*9/10; b.Deadline-a.Deadline < minMove {
		t.Errorf("re-acquire %v later moved the deadline by %v, want at least %v", step, b.Deadline-a.Deadline, minMove)
	}
	if d := diffLease(e.get(n), b); d != "" {
		t.Errorf("Get after re-acquire: %s", d)
	}

	// Re-acquire without metadata replaces it with none (unlike Renew).
	c := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: ttl1})
	if c.Token != a.Token || c.TTL != ttl1 || len(c.Metadata) != 0 {
		t.Errorf("re-acquire without metadata: got %s metadata %v; want token %d, TTL %v, no metadata", fmtLease(c), c.Metadata, a.Token, ttl1)
	}
	if d := diffLease(e.get(n), c); d != "" {
		t.Errorf("Get after second re-acquire: %s", d)
	}
}

// testAcquireTokenFloor: a token floor lifts the next token above it; a
// floor below the counter never lowers it.
func testAcquireTokenFloor(e *env) {
	t := e.t
	n := e.name("job")
	const floor = uint64(1) << 40
	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: holdTTL, TokenFloor: floor})
	if a.Token <= floor {
		t.Errorf("Acquire with TokenFloor %d: token %d, want above the floor", floor, a.Token)
	}
	e.release(a)
	b := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-2", TTL: holdTTL})
	if b.Token <= a.Token {
		t.Errorf("Acquire after a floored grant: token %d, want above %d", b.Token, a.Token)
	}
	e.release(b)
	c := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-3", TTL: holdTTL, TokenFloor: 5})
	if c.Token <= b.Token {
		t.Errorf("Acquire with a low TokenFloor: token %d, want above the last token %d", c.Token, b.Token)
	}
}

// testRenewExtends: Renew keeps the token, moves the deadline, optionally
// changes the TTL, keeps metadata when Metadata is nil and replaces it when
// it is not.
func testRenewExtends(e *env) {
	t := e.t
	n := e.name("job")
	const step = time.Second
	ttl := 5 * time.Second
	md := map[string]string{"role": "primary"}
	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: ttl, Metadata: md})
	e.pass(step)

	r1 := e.renew(raftlease.RenewRequest{Name: n, Holder: "holder-1", Token: a.Token})
	if r1.TTL != ttl {
		t.Errorf("Renew without TTL: TTL %v, want it kept at %v", r1.TTL, ttl)
	}
	if !sameMetadata(r1.Metadata, md) {
		t.Errorf("Renew with nil metadata: metadata %v, want it kept: %v", r1.Metadata, md)
	}
	if r1.Revision <= a.Revision {
		t.Errorf("Renew: revision %d, want above %d", r1.Revision, a.Revision)
	}
	if !r1.AcquiredAt.Equal(a.AcquiredAt) {
		t.Errorf("Renew: AcquiredAt %v, want the token's grant time %v", r1.AcquiredAt, a.AcquiredAt)
	}
	if r1.Remaining <= ttl-step/2 {
		t.Errorf("Renew: Remaining %v, want the deadline restarted: above %v", r1.Remaining, ttl-step/2)
	}
	if r1.Deadline-a.Deadline < step*9/10 {
		t.Errorf("Renew %v later moved the deadline by %v, want at least %v", step, r1.Deadline-a.Deadline, step*9/10)
	}

	ttl2 := 8 * time.Second
	md2 := map[string]string{"role": "primary", "epoch": "2"}
	r2 := e.renew(raftlease.RenewRequest{Name: n, Holder: "holder-1", Token: a.Token, TTL: ttl2, Metadata: md2})
	if r2.TTL != ttl2 || !sameMetadata(r2.Metadata, md2) {
		t.Errorf("Renew with TTL %v and metadata %v: got TTL %v, metadata %v", ttl2, md2, r2.TTL, r2.Metadata)
	}
	if r2.Remaining <= ttl2-step/2 {
		t.Errorf("Renew with a new TTL %v: Remaining %v", ttl2, r2.Remaining)
	}
	if r2.Revision <= r1.Revision {
		t.Errorf("second Renew: revision %d, want above %d", r2.Revision, r1.Revision)
	}

	// A non-nil empty map clears the metadata; the TTL stays.
	r3 := e.renew(raftlease.RenewRequest{Name: n, Holder: "holder-1", Token: a.Token, Metadata: map[string]string{}})
	if len(r3.Metadata) != 0 {
		t.Errorf("Renew with empty non-nil metadata: metadata %v, want it cleared", r3.Metadata)
	}
	if r3.TTL != ttl2 {
		t.Errorf("Renew without TTL after a TTL change: TTL %v, want %v", r3.TTL, ttl2)
	}
	if d := diffLease(e.get(n), r3); d != "" {
		t.Errorf("Get after Renew: %s", d)
	}
}

// testRenewRefused: Renew by anyone but the holder under its token, of a
// free, released or expired lease, is refused with ErrNotHolder and changes
// nothing.
func testRenewRefused(e *env) {
	n := e.name("job")
	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: holdTTL, Metadata: map[string]string{"v": "1"}})
	change := func(holder string, token uint64) raftlease.RenewRequest {
		return raftlease.RenewRequest{Name: n, Holder: holder, Token: token, TTL: holdTTL * 2, Metadata: map[string]string{"v": "evil"}}
	}
	_, err := e.tryRenew(change("holder-2", a.Token))
	e.wantErr(err, raftlease.ErrNotHolder, "Renew by another holder with the right token")
	e.unchanged(a, "Renew by another holder")
	_, err = e.tryRenew(change("holder-1", a.Token+1000))
	e.wantErr(err, raftlease.ErrNotHolder, "Renew by the holder with a wrong token")
	e.unchanged(a, "Renew with a wrong token")

	// A token of the holder's own earlier grant is stale.
	e.release(a)
	b := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: holdTTL})
	_, err = e.tryRenew(change("holder-1", a.Token))
	e.wantErr(err, raftlease.ErrNotHolder, "Renew by the holder with its previous token %d (current %d)", a.Token, b.Token)
	e.unchanged(b, "Renew with a stale token")

	free := e.name("free")
	_, err = e.tryRenew(raftlease.RenewRequest{Name: free, Holder: "holder-1", Token: 1})
	e.wantErr(err, raftlease.ErrNotHolder, "Renew of a never-acquired name")
	e.gone(free)

	e.release(b)
	_, err = e.tryRenew(change("holder-1", b.Token))
	e.wantErr(err, raftlease.ErrNotHolder, "Renew of a released lease")
	e.gone(n)

	x := e.acquire(raftlease.AcquireRequest{Name: e.name("short"), Holder: "holder-1", TTL: shortTTL})
	e.awaitExpiry(x.Name)
	_, err = e.tryRenew(raftlease.RenewRequest{Name: x.Name, Holder: x.Holder, Token: x.Token})
	e.wantErr(err, raftlease.ErrNotHolder, "Renew of an expired lease by its last holder")
	e.gone(x.Name)
}

// testReleaseByHolder: Release by the holder frees the name at once, for
// anyone; a second Release is refused.
func testReleaseByHolder(e *env) {
	t := e.t
	n := e.name("job")
	keep := e.acquire(raftlease.AcquireRequest{Name: e.name("keep"), Holder: "holder-1", TTL: holdTTL})
	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: holdTTL})
	e.release(a)
	e.gone(n)
	ls := e.list(e.prefix)
	if len(ls.Leases) != 1 || ls.Leases[0].Name != keep.Name {
		t.Errorf("List after Release: got %d leases %v, want only %q", len(ls.Leases), names(ls.Leases), keep.Name)
	}
	err := e.tryRelease(raftlease.ReleaseRequest{Name: n, Holder: a.Holder, Token: a.Token})
	e.wantErr(err, raftlease.ErrNotHolder, "second Release of the same grant")

	b := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-2", TTL: holdTTL})
	if b.Token <= a.Token {
		t.Errorf("Acquire right after Release: token %d, want above %d", b.Token, a.Token)
	}
	e.unchanged(keep, "Release of another lease")
}

// testReleaseRefused: Release by another holder, under a wrong token, of a
// free or expired lease is refused with ErrNotHolder and changes nothing.
func testReleaseRefused(e *env) {
	n := e.name("job")
	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: holdTTL})
	err := e.tryRelease(raftlease.ReleaseRequest{Name: n, Holder: "holder-2", Token: a.Token})
	e.wantErr(err, raftlease.ErrNotHolder, "Release by another holder with the right token")
	e.unchanged(a, "Release by another holder")
	err = e.tryRelease(raftlease.ReleaseRequest{Name: n, Holder: "holder-1", Token: a.Token + 1000})
	e.wantErr(err, raftlease.ErrNotHolder, "Release by the holder with a wrong token")
	e.unchanged(a, "Release with a wrong token")

	free := e.name("free")
	err = e.tryRelease(raftlease.ReleaseRequest{Name: free, Holder: "holder-1", Token: 1})
	e.wantErr(err, raftlease.ErrNotHolder, "Release of a never-acquired name")
	e.gone(free)

	x := e.acquire(raftlease.AcquireRequest{Name: e.name("short"), Holder: "holder-1", TTL: shortTTL})
	e.awaitExpiry(x.Name)
	err = e.tryRelease(raftlease.ReleaseRequest{Name: x.Name, Holder: x.Holder, Token: x.Token})
	e.wantErr(err, raftlease.ErrNotHolder, "Release of an expired lease by its last holder")
	e.gone(x.Name)
	e.unchanged(a, "refused Releases of other names")
}

// testTokensMonotonic: every grant to a new holder, or to the same holder
// after its lease ended (release or expiry), gets a larger token.
func testTokensMonotonic(e *env) {
	t := e.t
	n := e.name("job")
	var last uint64
	next := func(holder string, ttl time.Duration, after string) raftlease.Lease {
		t.Helper()
		l := e.acquire(raftlease.AcquireRequest{Name: n, Holder: holder, TTL: ttl})
		if l.Token <= last {
			t.Errorf("Acquire by %s %s: token %d, want above every earlier token (%d)", holder, after, l.Token, last)
		}
		last = l.Token
		return l
	}
	a := next("holder-1", holdTTL, "on a free name")
	e.release(a)
	next("holder-2", shortTTL, "after another holder's release")
	e.awaitExpiry(n)
	c := next("holder-3", holdTTL, "after another holder's expiry")
	e.release(c)
	next("holder-3", shortTTL, "after its own release")
	e.awaitExpiry(n)
	f := next("holder-3", holdTTL, "after its own expiry")
	r := e.renew(raftlease.RenewRequest{Name: n, Holder: f.Holder, Token: f.Token})
	if r.Token != f.Token {
		t.Errorf("Renew changed the token from %d to %d", f.Token, r.Token)
	}
}

func names(ls []raftlease.Lease) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Name
	}
	return out
}
