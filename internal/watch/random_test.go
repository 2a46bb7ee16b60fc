package watch_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/internal/watch"
)

var seedFlag = flag.Uint64("seed", 0, "seed for the randomised tests (0: from the clock)")

// testSeed returns the seed of a randomised test and logs it, so that a
// failure can be replayed with -seed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -run '^%s$' -seed %d)", seed, t.Name(), seed)
	return seed
}

var (
	// names are the lease names the randomised tests publish events for.
	names = []string{"a/x", "a/y", "b/x", "ab", "x"}
	// filters are the watches they open; each selects some of names.
	filters = []raftlease.WatchRequest{{}, {Prefix: "a/"}, {Prefix: "a"}, {Name: "a/x"}, {Name: "x"}, {Prefix: "b"}}
	types   = []raftlease.EventType{raftlease.EventAcquired, raftlease.EventRenewed, raftlease.EventReleased, raftlease.EventExpired}
)

// randomEvent returns an event of a random name and type; token makes it
// unique.
func randomEvent(rng *rand.Rand, token uint64) raftlease.Event {
	ev := event(names[rng.IntN(len(names))], token)
	ev.Type = types[rng.IntN(len(types))]
	return ev
}

// selected returns the events of all (as published, stamped) that a
// subscription of req from revision from must deliver. This is the
// reference the hub is compared against.
func selected(all []raftlease.Event, req raftlease.WatchRequest, from uint64) []raftlease.Event {
	out := []raftlease.Event{}
	for _, ev := range all {
		if ev.Revision >= from && req.Matches(ev.Lease.Name) {
			out = append(out, ev)
		}
	}
	return out
}

// TestResumeRandomised: a subscription from a random revision over a random
// history replays exactly the retained events at or after it, then
// continues live, with neither gaps nor duplicates; or, when that revision
// is no longer complete in the ring, Subscribe returns ErrCompacted naming
// the oldest retained revision. Both are checked against a reference model
// of the whole published history.
func TestResumeRandomised(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 0))
	for trial := range 400 {
		if !t.Run(strconv.Itoa(trial), func(t *testing.T) { resumeTrial(t, rng) }) {
			break
		}
	}
}

func resumeTrial(t *testing.T, rng *rand.Rand) {
	const maxPerRevision = 3 // random events per revision, plus one barrier
	retain := maxPerRevision + 1 + rng.IntN(60)
	h := newHub(t, watch.Options{Retain: retain, Buffer: 1 + rng.IntN(8)})
	req := filters[rng.IntN(len(filters))]
	// barrier is a name req selects. A subscriber that has delivered an
	// event has examined every event before it; once it delivers the last
	// one published its cursor is at the head of the ring, so up to retain
	// further events can be published without evicting any it still needs.
	barrier := req.Name
	if barrier == "" {
		barrier = req.Prefix + "x"
	}

	var (
		all    []raftlease.Event // everything published since the last Reset, stamped
		token  uint64
		rev    uint64
		floor  uint64 = 1 // oldest revision retained when nothing is evicted
		nextID        = func() uint64 { token++; return token }
	)
	publish := func(r uint64, n int, withBarrier bool) int {
		events := make([]raftlease.Event, 0, n+1)
		for range n {
			events = append(events, randomEvent(rng, nextID()))
		}
		if withBarrier {
			events = append(events, event(barrier, nextID()))
		}
		h.Publish(r, events)
		for _, ev := range events {
			all = append(all, at(r, ev))
		}
		rev = r
		return len(events)
	}
	// oldest is the model of the oldest retained revision: one past the
	// newest revision the ring has overwritten an event of.
	oldest := func() uint64 {
		o := floor
		if n := len(all) - retain; n > 0 {
			o = max(o, all[n-1].Revision+1)
		}
		return o
	}

	if rng.IntN(4) == 0 {
		rev = uint64(rng.IntN(20))
		h.Reset(rev)
		floor = rev + 1
	}
	for i, n := 0, rng.IntN(150); i < n; i++ {
		publish(rev+1+uint64(rng.IntN(3)), rng.IntN(maxPerRevision+1), i == n-1)
	}

	from := 1 + uint64(rng.IntN(int(rev)+6))
	req.FromRevision = from
	t.Logf("retain %d, %d events up to revision %d, oldest %d, watch %+v", retain, len(all), rev, oldest(), req)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := h.Subscribe(ctx, req)
	if from < oldest() {
		require.ErrorIs(t, err, raftlease.ErrCompacted)
		require.Contains(t, err.Error(), fmt.Sprintf("oldest retained revision is %d", oldest()))
		return
	}
	require.NoError(t, err)

	// Replay. Nothing is published while it is read, so nothing it needs
	// can be overwritten.
	want := selected(all, req, from)
	got := receiveN(t, ch, len(want))
	require.Equal(t, want, got, "replay")

	if from > rev {
		// The subscriber starts at the head. Revisions before from may
		// still come (and are skipped), then the barrier at from.
		budget := retain - (maxPerRevision + 1)
		for rev+1 < from && budget > 0 && rng.IntN(3) > 0 {
			budget -= publish(rev+1+uint64(rng.IntN(int(from-rev-1))), rng.IntN(min(budget, maxPerRevision)+1), false)
		}
		publish(from, rng.IntN(maxPerRevision+1), true)
		want = selected(all, req, from)
		got = append(got, receiveN(t, ch, len(want)-len(got))...)
		require.Equal(t, want, got, "first revisions after the start")
	}
	// Live chunks: each at most retain events, ending with a barrier.
	for range 1 + rng.IntN(5) {
		budget := retain - (maxPerRevision + 1)
		for budget > 0 && rng.IntN(4) > 0 {
			budget -= publish(rev+uint64(rng.IntN(3)), rng.IntN(min(budget, maxPerRevision)+1), false)
		}
		publish(rev+1+uint64(rng.IntN(2)), rng.IntN(maxPerRevision+1), true)
		want = selected(all, req, from)
		got = append(got, receiveN(t, ch, len(want)-len(got))...)
		require.Equal(t, want, got, "live")
	}

	// Nothing more, not even a duplicate, is pending.
	cancel()
	require.Empty(t, drainUntilClosed(t, ch))
}

