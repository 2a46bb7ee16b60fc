package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/cluster"
	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/testutil/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// bbolt and hashicorp/raft's network transport leave no goroutines
		// behind after Close; these are the runtime's own.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestConformanceThroughFollower runs the Store conformance suite against a
// 3-node cluster, sending every operation to a follower.
func TestConformanceThroughFollower(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	// LAN timings: a spurious election under -race on a loaded machine
	// would pause consensus time and fail the suite's real-time checks.
	base := cluster.DefaultOptions()
	c := testutil.NewCluster(t, 3, testutil.ClusterOptions{Base: &base})
	storetest.Run(t, func(t *testing.T) storetest.Subject {
		return storetest.Subject{Store: c.Node(c.Follower())}
	})
	c.WaitConverged()
}

func TestFailoverKeepsLeasesAndTokensGrow(t *testing.T) {
	c := testutil.NewCluster(t, 3, testutil.ClusterOptions{})
	ctx := ctxTimeout(t, 60*time.Second)
	leader := c.Leader()
	follower := c.Follower()

	held, err := c.Node(follower).Acquire(ctx, raftlease.AcquireRequest{Name: "live", Holder: "h1", TTL: 10 * time.Second})
	require.NoError(t, err)
	before := c.Node(follower).LocalStatus()

	c.Kill(leader)
	newLeader := c.WaitForLeader()
	require.NotEqual(t, leader, newLeader)
	st := c.Node(newLeader).LocalStatus()
	require.Greater(t, st.Term, before.Term, "a new term began")

	// The live holder keeps its lease: same token, and it renews.
	got, err := c.Node(newLeader).Get(ctx, "live", raftlease.ReadOptions{})
	require.NoError(t, err)
	require.Equal(t, held.Token, got.Token)
	require.Greater(t, got.Remaining, 5*time.Second, "failover must not eat the lease")
	_, err = c.Node(newLeader).Renew(ctx, raftlease.RenewRequest{Name: "live", Holder: "h1", Token: held.Token})
	require.NoError(t, err)

	// A new acquisition gets a larger token than anything before the failover.
	other, err := c.Node(newLeader).Acquire(ctx, raftlease.AcquireRequest{Name: "other", Holder: "h2", TTL: time.Second})
	require.NoError(t, err)
	require.Greater(t, other.Token, held.Token)

	c.Restart(leader)
	c.WaitConverged()
}

// TestFailoverDoesNotResetLeases: a 3 s lease that nobody renews, through 5
// leader changes during its life, expires no earlier than 3 s after it was
// requested and no later than 3 s + the measured leaderless gaps + one tick
// interval after it was granted. etcd restarts the TTL at every change.
func TestFailoverDoesNotResetLeases(t *testing.T) {
	if testing.Short() {
		t.Skip("takes several seconds")
	}
	c := testutil.NewCluster(t, 3, testutil.ClusterOptions{})
	ctx := ctxTimeout(t, 60*time.Second)
	const ttl = 3 * time.Second

	sent := time.Now()
	l, err := c.Node(c.Leader()).Acquire(ctx, raftlease.AcquireRequest{Name: "orphan", Holder: "gone", TTL: ttl})
	require.NoError(t, err)
	granted := time.Now()

	var gaps time.Duration
	for i := range 5 {
		old := c.Leader()
		start := time.Now()
		require.NoError(t, c.Node(old).TransferLeadership(ctx), "transfer %d", i)
		next := c.WaitForNewLeader(old)
		gap := time.Since(start)
		gaps += gap
		require.NotEqual(t, old, next)
		t.Logf("leader change %d: n%d -> n%d, gap %v", i+1, old, next, gap)
		time.Sleep(250 * time.Millisecond) // let the lease age between changes (real time is the subject here)
	}

	var expiredAt time.Time
	for {
		_, err := c.Node(c.WaitForLeader()).Get(ctx, "orphan", raftlease.ReadOptions{})
		if errors.Is(err, raftlease.ErrNotFound) {
			expiredAt = time.Now()
			break
		}
		if err != nil && !raftlease.IsRetryable(err) {
			t.Fatal(err)
		}
		require.NoError(t, ctx.Err())
		time.Sleep(2 * time.Millisecond)
	}
	tick := cluster.LocalOptions().TickInterval
	lived := expiredAt.Sub(sent)
	bound := ttl + gaps + tick + 50*time.Millisecond // 50ms: polling and apply latency
	t.Logf("token %d lived %v (gaps %v, bound %v)", l.Token, lived, gaps, bound)
	require.GreaterOrEqual(t, lived, ttl, "expired early")
	require.LessOrEqual(t, expiredAt.Sub(granted), bound, "leader changes stretched the lease")
}

