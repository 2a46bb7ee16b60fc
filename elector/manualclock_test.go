package elector_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/elector"
	"github.com/raftlease/raftlease/testutil"
)

// These tests drive a manual clock, outside synctest, to check that every
// deadline of the elector follows Options.Clock.

func manualOptions(clock raftlease.Clock, holder string) elector.Options {
	o := elector.Balanced()
	o.Name, o.Holder, o.Clock = "svc", holder, clock
	return o
}

func TestTryAcquireWithoutRunFencesOnManualClock(t *testing.T) {
	ctx := context.Background()
	clock := testutil.NewManualClock()
	store := newStore(t, clock)
	a, err := elector.New(store, manualOptions(clock, "a"))
	require.NoError(t, err)
	defer a.Close()
	b, err := elector.New(store, manualOptions(clock, "b"))
	require.NoError(t, err)
	defer b.Close()

	ok, err := a.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	token, ok := a.Token()
	require.True(t, ok)
	leaderCtx := a.LeaderContext()
	got, ok := elector.TokenFromContext(leaderCtx)
	require.True(t, ok)
	assert.Equal(t, token, got)

	ok, err = b.TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok, "a holds the lease")
	assert.Equal(t, "a", b.Stats().Current.Holder)

	// A second TryAcquire by the holder renews: the window restarts.
	window := a.Options().SafeWindow()
	clock.Advance(2 * time.Second)
	ok, err = a.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	again, _ := a.Token()
	assert.Equal(t, token, again, "same term, same token")

	clock.Advance(window - time.Nanosecond)
	assert.True(t, a.IsLeader())
	assert.NoError(t, leaderCtx.Err())
	clock.Advance(time.Nanosecond)
	// IsLeader follows the clock at once; the watchdog cancels the context
	// as soon as it runs.
	assert.False(t, a.IsLeader())
	_, ok = a.Token()
	assert.False(t, ok)
	require.Eventually(t, func() bool { return leaderCtx.Err() != nil }, 5*time.Second, time.Millisecond)
	assert.Error(t, a.LeaderContext().Err())

	// The store still holds a's lease a little longer; b cannot have it yet.
	ok, err = b.TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok)
	clock.Advance(a.Options().LeaseDuration - window)
	ok, err = b.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	bToken, _ := b.Token()
	assert.Greater(t, bToken, token)
}

func TestOperationTimeoutFollowsManualClock(t *testing.T) {
	clock := testutil.NewManualClock()
	store := newHangStore(newStore(t, clock))
	store.set("a", hangCtx)
	a, err := elector.New(store, manualOptions(clock, "a"))
	require.NoError(t, err)
	defer a.Close()

	type result struct {
		ok  bool
		err error
	}
	done := make(chan result, 1)
	base := clock.Timers()
	go func() {
		ok, err := a.TryAcquire(context.Background())
		done <- result{ok, err}
	}()
	require.True(t, clock.WaitForTimers(base+1, 5*time.Second), "operation timer armed")
	clock.Advance(a.Options().OperationTimeout - time.Nanosecond)
	select {
	case r := <-done:
		t.Fatalf("returned before the timeout: %+v", r)
	default:
	}
	clock.Advance(time.Nanosecond)
	r := <-done
	assert.False(t, r.ok)
	assert.True(t, raftlease.IsRetryable(r.err), "timeout is retryable: %v", r.err)
	assert.ErrorContains(t, r.err, "timed out")
}

func TestRunOnManualClock(t *testing.T) {
	clock := testutil.NewManualClock()
	store := newStore(t, clock)
	o := manualOptions(clock, "a")
	a, err := elector.New(store, o)
	require.NoError(t, err)
	require.NoError(t, a.Start())
	defer a.Close()
	require.Eventually(t, a.IsLeader, 5*time.Second, time.Millisecond)
	token, _ := a.Token()

	// Step the clock in small increments across several lease durations:
	// the loop keeps renewing on the manual clock's timers.
	for range 3 * int(o.LeaseDuration/(100*time.Millisecond)) {
		clock.Advance(100 * time.Millisecond)
		require.Eventually(t, func() bool {
			l, err := store.Get(context.Background(), "svc", raftlease.ReadOptions{})
			return err == nil && l.Remaining > o.LeaseDuration-o.RenewInterval-200*time.Millisecond
		}, 5*time.Second, time.Millisecond)
		require.True(t, a.IsLeader())
	}
	again, _ := a.Token()
	assert.Equal(t, token, again)
}
