package elector_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/elector"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Inside a synctest bubble, time is fake: the tests below run the Balanced
// profile (a 10 s lease) in microseconds of real time, deterministically.

func TestExactlyOneLeaderAmongFive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore(t, nil)
		g := newGroup(t, store, 5, nil)
		for range 40 {
			time.Sleep(time.Second)
			synctest.Wait()
			l := g.leader()
			lease, err := store.Get(t.Context(), "svc", raftlease.ReadOptions{})
			require.NoError(t, err)
			token, ok := l.Token()
			require.True(t, ok)
			assert.Equal(t, holder(l), lease.Holder)
			assert.Equal(t, token, lease.Token)
			// Every elector, leader or not, sees the same leader.
			for _, e := range g.electors {
				assert.Equal(t, lease.Holder, e.Stats().Current.Holder, "%s's view", holder(e))
			}
		}
		// One election, one term, for the whole run.
		require.Len(t, g.rec.all(), 1)
	})
}

func TestFailoverWithinWorstCase(t *testing.T) {
	for _, how := range []string{"holder hangs", "holder stops without release", "holder hangs, watch broken"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newHangStore(newStore(t, nil))
				var s raftlease.Store = store
				if how == "holder hangs, watch broken" {
					s = noWatchStore{store} // candidates learn only by polling
				}
				g := newGroup(t, s, 3, nil)
				time.Sleep(7 * time.Second) // a couple of renewals
				synctest.Wait()
				old := g.leader()
				opts := old.Options()
				if how == "holder stops without release" {
					require.NoError(t, old.Stop(t.Context()))
				} else {
					store.set(holder(old), hangCtx)
				}
				lastRenewal := store.last(holder(old))

				time.Sleep(opts.WorstCaseFailover() + time.Second)
				synctest.Wait()
				terms := g.rec.all()
				require.Len(t, terms, 2)
				first, second := terms[0], terms[1]
				require.Equal(t, holder(old), first.holder)
				require.NotEqual(t, holder(old), second.holder)
				took := second.start.Sub(lastRenewal)
				t.Logf("failover %v after the last renewal (worst case %v)", took, opts.WorstCaseFailover())
				assert.LessOrEqual(t, took, opts.WorstCaseFailover())
				assert.GreaterOrEqual(t, took, opts.LeaseDuration, "the store granted the lease before it expired")
				assert.True(t, first.end.Before(second.start), "terms overlap")
				assert.Greater(t, second.token, first.token)
				store.set(holder(old), serve)
			})
		})
	}
}

func TestLeaderContextEndsBeforeStoreDeadline(t *testing.T) {
	for _, mode := range []hangMode{hangCtx, hangAlways} {
		name := map[hangMode]string{hangCtx: "store honours ctx", hangAlways: "store ignores ctx"}[mode]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newHangStore(newStore(t, nil))
				g := newGroup(t, store, 2, nil)
				t.Cleanup(store.release) // runs before the electors close
				time.Sleep(4 * time.Second)
				synctest.Wait()
				old := g.leader()
				changes := old.Subscribe(t.Context())
				leaderCtx := old.LeaderContext()
				require.NoError(t, leaderCtx.Err())

				// The store's own deadline for the lease, on the same fake clock.
				lease, err := store.Get(t.Context(), "svc", raftlease.ReadOptions{})
				require.NoError(t, err)
				storeDeadline := time.Now().Add(lease.Remaining)
				store.set(holder(old), mode)

				<-leaderCtx.Done()
				cancelledAt := time.Now()
				assert.False(t, old.IsLeader())
				assert.True(t, cancelledAt.Before(storeDeadline), "leader ctx cancelled at %v, store deadline %v", cancelledAt, storeDeadline)
				opts := old.Options()
				assert.Equal(t, store.last(holder(old)).Add(opts.SafeWindow()), cancelledAt)
				c := <-changes
				assert.True(t, c.Lost)
				assert.Equal(t, "safe-until passed", c.Reason)

				time.Sleep(opts.WorstCaseFailover())
				synctest.Wait()
				terms := g.rec.all()
				require.Len(t, terms, 2)
				assert.False(t, terms[1].start.Before(storeDeadline), "successor started before the store deadline")
			})
		})
	}
}

