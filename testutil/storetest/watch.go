package storetest

import (
	"context"
	"fmt"
	"time"

	"github.com/raftlease/raftlease"
)

// wantEvent is an expected event: its type and the lease it must carry (the
// lease a write returned, or for released and expired events the lease as it
// was before it went away).
type wantEvent struct {
	typ   raftlease.EventType
	lease raftlease.Lease
}

// watch opens a watch that lasts until the subtest ends.
func (e *env) watch(req raftlease.WatchRequest) <-chan raftlease.Event {
	e.t.Helper()
	ch, _ := e.watchCancel(req)
	return ch
}

// watchCancel opens a watch and returns a function that ends it.
func (e *env) watchCancel(req raftlease.WatchRequest) (<-chan raftlease.Event, context.CancelFunc) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	e.t.Cleanup(cancel)
	ch, err := e.store.Watch(ctx, req)
	if err != nil {
		cancel()
		e.t.Fatalf("Watch(%+v): %v", req, err)
	}
	if ch == nil {
		cancel()
		e.t.Fatalf("Watch(%+v) returned a nil channel", req)
	}
	return ch, cancel
}

// nextEvent returns the next event on ch, failing if none comes within
// eventWait, if the channel closes, or if the watch reports compaction.
func (e *env) nextEvent(ch <-chan raftlease.Event, what string) raftlease.Event {
	e.t.Helper()
	timer := time.NewTimer(eventWait)
	defer timer.Stop()
	select {
	case ev, ok := <-ch:
		if !ok {
			e.t.Fatalf("%s: the watch channel closed", what)
		}
		if ev.Type == raftlease.EventCompacted {
			e.t.Fatalf("%s: the watch was compacted (oldest retained revision %d)", what, ev.Revision)
		}
		return ev
	case <-timer.C:
		e.t.Fatalf("%s: no event within %v", what, eventWait)
	case <-e.ctx.Done():
		e.t.Fatalf("%s: %v", what, e.ctx.Err())
	}
	panic("unreachable")
}

// expectEvents reads len(want) events from ch and checks each against want
// and their revisions against each other.
func (e *env) expectEvents(ch <-chan raftlease.Event, what string, want []wantEvent) []raftlease.Event {
	e.t.Helper()
	got := make([]raftlease.Event, 0, len(want))
	var prev uint64
	for i, w := range want {
		step := fmt.Sprintf("%s: event %d of %d (%s of %q)", what, i+1, len(want), w.typ, w.lease.Name)
		ev := e.nextEvent(ch, step)
		e.checkEvent(step, ev, w)
		if ev.Revision < prev {
			e.t.Errorf("%s: revision %d went back from %d", step, ev.Revision, prev)
		}
		prev = ev.Revision
		got = append(got, ev)
	}
	return got
}

// checkEvent checks one event. A wrong type or lease name is fatal: every
// later event would be misaligned.
func (e *env) checkEvent(what string, ev raftlease.Event, w wantEvent) {
	e.t.Helper()
	if ev.Type != w.typ || ev.Lease.Name != w.lease.Name {
		e.t.Fatalf("%s: got %s", what, fmtEvent(ev))
	}
	if d := diffLease(ev.Lease, w.lease); d != "" {
		e.t.Errorf("%s: event lease differs: %s", what, d)
	}
	switch w.typ {
	case raftlease.EventAcquired, raftlease.EventRenewed:
		if ev.Revision != w.lease.Revision {
			e.t.Errorf("%s: event revision %d, want the lease's revision %d", what, ev.Revision, w.lease.Revision)
		}
	case raftlease.EventReleased, raftlease.EventExpired:
		if ev.Revision <= w.lease.Revision {
			e.t.Errorf("%s: event revision %d, want above the lease's last change %d", what, ev.Revision, w.lease.Revision)
		}
	}
}

// awaitClosed drains ch until it closes, failing if it stays open for
// eventWait.
func (e *env) awaitClosed(ch <-chan raftlease.Event, what string) {
	e.t.Helper()
	timer := time.NewTimer(eventWait)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timer.C:
			e.t.Fatalf("%s: the channel did not close within %v of cancelling the watch", what, eventWait)
		}
	}
}

