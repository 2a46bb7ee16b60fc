package memstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/memstore"
	"github.com/raftlease/raftlease/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t *testing.T) (*memstore.Store, *testutil.ManualClock) {
	t.Helper()
	clock := testutil.NewManualClock()
	s, err := memstore.New(memstore.Options{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, clock
}

func TestExpiryLoopEmitsExpiredEvent(t *testing.T) {
	s, clock := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := s.Watch(ctx, raftlease.WatchRequest{Name: "job"})
	require.NoError(t, err)

	l, err := s.Acquire(ctx, raftlease.AcquireRequest{Name: "job", Holder: "a", TTL: time.Second})
	require.NoError(t, err)
	ev := <-events
	require.Equal(t, raftlease.EventAcquired, ev.Type)

	// The loop arms a timer for the deadline; just short of it nothing goes.
	require.True(t, clock.WaitForTimers(1, 5*time.Second))
	clock.Advance(time.Second - time.Millisecond)
	_, err = s.Get(ctx, "job", raftlease.ReadOptions{})
	require.NoError(t, err)
	select {
	case ev := <-events:
		t.Fatalf("unexpected event before the deadline: %+v", ev)
	default:
	}

	clock.Advance(time.Millisecond)
	select {
	case ev := <-events:
		require.Equal(t, raftlease.EventExpired, ev.Type)
		require.Equal(t, l.Token, ev.Lease.Token)
		require.Greater(t, ev.Revision, l.Revision)
	case <-time.After(10 * time.Second):
		t.Fatal("no expired event after the deadline")
	}
	_, err = s.Get(ctx, "job", raftlease.ReadOptions{})
	require.ErrorIs(t, err, raftlease.ErrNotFound)
}

func TestRenewMovesExpiryTimer(t *testing.T) {
	s, clock := newStore(t)
	ctx := context.Background()
	l, err := s.Acquire(ctx, raftlease.AcquireRequest{Name: "job", Holder: "a", TTL: time.Second})
	require.NoError(t, err)
	clock.Advance(900 * time.Millisecond)
	_, err = s.Renew(ctx, raftlease.RenewRequest{Name: "job", Holder: "a", Token: l.Token})
	require.NoError(t, err)
	clock.Advance(900 * time.Millisecond) // past the first deadline, not the renewed one
	got, err := s.Get(ctx, "job", raftlease.ReadOptions{})
	require.NoError(t, err)
	require.Equal(t, 100*time.Millisecond, got.Remaining)
}

func TestInvalidRequestUsesNoRevision(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	before := s.Revision()
	_, err := s.Acquire(ctx, raftlease.AcquireRequest{Name: "", Holder: "a", TTL: time.Second})
	require.ErrorIs(t, err, raftlease.ErrInvalidArgument)
	_, err = s.Acquire(ctx, raftlease.AcquireRequest{Name: "x", Holder: "a", TTL: time.Millisecond})
	require.ErrorIs(t, err, raftlease.ErrInvalidArgument)
	require.Equal(t, before, s.Revision())
}

func TestCancelledContextIsNotApplied(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Acquire(ctx, raftlease.AcquireRequest{Name: "x", Holder: "a", TTL: time.Second})
	require.True(t, raftlease.IsRetryable(err))
	require.Equal(t, raftlease.OutcomeNotApplied, raftlease.OutcomeOf(err))
	_, err = s.Get(context.Background(), "x", raftlease.ReadOptions{})
	require.ErrorIs(t, err, raftlease.ErrNotFound)
}

func TestClosedStoreRefuses(t *testing.T) {
	clock := testutil.NewManualClock()
	s, err := memstore.New(memstore.Options{Clock: clock})
	require.NoError(t, err)
	ctx := context.Background()
	events, err := s.Watch(ctx, raftlease.WatchRequest{Prefix: ""})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err = s.Acquire(ctx, raftlease.AcquireRequest{Name: "x", Holder: "a", TTL: time.Second})
	require.True(t, errors.Is(err, raftlease.ErrClosed))
	_, err = s.Get(ctx, "x", raftlease.ReadOptions{})
	require.ErrorIs(t, err, raftlease.ErrClosed)
	_, open := <-events
	require.False(t, open, "watch channels close with the store")
}

func TestOptionsValidate(t *testing.T) {
	_, err := memstore.New(memstore.Options{WatchBuffer: -1})
	require.ErrorIs(t, err, raftlease.ErrInvalidArgument)
}