func TestTokensStrictlyIncrease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newHangStore(newStore(t, nil))
		g := newGroup(t, store, 3, nil)
		time.Sleep(time.Second)
		var fence elector.Fence
		var last uint64
		for i := range 12 {
			l := g.leader()
			token, _ := l.Token()
			require.Greater(t, token, last, "handover %d", i)
			require.NoError(t, fence.Check("row", token))
			last = token
			switch i % 3 {
			case 0: // step down
				require.NoError(t, l.Release(t.Context()))
			case 1: // cut off: fences itself, lease expires
				store.set(holder(l), hangCtx)
			case 2: // crash without release, then come back
				store.set(holder(l), serve)
				require.NoError(t, l.Stop(t.Context()))
			}
			time.Sleep(l.Options().WorstCaseFailover() + time.Second)
			synctest.Wait()
			for _, e := range g.electors {
				store.set(holder(e), serve)
			}
			if i%3 == 2 {
				g.add(holder(l)+"'", nil)
			}
		}
		terms := g.rec.all()
		require.GreaterOrEqual(t, len(terms), 12)
		for i := 1; i < len(terms); i++ {
			assert.Greater(t, terms[i].token, terms[i-1].token)
			assert.False(t, terms[i].start.Before(terms[i-1].end), "terms %d and %d overlap", i-1, i)
		}
	})
}

func TestReleaseHandsOverPromptly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore(t, nil)
		g := newGroup(t, store, 3, nil)
		time.Sleep(time.Second)
		old := g.leader()
		oldToken, _ := old.Token()
		releasedAt := time.Now()
		require.NoError(t, old.Release(t.Context()))
		assert.False(t, old.IsLeader())
		synctest.Wait()
		next := g.leader()
		assert.NotSame(t, old, next)
		terms := g.rec.all()
		require.Len(t, terms, 2)
		assert.Equal(t, releasedAt, terms[1].start, "handover took fake time")
		newToken, _ := next.Token()
		assert.Greater(t, newToken, oldToken)
		// Nothing left to release.
		require.NoError(t, old.Release(t.Context()))
	})
}

func TestReleaseOnStop(t *testing.T) {
	for _, release := range []bool{true, false} {
		t.Run(map[bool]string{true: "release", false: "keep"}[release], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newStore(t, nil)
				g := newGroup(t, store, 1, func(_ int, o *elector.Options) { o.ReleaseOnStop = release })
				time.Sleep(time.Second)
				l := g.leader()
				require.NoError(t, l.Stop(t.Context()))
				require.NoError(t, l.Stop(t.Context()), "Stop is idempotent")
				require.NoError(t, l.Close())
				assert.False(t, l.IsLeader())
				assert.Error(t, l.LeaderContext().Err())
				_, err := store.Get(t.Context(), "svc", raftlease.ReadOptions{})
				if release {
					assert.ErrorIs(t, err, raftlease.ErrNotFound)
				} else {
					assert.NoError(t, err, "the lease stays until it expires")
				}
			})
		})
	}
}

func TestProclaimAndLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore(t, nil)
		g := newGroup(t, store, 3, func(i int, o *elector.Options) {
			o.Metadata = map[string]string{"addr": o.Holder + ":1"}
		})
		time.Sleep(time.Second)
		l := g.leader()
		var observer *elector.Elector
		for _, e := range g.electors {
			if e != l {
				observer = e
			}
		}
		got, err := observer.Leader(t.Context())
		require.NoError(t, err)
		assert.Equal(t, holder(l), got.Holder)
		assert.Equal(t, holder(l)+":1", got.Metadata["addr"])

		changes := observer.Subscribe(t.Context())
		require.NoError(t, l.Proclaim(t.Context(), map[string]string{"addr": "moved:2"}))
		got, err = observer.Leader(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "moved:2", got.Metadata["addr"])
		c := <-changes
		assert.Equal(t, "moved:2", c.Current.Metadata["addr"])
		assert.Equal(t, holder(l), c.Current.Holder)
		assert.False(t, c.Gained || c.Lost)

		// Metadata survives renewals, and the next term of the same
		// elector advertises it too.
		time.Sleep(10 * time.Second)
		got, err = observer.Leader(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "moved:2", got.Metadata["addr"])

		err = observer.Proclaim(t.Context(), map[string]string{"addr": "x"})
		assert.ErrorIs(t, err, raftlease.ErrNotHolder)
		err = l.Proclaim(t.Context(), map[string]string{"bad key": "x"})
		assert.ErrorIs(t, err, raftlease.ErrInvalidArgument)

		require.NoError(t, l.Release(t.Context()))
		synctest.Wait()
		got, err = store.Get(t.Context(), "svc", raftlease.ReadOptions{})
		require.NoError(t, err, "another took over")
		assert.NotEqual(t, holder(l), got.Holder)
	})
}

func TestLeaderVacant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore(t, nil)
		o := elector.Balanced()
		o.Name, o.Holder = "svc", "a"
		e, err := elector.New(store, o)
		require.NoError(t, err)
		defer e.Close()
		_, err = e.Leader(t.Context())
		assert.ErrorIs(t, err, raftlease.ErrNotFound)
	})
}

func TestChangeEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore(t, nil)
		g := &group{t: t, store: store, rec: &recorder{}}
		a := g.add("a", nil)
		time.Sleep(time.Second)
		require.True(t, a.IsLeader())
		b := g.add("b", nil)
		time.Sleep(time.Second)
		aChanges := a.Subscribe(t.Context())
		bCtx, bCancel := context.WithCancel(t.Context())
		bChanges := b.Subscribe(bCtx)

		require.NoError(t, a.Release(t.Context()))
		synctest.Wait()
		require.True(t, b.IsLeader())

		c := <-aChanges
		assert.True(t, c.Lost)
		assert.Equal(t, "a", c.Previous.Holder)
		assert.Equal(t, "released", c.Reason)
		c = <-aChanges
		assert.False(t, c.Gained || c.Lost)
		assert.Equal(t, "b", c.Current.Holder, "a observes b")

		// b first learnt who leads when it campaigned, before it subscribed:
		// it now sees the vacancy, then its own election.
		c = <-bChanges
		assert.True(t, c.Current.Vacant())
		assert.Equal(t, "a", c.Previous.Holder)
		assert.Equal(t, "released", c.Reason)
		c = <-bChanges
		assert.True(t, c.Gained)
		assert.Equal(t, "b", c.Current.Holder)
		assert.Equal(t, time.Now(), c.At)

		// The channel closes when the subscriber's ctx ends …
		bCancel()
		synctest.Wait()
		_, open := <-bChanges
		assert.False(t, open)
		// … or when the elector stops, after the final Lost change.
		bChanges = b.Subscribe(t.Context())
		require.NoError(t, b.Close())
		c = <-bChanges
		assert.True(t, c.Lost)
		assert.Equal(t, "stopped", c.Reason)
		_, open = <-bChanges
		assert.False(t, open)
		_, open = <-b.Subscribe(t.Context())
		assert.False(t, open, "Subscribe after Stop")
	})
}

func TestSlowSubscriberDropsOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore(t, nil)
		g := &group{t: t, store: store, rec: &recorder{}}
		l := g.add("a", nil)
		time.Sleep(time.Second)
		require.True(t, l.IsLeader())
		changes := l.Subscribe(t.Context())
		const n = elector.SubscriberBuffer + 10
		for i := range n {
			require.NoError(t, l.Proclaim(t.Context(), map[string]string{"i": strconv.Itoa(i)}))
		}
		var got []elector.Change
		for range elector.SubscriberBuffer {
			got = append(got, <-changes)
		}
		select {
		case c := <-changes:
			t.Fatalf("more than SubscriberBuffer changes queued: %+v", c)
		default:
		}
		// The newest survive; the last one counts every dropped change.
		assert.Equal(t, uint64(n-elector.SubscriberBuffer), got[len(got)-1].Missed)
		assert.Equal(t, strconv.Itoa(n-1), got[len(got)-1].Current.Metadata["i"])
		assert.Equal(t, strconv.Itoa(n-elector.SubscriberBuffer), got[0].Current.Metadata["i"])
	})
}

func TestStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore(t, nil)
		g := newGroup(t, store, 2, nil)
		time.Sleep(time.Second)
		for range 3 {
			require.NoError(t, g.leader().Release(t.Context()))
			synctest.Wait()
			time.Sleep(time.Minute)
		}
		// Four terms: the first election and three handovers, whichever
		// elector looks, whether or not it saw the vacancies in between.
		for _, e := range g.electors {
			st := e.Stats()
			assert.Equal(t, 4, st.ChangesLast10m, holder(e))
			assert.Equal(t, 4, st.ChangesLastHour, holder(e))
			assert.Equal(t, time.Now().Add(-time.Minute), st.LastChange)
		}
		time.Sleep(10 * time.Minute)
		st := g.electors[0].Stats()
		assert.Equal(t, 0, st.ChangesLast10m)
		assert.Equal(t, 4, st.ChangesLastHour)
		time.Sleep(time.Hour)
		st = g.electors[0].Stats()
		assert.Equal(t, 0, st.ChangesLastHour)
		assert.False(t, st.LastChange.IsZero())
	})
}