// testWatchNameAndPrefix: a name watch and a prefix watch deliver, in order,
// every change of what they select and nothing else, with the revisions the
// writes returned.
func testWatchNameAndPrefix(e *env) {
	n, sibling, out := e.name("job"), e.name("job-2"), e.outside("job")
	rev0 := e.list(e.prefix).Revision
	byName := e.watch(raftlease.WatchRequest{Name: n, FromRevision: rev0 + 1})
	byPrefix := e.watch(raftlease.WatchRequest{Prefix: e.prefix, FromRevision: rev0 + 1})

	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: holdTTL, Metadata: map[string]string{"v": "1"}})
	sib := e.acquire(raftlease.AcquireRequest{Name: sibling, Holder: "holder-2", TTL: holdTTL})
	e.acquire(raftlease.AcquireRequest{Name: out, Holder: "holder-2", TTL: holdTTL})
	b := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: holdTTL, Metadata: map[string]string{"v": "1"}})
	c := e.renew(raftlease.RenewRequest{Name: n, Holder: "holder-1", Token: a.Token, Metadata: map[string]string{"v": "2"}})

	// Refused writes make no events.
	_, err := e.tryAcquire(raftlease.AcquireRequest{Name: n, Holder: "holder-3", TTL: holdTTL})
	e.wantErr(err, raftlease.ErrLeaseHeld, "Acquire by another holder")
	_, err = e.tryRenew(raftlease.RenewRequest{Name: n, Holder: "holder-1", Token: a.Token + 1000})
	e.wantErr(err, raftlease.ErrNotHolder, "Renew with a wrong token")
	err = e.tryRelease(raftlease.ReleaseRequest{Name: n, Holder: "holder-3", Token: a.Token})
	e.wantErr(err, raftlease.ErrNotHolder, "Release by another holder")

	e.release(c)
	d := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-3", TTL: shortTTL})
	e.awaitExpiry(n)

	want := []wantEvent{
		{raftlease.EventAcquired, a},
		{raftlease.EventRenewed, b}, // re-acquire by the holder
		{raftlease.EventRenewed, c},
		{raftlease.EventReleased, c},
		{raftlease.EventAcquired, d},
		{raftlease.EventExpired, d}, // from the store's own expiry: nothing else is written
	}
	e.expectEvents(byName, "watch of name "+n, want)
	wantPrefix := append([]wantEvent{want[0], {raftlease.EventAcquired, sib}}, want[1:]...)
	e.expectEvents(byPrefix, "watch of prefix "+e.prefix, wantPrefix)

	// The next grant follows the vacancy, and nothing came in between.
	f := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: holdTTL})
	e.expectEvents(byName, "watch of name "+n, []wantEvent{{raftlease.EventAcquired, f}})
	e.expectEvents(byPrefix, "watch of prefix "+e.prefix, []wantEvent{{raftlease.EventAcquired, f}})
}

// testWatchResume: a watch from any revision replays the retained changes
// from there, then continues live without a gap.
func testWatchResume(e *env) {
	n := e.name("job")
	rev0 := e.list(e.prefix).Revision
	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: holdTTL})
	b := e.renew(raftlease.RenewRequest{Name: n, Holder: "holder-1", Token: a.Token, Metadata: map[string]string{"v": "2"}})
	e.release(b)
	c := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-2", TTL: holdTTL})
	want := []wantEvent{
		{raftlease.EventAcquired, a},
		{raftlease.EventRenewed, b},
		{raftlease.EventReleased, b},
		{raftlease.EventAcquired, c},
	}
	hist := e.expectEvents(e.watch(raftlease.WatchRequest{Name: n, FromRevision: rev0 + 1}), "watch from before the first change", want)

	type resumed struct {
		what string
		ch   <-chan raftlease.Event
		want []wantEvent
	}
	var watches []resumed
	for i, ev := range hist {
		watches = append(watches,
			resumed{fmt.Sprintf("watch from revision %d (event %d)", ev.Revision, i+1),
				e.watch(raftlease.WatchRequest{Name: n, FromRevision: ev.Revision}), want[i:]},
			resumed{fmt.Sprintf("watch from revision %d (after event %d)", ev.Revision+1, i+1),
				e.watch(raftlease.WatchRequest{Name: n, FromRevision: ev.Revision + 1}), want[i+1:]},
		)
	}
	watches = append(watches, resumed{fmt.Sprintf("prefix watch from revision %d", hist[1].Revision),
		e.watch(raftlease.WatchRequest{Prefix: e.prefix, FromRevision: hist[1].Revision}), want[1:]})

	// A live change made while the replays may still be in flight follows
	// them, and so does one made after they were read.
	d := e.renew(raftlease.RenewRequest{Name: n, Holder: c.Holder, Token: c.Token})
	for _, w := range watches {
		e.expectEvents(w.ch, w.what, append(w.want[:len(w.want):len(w.want)], wantEvent{raftlease.EventRenewed, d}))
	}
	e.release(d)
	for _, w := range watches {
		e.expectEvents(w.ch, w.what+", live", []wantEvent{{raftlease.EventReleased, d}})
	}
}

