package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/cluster"
	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/transport"
)

func TestStatusNamesLeaderAndMembers(t *testing.T) {
	c := testutil.NewCluster(t, 3, testutil.ClusterOptions{Edit: func(i int, o *cluster.Options) {
		o.APIAddr = fmt.Sprintf("127.0.0.1:%d", 17000+i) // informational only
	}})
	ctx := ctxTimeout(t, 30*time.Second)
	leader := c.Leader()
	st, err := c.Node(c.Follower()).Status(ctx)
	require.NoError(t, err)
	require.Equal(t, "Follower", st.State)
	require.False(t, st.Serving)
	require.NotNil(t, st.Leader)
	require.Equal(t, c.ID(leader), st.Leader.ID)
	require.Equal(t, fmt.Sprintf("127.0.0.1:%d", 17000+leader), st.Leader.HTTPAddr, "learned from the leader")
	require.Len(t, st.Members, 3)
	for i, m := range st.Members {
		require.Equal(t, c.ID(i), m.ID, "members sorted by id")
		require.True(t, m.Voter)
		require.Equal(t, c.Node(i).Addr(), m.RaftAddr)
		require.Equal(t, fmt.Sprintf("127.0.0.1:%d", 17000+i), m.HTTPAddr)
	}
	require.Positive(t, st.Epochs, "the leader's epoch was applied here")
	require.Positive(t, st.WorstCaseFailoverDelayMs)

	lst, err := c.Node(leader).Status(ctx)
	require.NoError(t, err)
	require.Equal(t, "Leader", lst.State)
	require.True(t, lst.Serving)
}

func TestReadyFollowsQuorum(t *testing.T) {
	c := testutil.NewCluster(t, 3, testutil.ClusterOptions{})
	ctx := ctxTimeout(t, 30*time.Second)
	for _, n := range c.Running() {
		require.Eventually(t, func() bool { return n.Ready(ctx) == nil }, 10*time.Second, 5*time.Millisecond, "%s ready", n.ID())
	}
	minority := c.Follower()
	c.Isolate(minority)
	require.Eventually(t, func() bool {
		rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		err := c.Node(minority).Ready(rctx)
		return err != nil && raftlease.IsRetryable(err)
	}, 10*time.Second, 10*time.Millisecond, "a cut-off node is not ready")
	require.NoError(t, c.Node(c.Leader()).Ready(ctx), "the majority stays ready")
	c.Heal()
	require.Eventually(t, func() bool { return c.Node(minority).Ready(ctx) == nil }, 20*time.Second, 10*time.Millisecond)
}

