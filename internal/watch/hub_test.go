package watch_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/internal/watch"
)

// wait bounds every wait for an event or a close. It is a failure deadline,
// never a synchronisation delay: tests proceed as soon as the event comes.
const wait = 10 * time.Second

// event returns an acquire event of name; the token identifies it in
// comparisons.
func event(name string, token uint64) raftlease.Event {
	return raftlease.Event{
		Type:  raftlease.EventAcquired,
		Lease: raftlease.Lease{Name: name, Holder: "holder-1", Token: token},
	}
}

// at returns ev as subscribers receive it: stamped with revision rev.
func at(rev uint64, ev raftlease.Event) raftlease.Event {
	ev.Revision = rev
	return ev
}

func newHub(t testing.TB, opts watch.Options) *watch.Hub {
	t.Helper()
	h := watch.NewHub(opts)
	t.Cleanup(h.Close)
	return h
}

// subscribe opens a subscription that lasts until the test ends.
func subscribe(t testing.TB, h *watch.Hub, req raftlease.WatchRequest) <-chan raftlease.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := h.Subscribe(ctx, req)
	require.NoError(t, err, "Subscribe(%+v)", req)
	require.NotNil(t, ch)
	return ch
}

// receive returns the next event on ch; it fails if ch closes or nothing
// comes within wait.
func receive(t testing.TB, ch <-chan raftlease.Event) raftlease.Event {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "the channel closed")
		return ev
	case <-timer.C:
		require.FailNow(t, "no event", "nothing within %v", wait)
	}
	panic("unreachable")
}

func receiveN(t testing.TB, ch <-chan raftlease.Event, n int) []raftlease.Event {
	t.Helper()
	got := make([]raftlease.Event, 0, n)
	for range n {
		got = append(got, receive(t, ch))
	}
	return got
}

// drainUntilClosed reads ch until it closes and returns what it read; it
// fails if ch stays open for wait.
func drainUntilClosed(t testing.TB, ch <-chan raftlease.Event) []raftlease.Event {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var got []raftlease.Event
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, ev)
		case <-timer.C:
			require.FailNow(t, "channel not closed", "still open after %v, read %d events", wait, len(got))
		}
	}
}

// tokens lists the tokens of events, for compact comparisons.
func tokens(events []raftlease.Event) []uint64 {
	out := make([]uint64, len(events))
	for i, ev := range events {
		out[i] = ev.Lease.Token
	}
	return out
}

func TestLiveDeliveryFollowsFilters(t *testing.T) {
	h := newHub(t, watch.Options{})
	h.Publish(1, []raftlease.Event{event("jobs/a", 1)}) // before every Subscribe: never delivered

	all := subscribe(t, h, raftlease.WatchRequest{})
	byPrefix := subscribe(t, h, raftlease.WatchRequest{Prefix: "jobs/"})
	byName := subscribe(t, h, raftlease.WatchRequest{Name: "jobs/a"})

	published := []struct {
		rev    uint64
		events []raftlease.Event
	}{
		{2, []raftlease.Event{event("jobs/a", 2), event("other", 3)}},
		{3, nil}, // an epoch or a tick: a revision without events
		{4, []raftlease.Event{event("jobs/b", 4)}},
		{4, []raftlease.Event{event("jobs", 5)}}, // the same revision again: allowed
		{6, []raftlease.Event{event("jobs/a", 6), event("jobs/ab", 7)}},
	}
	for _, p := range published {
		h.Publish(p.rev, p.events)
	}
	require.Equal(t, uint64(6), h.Revision())

	gotAll := receiveN(t, all, 6)
	require.Equal(t, []uint64{2, 3, 4, 5, 6, 7}, tokens(gotAll))
	require.Equal(t, []raftlease.Event{
		at(2, event("jobs/a", 2)), at(2, event("other", 3)), at(4, event("jobs/b", 4)),
		at(4, event("jobs", 5)), at(6, event("jobs/a", 6)), at(6, event("jobs/ab", 7)),
	}, gotAll)
	require.Equal(t, []uint64{2, 4, 6, 7}, tokens(receiveN(t, byPrefix, 4)))
	require.Equal(t, []uint64{2, 6}, tokens(receiveN(t, byName, 2)))

	// A barrier every filter selects comes next on every channel: nothing
	// else was delivered in between.
	h.Publish(7, []raftlease.Event{event("jobs/a", 8)})
	for _, ch := range []<-chan raftlease.Event{all, byPrefix, byName} {
		require.Equal(t, at(7, event("jobs/a", 8)), receive(t, ch))
	}
}

