package elector_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/elector"
	"github.com/raftlease/raftlease/testutil"
)

func TestSafeUntilFollowsRenewals(t *testing.T) {
	ctx := context.Background()
	clock := testutil.NewManualClock()
	store := newStore(t, clock)
	a, err := elector.New(store, manualOptions(clock, "a"))
	require.NoError(t, err)
	defer a.Close()

	_, _, ok := a.SafeUntil()
	require.False(t, ok, "not leader yet")

	sent := clock.Now()
	ok, err = a.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	window := a.Options().SafeWindow()
	until, token, ok := a.SafeUntil()
	require.True(t, ok)
	got, _ := a.Token()
	assert.Equal(t, got, token)
	assert.Equal(t, sent.Add(window), until)

	// A renewal moves it.
	clock.Advance(2 * time.Second)
	sent = clock.Now()
	ok, err = a.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	until, _, ok = a.SafeUntil()
	require.True(t, ok)
	assert.Equal(t, sent.Add(window), until)

	// At the deadline the term is over, and so is SafeUntil.
	clock.Advance(window)
	_, _, ok = a.SafeUntil()
	assert.False(t, ok)
	<-a.LeaderContext().Done()
}