// TestSnapshotSaveAndRestoreNeverLowersTokens saves a snapshot through a
// follower (it holds every acknowledged write), restores it into a fresh
// cluster, and checks holders, remaining time and that every token issued
// afterwards is above every token the first cluster issued.
func TestSnapshotSaveAndRestoreNeverLowersTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two clusters")
	}
	src := testutil.NewCluster(t, 3, testutil.ClusterOptions{})
	ctx := ctxTimeout(t, 60*time.Second)
	var last uint64
	for i := range 5 {
		l, err := src.Node(src.Leader()).Acquire(ctx, raftlease.AcquireRequest{
			Name: fmt.Sprintf("job/%d", i), Holder: fmt.Sprintf("h%d", i), TTL: time.Minute,
			Metadata: map[string]string{"i": fmt.Sprint(i)},
		})
		require.NoError(t, err)
		last = l.Token
	}
	// Churn a name so the highest token belongs to no live lease.
	for range 3 {
		l, err := src.Node(src.Leader()).Acquire(ctx, raftlease.AcquireRequest{Name: "churn", Holder: "x", TTL: time.Minute})
		require.NoError(t, err)
		require.NoError(t, src.Node(src.Leader()).Release(ctx, raftlease.ReleaseRequest{Name: "churn", Holder: "x", Token: l.Token}))
		last = l.Token
	}
	var buf bytes.Buffer
	n, err := src.Node(src.Follower()).SaveSnapshot(ctx, &buf)
	require.NoError(t, err)
	require.Equal(t, int64(buf.Len()), n)

	dst := testutil.NewCluster(t, 3, testutil.ClusterOptions{})
	// Someone already holds job/0 in the new cluster: restore must skip it.
	_, err = dst.Node(dst.Leader()).Acquire(ctx, raftlease.AcquireRequest{Name: "job/0", Holder: "other", TTL: time.Minute})
	require.NoError(t, err)
	report, err := dst.Node(dst.Follower()).RestoreSnapshot(ctx, bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Equal(t, 4, report.Imported)
	require.Equal(t, []transport.SkippedJSON{{Name: "job/0", Reason: "held by other now (token 1)"}}, report.Skipped)
	require.Equal(t, last, report.TokenFloor)

	for i := 1; i < 5; i++ {
		l, err := dst.Node(dst.Follower()).Get(ctx, fmt.Sprintf("job/%d", i), raftlease.ReadOptions{})
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("h%d", i), l.Holder)
		require.Greater(t, l.Token, last, "restored tokens are above every token the source issued")
		require.Equal(t, fmt.Sprint(i), l.Metadata["i"])
		require.LessOrEqual(t, l.Remaining, time.Minute)
		require.Greater(t, l.Remaining, 30*time.Second)
	}
	fresh, err := dst.Node(dst.Leader()).Acquire(ctx, raftlease.AcquireRequest{Name: "churn", Holder: "y", TTL: time.Minute})
	require.NoError(t, err)
	require.Greater(t, fresh.Token, last)

	_, err = dst.Node(0).RestoreSnapshot(ctx, bytes.NewReader([]byte("not a snapshot")))
	require.ErrorIs(t, err, raftlease.ErrInvalidArgument)
}

// An empty snapshot with a high token floor still raises the floor.
func TestRestoreRaisesFloorWithoutLeases(t *testing.T) {
	src := testutil.NewCluster(t, 1, testutil.ClusterOptions{})
	ctx := ctxTimeout(t, 30*time.Second)
	for range 4 {
		l, err := src.Node(0).Acquire(ctx, raftlease.AcquireRequest{Name: "a", Holder: "x", TTL: time.Minute})
		require.NoError(t, err)
		require.NoError(t, src.Node(0).Release(ctx, raftlease.ReleaseRequest{Name: "a", Holder: "x", Token: l.Token}))
	}
	var buf bytes.Buffer
	_, err := src.Node(0).SaveSnapshot(ctx, &buf)
	require.NoError(t, err)
	dst := testutil.NewCluster(t, 1, testutil.ClusterOptions{})
	report, err := dst.Node(0).RestoreSnapshot(ctx, &buf)
	require.NoError(t, err)
	require.Zero(t, report.Imported)
	require.Equal(t, uint64(4), report.TokenFloor)
	l, err := dst.Node(0).Acquire(ctx, raftlease.AcquireRequest{Name: "a", Holder: "z", TTL: time.Minute})
	require.NoError(t, err)
	require.Greater(t, l.Token, uint64(4))
}

func TestMembershipErrors(t *testing.T) {
	c := testutil.NewCluster(t, 1, testutil.ClusterOptions{})
	ctx := ctxTimeout(t, 30*time.Second)
	require.ErrorIs(t, c.Node(0).RemoveMember(ctx, "nobody"), raftlease.ErrNotFound)
	err := c.Node(0).AddMember(ctx, transport.MemberJSON{ID: "n9", RaftAddr: "no-port", Voter: true})
	require.ErrorIs(t, err, raftlease.ErrInvalidArgument)
	require.Contains(t, err.Error(), "raft_addr")
	err = c.Node(0).AddMember(ctx, transport.MemberJSON{ID: "", RaftAddr: "127.0.0.1:1", Voter: true})
	require.ErrorIs(t, err, raftlease.ErrInvalidArgument)
	members, err := c.Node(0).Members()
	require.NoError(t, err)
	require.Len(t, members, 1, "refused changes changed nothing")
}