func TestPublishStampsRevisionAndCopiesEvents(t *testing.T) {
	h := newHub(t, watch.Options{})
	ch1 := subscribe(t, h, raftlease.WatchRequest{})
	ch2 := subscribe(t, h, raftlease.WatchRequest{})

	md := map[string]string{"addr": "10.0.0.1"}
	batch := []raftlease.Event{event("a", 1)}
	batch[0].Revision = 999 // the hub trusts the revision it is given
	batch[0].Lease.Metadata = md
	h.Publish(5, batch)
	batch[0] = event("reused", 2) // the publisher reuses its slice
	h.Publish(6, batch)

	want1 := at(5, event("a", 1))
	want1.Lease.Metadata = md
	for _, ch := range []<-chan raftlease.Event{ch1, ch2} {
		require.Equal(t, []raftlease.Event{want1, at(6, event("reused", 2))}, receiveN(t, ch, 2))
	}
}

func TestSubscribeValidates(t *testing.T) {
	h := newHub(t, watch.Options{})
	for _, req := range []raftlease.WatchRequest{
		{Name: "a", Prefix: "a"},
		{Prefix: "has space"},
		{Name: "bad{brace}"},
	} {
		_, err := h.Subscribe(context.Background(), req)
		require.ErrorIs(t, err, raftlease.ErrInvalidArgument, "%+v", req)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.Subscribe(ctx, raftlease.WatchRequest{})
	require.ErrorIs(t, err, context.Canceled)
}

// TestSubscribeFromFutureRevision: a FromRevision beyond the current
// revision waits for it and skips the revisions before it.
func TestSubscribeFromFutureRevision(t *testing.T) {
	h := newHub(t, watch.Options{})
	h.Publish(10, []raftlease.Event{event("a", 1)})
	ch := subscribe(t, h, raftlease.WatchRequest{FromRevision: 13})
	h.Publish(11, []raftlease.Event{event("a", 2)})
	h.Publish(12, []raftlease.Event{event("a", 3)})
	h.Publish(13, []raftlease.Event{event("a", 4)})
	h.Publish(14, []raftlease.Event{event("a", 5)})
	require.Equal(t, []uint64{4, 5}, tokens(receiveN(t, ch, 2)))
}

// TestCompactionAtSubscribe walks the oldest retained revision through
// evictions, including revisions without events and a revision only partly
// retained.
func TestCompactionAtSubscribe(t *testing.T) {
	h := newHub(t, watch.Options{Retain: 2})

	requireOldest := func(oldest uint64, wantTokens []uint64) {
		t.Helper()
		_, err := h.Subscribe(context.Background(), raftlease.WatchRequest{FromRevision: oldest - 1})
		if oldest > 1 {
			require.ErrorIs(t, err, raftlease.ErrCompacted)
			require.Contains(t, err.Error(), "oldest retained revision is "+strconv.FormatUint(oldest, 10))
		}
		// From the oldest retained revision, everything retained is replayed.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch, err := h.Subscribe(ctx, raftlease.WatchRequest{FromRevision: oldest})
		require.NoError(t, err, "from revision %d", oldest)
		require.Equal(t, wantTokens, tokens(receiveN(t, ch, len(wantTokens))))
	}

	h.Publish(1, []raftlease.Event{event("a", 1)})
	h.Publish(2, nil)
	h.Publish(3, []raftlease.Event{event("a", 3)})
	requireOldest(1, []uint64{1, 3}) // nothing evicted yet
	h.Publish(4, []raftlease.Event{event("a", 4)})
	requireOldest(2, []uint64{3, 4}) // revision 2 had no events: covered
	h.Publish(5, []raftlease.Event{event("a", 5), event("a", 6)})
	requireOldest(5, []uint64{5, 6})
	h.Publish(6, []raftlease.Event{event("a", 7)})
	// Revision 5 is only half retained now.
	requireOldest(6, []uint64{7})
	h.Publish(7, []raftlease.Event{event("a", 8), event("a", 9), event("a", 10)})
	// A revision larger than the ring is never complete.
	requireOldest(8, []uint64{})
}

// TestSlowSubscriberIsCompacted: subscribers that never read hold up
// neither Publish nor other subscribers; when they finally read they get an
// unbroken prefix of the history, then EventCompacted, then a closed channel.
func TestSlowSubscriberIsCompacted(t *testing.T) {
	const (
		retain = 16
		buffer = 4
		burst  = 10000
		paced  = 1000
	)
	h := newHub(t, watch.Options{Retain: retain, Buffer: buffer})
	stuck := subscribe(t, h, raftlease.WatchRequest{})
	alsoStuck := subscribe(t, h, raftlease.WatchRequest{Prefix: "a"})
	// Fill both channels first.
	for i := uint64(1); i <= buffer+1; i++ {
		h.Publish(i, []raftlease.Event{event("a", i)})
	}
	require.Eventually(t, func() bool { return len(stuck) == buffer && len(alsoStuck) == buffer },
		wait, time.Millisecond, "the subscribers fill their channels")

	// Publish never blocks: a burst far larger than the ring and every
	// buffer completes while nobody reads. A blocking Publish would fail
	// at the deadline instead of hanging the test.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(buffer + 2); i <= burst; i++ {
			h.Publish(i, []raftlease.Event{event("a", i)})
		}
	}()
	select {
	case <-done:
	case <-time.After(wait):
		require.FailNow(t, "Publish blocked on subscribers that do not read")
	}

	// Another subscriber keeps up, in lockstep with Publish, while the
	// stuck ones still hold their full channels.
	reader := subscribe(t, h, raftlease.WatchRequest{})
	for i := uint64(burst + 1); i <= burst+paced; i++ {
		h.Publish(i, []raftlease.Event{event("a", i)})
		require.Equal(t, at(i, event("a", i)), receive(t, reader))
	}

	const oldest = burst + paced - retain + 1 // one event per revision
	for _, ch := range []<-chan raftlease.Event{stuck, alsoStuck} {
		got := drainUntilClosed(t, ch)
		require.GreaterOrEqual(t, len(got), buffer+1, "at least the buffer, then EventCompacted")
		delivered, last := got[:len(got)-1], got[len(got)-1]
		for i, ev := range delivered {
			require.Equal(t, at(uint64(i+1), event("a", uint64(i+1))), ev, "event %d: an unbroken prefix of the history", i)
		}
		// The subscriber reports the oldest revision retained when it
		// found it had fallen behind: past what it delivered, and at most
		// the oldest retained now.
		require.Equal(t, raftlease.EventCompacted, last.Type)
		require.Greater(t, last.Revision, uint64(len(delivered)))
		require.LessOrEqual(t, last.Revision, uint64(oldest))
		_, err := h.Subscribe(context.Background(), raftlease.WatchRequest{FromRevision: uint64(len(delivered)) + 1})
		require.ErrorIs(t, err, raftlease.ErrCompacted, "the first revision not delivered is really gone")
	}

	// The reader was never compacted and continues.
	h.Publish(burst+paced+1, []raftlease.Event{event("a", 0)})
	require.Equal(t, at(burst+paced+1, event("a", 0)), receive(t, reader))
}