func TestOnDemotedFollowsOnElected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore(t, nil)
		var calls []string
		o := elector.Balanced()
		o.Name, o.Holder = "svc", "a"
		o.OnElected = func(ctx context.Context) {
			calls = append(calls, "elected")
			<-ctx.Done()
			time.Sleep(time.Second) // winding down
			calls = append(calls, "work done")
		}
		o.OnDemoted = func() { calls = append(calls, "demoted") }
		e, err := elector.New(store, o)
		require.NoError(t, err)
		require.NoError(t, e.Start())
		time.Sleep(time.Second)
		require.NoError(t, e.Release(t.Context()))
		time.Sleep(o.LeaseDuration + time.Second) // cooldown, then elected again
		require.True(t, e.IsLeader())
		require.NoError(t, e.Close())
		assert.Equal(t, []string{"elected", "work done", "demoted", "elected", "work done", "demoted"}, calls)
	})
}

func TestRunLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore(t, nil)
		o := elector.Balanced()
		o.Name, o.Holder = "svc", "a"
		o.ReleaseOnStop = true
		e, err := elector.New(store, o)
		require.NoError(t, err)

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		time.Sleep(time.Second)
		require.True(t, e.IsLeader())
		assert.ErrorContains(t, e.Run(t.Context()), "already running")
		assert.ErrorContains(t, e.Start(), "already running")
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
		assert.False(t, e.IsLeader())
		_, err = store.Get(t.Context(), "svc", raftlease.ReadOptions{})
		assert.ErrorIs(t, err, raftlease.ErrNotFound, "released when Run returned")

		// Run again, then Stop.
		go func() { done <- e.Run(t.Context()) }()
		time.Sleep(time.Second)
		require.True(t, e.IsLeader())
		require.NoError(t, e.Stop(t.Context()))
		assert.ErrorIs(t, <-done, raftlease.ErrClosed)
		assert.ErrorIs(t, e.Run(t.Context()), raftlease.ErrClosed)
		assert.ErrorIs(t, e.Start(), raftlease.ErrClosed)
		ok, err := e.TryAcquire(t.Context())
		assert.False(t, ok)
		assert.ErrorIs(t, err, raftlease.ErrClosed)
	})
}

func TestStoreClosedEndsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore(t, nil)
		o := elector.Balanced()
		o.Name, o.Holder = "svc", "a"
		e, err := elector.New(store, o)
		require.NoError(t, err)
		require.NoError(t, e.Start())
		time.Sleep(time.Second)
		require.True(t, e.IsLeader())
		require.NoError(t, store.Close())
		time.Sleep(o.RenewInterval)
		assert.False(t, e.IsLeader())
		assert.ErrorIs(t, e.Close(), raftlease.ErrClosed, "Stop reports why Run ended")
	})
}

func TestStopWaitsForLeaderWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore(t, nil)
		o := elector.Balanced()
		o.Name, o.Holder = "svc", "a"
		o.ReleaseOnStop = true
		finished := false
		o.OnElected = func(ctx context.Context) {
			<-ctx.Done()
			time.Sleep(3 * time.Second)
			finished = true
		}
		e, err := elector.New(store, o)
		require.NoError(t, err)
		require.NoError(t, e.Start())
		time.Sleep(time.Second)

		short, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		assert.ErrorIs(t, e.Stop(short), context.DeadlineExceeded)
		_, err = store.Get(t.Context(), "svc", raftlease.ReadOptions{})
		assert.NoError(t, err, "not released while leader work runs")
		require.NoError(t, e.Stop(t.Context()))
		assert.True(t, finished)
		_, err = store.Get(t.Context(), "svc", raftlease.ReadOptions{})
		assert.ErrorIs(t, err, raftlease.ErrNotFound)
	})
}

func TestNewRefusesBadInput(t *testing.T) {
	_, err := elector.New(nil, elector.Options{})
	require.Error(t, err)
	assert.ErrorIs(t, err, raftlease.ErrInvalidArgument)
	for _, field := range []string{"store", "Name", "Holder", "LeaseDuration"} {
		assert.ErrorContains(t, err, field+":")
	}
}

func TestWatchFailureFallsBackToPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &noWatchStore{Store: newStore(t, nil)}
		g := newGroup(t, store, 2, nil)
		time.Sleep(time.Second)
		l := g.leader()
		require.NoError(t, l.Release(t.Context()))
		// Without the watch, the other elector learns of the release at its
		// next poll, which it times for the lease's expiry.
		time.Sleep(l.Options().WorstCaseFailover())
		synctest.Wait()
		next := g.leader()
		assert.NotSame(t, l, next)
	})
}

// noWatchStore is a store whose Watch always fails.
type noWatchStore struct{ raftlease.Store }

func (noWatchStore) Watch(context.Context, raftlease.WatchRequest) (<-chan raftlease.Event, error) {
	return nil, &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: errors.New("no watch here")}
}