func TestMinorityRefusesMajorityServes(t *testing.T) {
	c := testutil.NewCluster(t, 3, testutil.ClusterOptions{})
	ctx := ctxTimeout(t, 60*time.Second)
	_, err := c.Node(c.Leader()).Acquire(ctx, raftlease.AcquireRequest{Name: "a", Holder: "h", TTL: 30 * time.Second})
	require.NoError(t, err)

	minority := c.Leader() // isolating the leader forces the harder case
	c.Isolate(minority)
	var majority int
	require.Eventually(t, func() bool {
		majority = c.Leader()
		return majority >= 0 && majority != minority
	}, 20*time.Second, 10*time.Millisecond, "majority elects a leader")

	opCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = c.Node(minority).Acquire(opCtx, raftlease.AcquireRequest{Name: "b", Holder: "h", TTL: time.Second})
	cancel()
	require.True(t, raftlease.IsRetryable(err), "minority write: %v", err)
	opCtx, cancel = context.WithTimeout(ctx, 2*time.Second)
	_, err = c.Node(minority).Get(opCtx, "a", raftlease.ReadOptions{})
	cancel()
	require.True(t, raftlease.IsRetryable(err), "minority linearizable read: %v", err)
	// A stale read is allowed to answer from the local replica.
	_, err = c.Node(minority).Get(ctx, "a", raftlease.ReadOptions{Stale: true})
	require.NoError(t, err)

	after, err := c.Node(majority).Acquire(ctx, raftlease.AcquireRequest{Name: "c", Holder: "h", TTL: 30 * time.Second})
	require.NoError(t, err)

	c.Heal()
	require.Eventually(t, func() bool {
		got, err := c.Node(minority).Get(ctx, "c", raftlease.ReadOptions{Stale: true})
		return err == nil && got.Token == after.Token
	}, 20*time.Second, 10*time.Millisecond, "minority catches up after heal")
	_, err = c.Node(minority).Get(opCtx, "b", raftlease.ReadOptions{Stale: true})
	require.ErrorIs(t, err, raftlease.ErrNotFound, "the refused write was never applied")
	c.WaitConverged()
}

func TestRestartSnapshotAndMembership(t *testing.T) {
	c := testutil.NewCluster(t, 3, testutil.ClusterOptions{Edit: func(i int, o *cluster.Options) {
		o.SnapshotThreshold = 16
		o.TrailingLogs = 8
		o.SnapshotInterval = 50 * time.Millisecond
	}})
	ctx := ctxTimeout(t, 60*time.Second)
	victim := c.Follower()
	c.Kill(victim)

	var tokens []uint64
	for i := range 100 {
		l, err := c.Node(c.Leader()).Acquire(ctx, raftlease.AcquireRequest{Name: fmt.Sprintf("k%03d", i), Holder: "h", TTL: time.Minute})
		require.NoError(t, err)
		tokens = append(tokens, l.Token)
	}
	for _, n := range c.Running() {
		require.NoError(t, n.Snapshot())
	}
	// The stopped node has fallen behind the truncated log: it must be
	// brought up to date by installing a snapshot.
	c.Restart(victim)
	c.WaitConverged()
	list, err := c.Node(victim).List(ctx, "k", raftlease.ReadOptions{Stale: true})
	require.NoError(t, err)
	require.Len(t, list.Leases, 100)

	// Add a fourth node, then remove it and an original one.
	o := cluster.LocalOptions()
	o.ID, o.DataDir, o.Faults = "n3", t.TempDir(), c.Faults
	extra, err := cluster.New(o)
	require.NoError(t, err)
	defer extra.Close()
	require.NoError(t, extra.Join(ctx, c.Node(c.Follower()).Addr(), false))
	require.Eventually(t, func() bool {
		l, err := extra.List(ctx, "k", raftlease.ReadOptions{Stale: true})
		return err == nil && len(l.Leases) == 100
	}, 20*time.Second, 10*time.Millisecond)
	members, err := c.Node(c.Leader()).Members()
	require.NoError(t, err)
	require.Len(t, members, 4)

	require.NoError(t, c.Node(c.Follower()).RemoveMember(ctx, "n3"))
	members, err = c.Node(c.Leader()).Members()
	require.NoError(t, err)
	require.Len(t, members, 3)

	// Tokens keep growing after all of this.
	l, err := c.Node(c.Leader()).Acquire(ctx, raftlease.AcquireRequest{Name: "after", Holder: "h", TTL: time.Minute})
	require.NoError(t, err)
	require.Greater(t, l.Token, tokens[len(tokens)-1])
}

func TestConcurrentAcquireExactlyOneWinsAcrossNodes(t *testing.T) {
	c := testutil.NewCluster(t, 3, testutil.ClusterOptions{})
	ctx := ctxTimeout(t, 30*time.Second)
	var wg sync.WaitGroup
	wins := make(chan string, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("h%d", i)
			_, err := c.Node(i%3).Acquire(ctx, raftlease.AcquireRequest{Name: "race", Holder: holder, TTL: time.Minute})
			if err == nil {
				wins <- holder
			} else if !errors.Is(err, raftlease.ErrLeaseHeld) {
				t.Errorf("acquire: %v", err)
			}
		}()
	}
	wg.Wait()
	close(wins)
	require.Len(t, wins, 1)
	c.WaitConverged()
}

func TestOptionsValidate(t *testing.T) {
	o := cluster.LocalOptions()
	err := o.Validate()
	require.Error(t, err, "ID and DataDir missing")
	require.Contains(t, err.Error(), "ID")
	require.Contains(t, err.Error(), "DataDir")
	o.ID, o.DataDir = "n1", t.TempDir()
	require.NoError(t, o.Validate())
	bad := o
	bad.LeaderLeaseTimeout = bad.HeartbeatTimeout * 2
	bad.MaxBatch = 0
	bad.OperationTimeout = bad.ElectionTimeout
	err = bad.Validate()
	for _, field := range []string{"LeaderLeaseTimeout", "MaxBatch", "OperationTimeout"} {
		require.Contains(t, err.Error(), field)
	}
	require.ErrorIs(t, err, raftlease.ErrInvalidArgument)
	_, err = cluster.New(bad)
	require.Error(t, err)
}