func TestCancelClosesChannel(t *testing.T) {
	h := newHub(t, watch.Options{Buffer: 2})
	ctxRead, cancelRead := context.WithCancel(context.Background())
	read, err := h.Subscribe(ctxRead, raftlease.WatchRequest{})
	require.NoError(t, err)
	ctxUnread, cancelUnread := context.WithCancel(context.Background())
	unread, err := h.Subscribe(ctxUnread, raftlease.WatchRequest{}) // blocked sending after 2 events
	require.NoError(t, err)
	ctxFuture, cancelFuture := context.WithCancel(context.Background())
	future, err := h.Subscribe(ctxFuture, raftlease.WatchRequest{FromRevision: 1000}) // waiting
	require.NoError(t, err)
	kept := subscribe(t, h, raftlease.WatchRequest{})

	for i := uint64(1); i <= 5; i++ {
		h.Publish(i, []raftlease.Event{event("a", i)})
	}
	require.Equal(t, []uint64{1}, tokens(receiveN(t, read, 1)))
	cancelRead()
	cancelUnread()
	cancelFuture()
	for _, ch := range []<-chan raftlease.Event{read, unread, future} {
		got := drainUntilClosed(t, ch)
		for _, ev := range got {
			require.NotEqual(t, raftlease.EventCompacted, ev.Type)
		}
	}

	// The rest of the hub is unaffected.
	h.Publish(6, []raftlease.Event{event("a", 6)})
	require.Equal(t, []uint64{1, 2, 3, 4, 5, 6}, tokens(receiveN(t, kept, 6)))
}