// testWatchStartsNow: a watch without FromRevision delivers the changes made
// after it started, not the history before.
func testWatchStartsNow(e *env) {
	t := e.t
	rev0 := e.list(e.prefix).Revision
	old := e.acquire(raftlease.AcquireRequest{Name: e.name("old"), Holder: "holder-1", TTL: holdTTL})
	e.release(old)
	before := e.acquire(raftlease.AcquireRequest{Name: e.name("before"), Holder: "holder-1", TTL: holdTTL})
	// Wait until the store's watches have seen the history, so that a
	// replicated store's watch is not merely behind.
	e.expectEvents(e.watch(raftlease.WatchRequest{Prefix: e.prefix, FromRevision: rev0 + 1}), "probe watch", []wantEvent{
		{raftlease.EventAcquired, old},
		{raftlease.EventReleased, old},
		{raftlease.EventAcquired, before},
	})

	w := e.watch(raftlease.WatchRequest{Prefix: e.prefix})
	after := e.acquire(raftlease.AcquireRequest{Name: e.name("after"), Holder: "holder-2", TTL: holdTTL})
	for {
		ev := e.nextEvent(w, "watch without FromRevision")
		if ev.Lease.Name == after.Name {
			e.checkEvent("watch without FromRevision", ev, wantEvent{raftlease.EventAcquired, after})
			break
		}
		// A replica whose watch had not applied the last change when the
		// watch started may still deliver it; nothing older.
		if ev.Type == raftlease.EventAcquired && ev.Lease.Name == before.Name && ev.Revision == before.Revision {
			t.Logf("watch without FromRevision delivered %s, the last change before it started", fmtEvent(ev))
			continue
		}
		t.Fatalf("watch without FromRevision delivered %s from before it started", fmtEvent(ev))
	}
}

// testWatchClosesOnCancel: cancelling a watch's context closes its channel,
// whether it was read or not, and leaves the store and other watches working.
func testWatchClosesOnCancel(e *env) {
	n := e.name("job")
	rev0 := e.list(e.prefix).Revision
	read, cancelRead := e.watchCancel(raftlease.WatchRequest{Name: n})
	unread, cancelUnread := e.watchCancel(raftlease.WatchRequest{Prefix: e.prefix})
	replay, cancelReplay := e.watchCancel(raftlease.WatchRequest{Prefix: e.prefix, FromRevision: rev0 + 1})
	kept := e.watch(raftlease.WatchRequest{Name: n, FromRevision: rev0 + 1})

	a := e.acquire(raftlease.AcquireRequest{Name: n, Holder: "holder-1", TTL: holdTTL})
	b := e.renew(raftlease.RenewRequest{Name: n, Holder: "holder-1", Token: a.Token})
	e.expectEvents(read, "watch read before cancel", []wantEvent{{raftlease.EventAcquired, a}})

	cancelRead()
	cancelUnread()
	cancelReplay()
	e.awaitClosed(read, "watch of a name, partly read")
	e.awaitClosed(unread, "watch of a prefix, never read")
	e.awaitClosed(replay, "watch from a revision, never read")

	c := e.renew(raftlease.RenewRequest{Name: n, Holder: "holder-1", Token: a.Token})
	e.expectEvents(kept, "watch left open", []wantEvent{
		{raftlease.EventAcquired, a},
		{raftlease.EventRenewed, b},
		{raftlease.EventRenewed, c},
	})
	fresh := e.watch(raftlease.WatchRequest{Name: n, FromRevision: c.Revision})
	e.release(c)
	e.expectEvents(fresh, "watch opened after others closed", []wantEvent{
		{raftlease.EventRenewed, c},
		{raftlease.EventReleased, c},
	})
}