// TestConcurrentPublishSubscribe runs one publisher against watchers that
// keep subscribing (live, from the past, from the future), reading,
// cancelling and being compacted, under the race detector. Every
// subscription must deliver a gap-free run of what the reference model
// selects for it.
func TestConcurrentPublishSubscribe(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	const (
		revisions = 5000
		watchers  = 8
	)
	h := newHub(t, watch.Options{Retain: 1024, Buffer: 8})

	// The whole history is decided up front. Its last revision carries an
	// event every filter selects, so a complete subscription knows its end.
	type revision struct {
		rev    uint64
		events []raftlease.Event
	}
	var (
		plan  []revision
		all   []raftlease.Event
		token uint64
	)
	for r := uint64(1); r <= revisions; r++ {
		var events []raftlease.Event
		for range rng.IntN(4) {
			token++
			events = append(events, randomEvent(rng, token))
		}
		if r == revisions {
			for _, name := range []string{"a/x", "b/x", "x"} {
				token++
				events = append(events, event(name, token))
			}
		}
		plan = append(plan, revision{r, events})
		for _, ev := range events {
			all = append(all, at(r, ev))
		}
	}
	const final = revisions

	start := make(chan struct{})
	published := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(published)
		<-start
		for _, p := range plan {
			h.Publish(p.rev, p.events)
			// Let the watchers run, so that most subscriptions keep up and
			// some fall behind. Correctness never depends on it.
			runtime.Gosched()
		}
	})

	var (
		statsMu sync.Mutex
		stats   = map[string]int{}
	)
	for w := range watchers {
		wrng := rand.New(rand.NewPCG(seed, uint64(w)+1))
		wg.Go(func() {
			<-start
			for i := 0; ; i++ {
				select {
				case <-published:
					if i >= 3 {
						return
					}
				default:
				}
				outcome, err := watchOnce(h, wrng, all, final)
				if err != nil {
					t.Errorf("watcher %d, subscription %d: %v", w, i, err)
					return
				}
				statsMu.Lock()
				stats[outcome]++
				statsMu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	t.Logf("subscriptions by outcome: %v", stats)
}

// watchOnce opens one subscription with a random filter and start, reads
// it to its end (complete, compacted, or cancelled at random) and checks
// what it delivered. It returns the outcome.
func watchOnce(h *watch.Hub, rng *rand.Rand, all []raftlease.Event, final uint64) (string, error) {
	req := filters[rng.IntN(len(filters))]
	before := h.Revision()
	switch rng.IntN(3) {
	case 0: // live
	case 1: // from the past, perhaps compacted
		req.FromRevision = max(1, before-min(before, uint64(rng.IntN(400))))
	case 2: // from the future, perhaps beyond the last revision
		req.FromRevision = before + 1 + uint64(rng.IntN(50))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := h.Subscribe(ctx, req)
	after := h.Revision()
	if errors.Is(err, raftlease.ErrCompacted) && req.FromRevision != 0 {
		return "refused as compacted", nil
	}
	if err != nil {
		return "", fmt.Errorf("Subscribe(%+v): %w", req, err)
	}
	want := selected(all, req, req.FromRevision)
	// Whether the subscription must reach the last event of the history: a
	// live one opened after the last Publish sees nothing.
	expectEnd := len(want) > 0 && (req.FromRevision != 0 || after < final)
	cancelAfter := -1
	if !expectEnd {
		cancel()
	} else if rng.IntN(2) == 0 {
		cancelAfter = rng.IntN(200)
	}

	var (
		got       []raftlease.Event
		compacted *raftlease.Event
		cancelled = !expectEnd
		timer     = time.NewTimer(wait)
	)
	defer timer.Stop()
read:
	for {
		select {
		case ev, ok := <-ch:
			switch {
			case !ok:
				break read
			case compacted != nil:
				return "", fmt.Errorf("%+v: event %+v after EventCompacted", req, ev)
			case ev.Type == raftlease.EventCompacted:
				compacted = &ev
				continue
			}
			got = append(got, ev)
			if len(got) == cancelAfter || (expectEnd && ev.Lease.Token == want[len(want)-1].Lease.Token) {
				cancelled = true
				cancel()
			}
		case <-timer.C:
			return "", fmt.Errorf("%+v (revisions %d..%d at Subscribe): still open after %v with %d of %d events", req, before, after, wait, len(got), len(want))
		}
	}

	// got must be a contiguous run of want: from its start when resuming
	// from a revision, from some event published after Subscribe began
	// when live.
	k := 0
	if len(got) > 0 {
		k = indexOfToken(want, got[0].Lease.Token)
		if k < 0 {
			return "", fmt.Errorf("%+v: delivered %+v, which it does not select", req, got[0])
		}
	}
	if req.FromRevision != 0 && k != 0 {
		return "", fmt.Errorf("%+v: replay starts at selected event %d, not the first", req, k)
	}
	if req.FromRevision == 0 && len(got) > 0 {
		if got[0].Revision <= before {
			return "", fmt.Errorf("%+v: live watch opened at revision %d delivered %+v", req, before, got[0])
		}
		if first := indexAfter(want, after); k > first {
			return "", fmt.Errorf("%+v: live watch opened by revision %d skipped %+v", req, after, want[first])
		}
	}
	if k+len(got) > len(want) || (len(got) > 0 && !reflect.DeepEqual(got, want[k:k+len(got)])) {
		return "", fmt.Errorf("%+v: delivered %s, not a contiguous run of the %d selected events from %d", req, brief(got), len(want), k)
	}

	switch {
	case compacted != nil:
		if len(got) > 0 && compacted.Revision <= got[len(got)-1].Revision {
			return "", fmt.Errorf("%+v: compacted at revision %d after delivering revision %d", req, compacted.Revision, got[len(got)-1].Revision)
		}
		return "compacted", nil
	case cancelled && (!expectEnd || k+len(got) < len(want)):
		return "cancelled", nil
	case k+len(got) != len(want):
		return "", fmt.Errorf("%+v: closed after %d of %d events without EventCompacted", req, len(got), len(want)-k)
	default:
		return "complete", nil
	}
}

func indexOfToken(events []raftlease.Event, token uint64) int {
	for i, ev := range events {
		if ev.Lease.Token == token {
			return i
		}
	}
	return -1
}

// indexAfter returns the index of the first event with a revision above
// rev, or len(events).
func indexAfter(events []raftlease.Event, rev uint64) int {
	for i, ev := range events {
		if ev.Revision > rev {
			return i
		}
	}
	return len(events)
}

// brief describes events as token@revision, eliding the middle of long
// runs.
func brief(events []raftlease.Event) string {
	const edge = 8
	var parts []string
	for i, ev := range events {
		switch {
		case len(events) > 2*edge && i == edge:
			parts = append(parts, fmt.Sprintf("...%d more...", len(events)-2*edge))
		case len(events) > 2*edge && i > edge && i < len(events)-edge:
		default:
			parts = append(parts, fmt.Sprintf("%d@%d", ev.Lease.Token, ev.Revision))
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}