func TestCloseClosesEverything(t *testing.T) {
	h := watch.NewHub(watch.Options{Retain: 8, Buffer: 1})
	ctx := context.Background()
	var chans []<-chan raftlease.Event
	for _, req := range []raftlease.WatchRequest{
		{},                   // waiting live
		{FromRevision: 1},    // replaying, blocked on its full buffer
		{FromRevision: 1000}, // waiting for a future revision
		{Name: "nobody"},     // filtering everything out
	} {
		ch, err := h.Subscribe(ctx, req)
		require.NoError(t, err)
		chans = append(chans, ch)
	}
	for i := uint64(1); i <= 5; i++ {
		h.Publish(i, []raftlease.Event{event("a", i)})
	}

	h.Close() // returns only once every subscriber goroutine has ended
	for _, ch := range chans {
		drainUntilClosed(t, ch)
	}
	h.Close() // idempotent

	_, err := h.Subscribe(ctx, raftlease.WatchRequest{})
	require.ErrorIs(t, err, raftlease.ErrClosed)
	// The apply path may still run during shutdown.
	h.Publish(6, []raftlease.Event{event("a", 6)})
	h.Reset(7)
	require.Equal(t, uint64(7), h.Revision())
}

func TestReset(t *testing.T) {
	t.Run("at start", func(t *testing.T) {
		// A store that starts from a snapshot at revision 100 has no history.
		h := newHub(t, watch.Options{})
		h.Reset(100)
		require.Equal(t, uint64(100), h.Revision())
		for _, f := range []uint64{1, 50, 100} {
			_, err := h.Subscribe(context.Background(), raftlease.WatchRequest{FromRevision: f})
			require.ErrorIs(t, err, raftlease.ErrCompacted, "from %d", f)
			require.Contains(t, err.Error(), "oldest retained revision is 101")
		}
		from := subscribe(t, h, raftlease.WatchRequest{FromRevision: 101})
		live := subscribe(t, h, raftlease.WatchRequest{})
		h.Publish(101, []raftlease.Event{event("a", 1)})
		require.Equal(t, at(101, event("a", 1)), receive(t, from))
		require.Equal(t, at(101, event("a", 1)), receive(t, live))
	})

	t.Run("while subscribed", func(t *testing.T) {
		h := newHub(t, watch.Options{})
		h.Publish(1, []raftlease.Event{event("a", 1)})
		caughtUp := subscribe(t, h, raftlease.WatchRequest{FromRevision: 1})
		require.Equal(t, uint64(1), receive(t, caughtUp).Lease.Token)
		waiting := subscribe(t, h, raftlease.WatchRequest{FromRevision: 300})

		// A snapshot install jumps over revisions 2..200: every open
		// subscription has lost its place.
		h.Reset(200)
		compacted := raftlease.Event{Type: raftlease.EventCompacted, Revision: 201}
		require.Equal(t, []raftlease.Event{compacted}, drainUntilClosed(t, caughtUp))
		require.Equal(t, []raftlease.Event{compacted}, drainUntilClosed(t, waiting))

		_, err := h.Subscribe(context.Background(), raftlease.WatchRequest{FromRevision: 1})
		require.ErrorIs(t, err, raftlease.ErrCompacted)
		again := subscribe(t, h, raftlease.WatchRequest{FromRevision: 201})
		h.Publish(201, []raftlease.Event{event("a", 2)})
		require.Equal(t, at(201, event("a", 2)), receive(t, again))
	})

	t.Run("to an older revision", func(t *testing.T) {
		h := newHub(t, watch.Options{})
		h.Publish(50, []raftlease.Event{event("a", 1)})
		h.Reset(10)
		require.Equal(t, uint64(10), h.Revision())
		ch := subscribe(t, h, raftlease.WatchRequest{FromRevision: 11})
		h.Publish(11, []raftlease.Event{event("a", 2)})
		require.Equal(t, at(11, event("a", 2)), receive(t, ch))
	})
}

func TestPublishBackwardsPanics(t *testing.T) {
	h := newHub(t, watch.Options{})
	h.Publish(5, nil)
	require.Panics(t, func() { h.Publish(4, nil) })
	require.Equal(t, uint64(5), h.Revision())
}

func TestDefaults(t *testing.T) {
	h := newHub(t, watch.Options{})
	ch := subscribe(t, h, raftlease.WatchRequest{})
	require.Equal(t, watch.DefaultBuffer, cap(ch))
	// The default ring keeps DefaultRetain events.
	for i := uint64(1); i <= watch.DefaultRetain+1; i++ {
		h.Publish(i, []raftlease.Event{event("a", i)})
	}
	_, err := h.Subscribe(context.Background(), raftlease.WatchRequest{FromRevision: 1})
	require.ErrorIs(t, err, raftlease.ErrCompacted)
	replay := subscribe(t, h, raftlease.WatchRequest{FromRevision: 2})
	require.Equal(t, uint64(2), receive(t, replay).Revision)
}
