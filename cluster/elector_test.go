package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/elector"
	"github.com/raftlease/raftlease/testutil"
)

// TestElectorOnEmbeddedCluster runs one elector per node of an embedded
// 3-node cluster, each talking only to its own node (the embedded mode):
// exactly one leads; killing the holder's node hands leadership to another
// participant under a larger token, and never to two at once.
func TestElectorOnEmbeddedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster and waits for a lease to expire")
	}
	c := testutil.NewCluster(t, 3, testutil.ClusterOptions{})
	ctx := ctxTimeout(t, 60*time.Second)

	electors := make([]*elector.Elector, c.Size())
	var mu sync.Mutex
	leading := map[string]uint64{} // holder -> token, while its OnElected runs
	overlap := false
	for i := range electors {
		opts := elector.FastFailover()
		opts.Name = "scheduler"
		opts.Holder = c.ID(i)
		opts.Metadata = map[string]string{"node": c.ID(i)}
		opts.OnElected = func(ctx context.Context) {
			mu.Lock()
			if len(leading) > 0 {
				overlap = true
			}
			token, _ := elector.TokenFromContext(ctx)
			leading[opts.Holder] = token
			mu.Unlock()
			<-ctx.Done()
			mu.Lock()
			delete(leading, opts.Holder)
			mu.Unlock()
		}
		e, err := elector.New(c.Node(i), opts)
		require.NoError(t, err)
		require.NoError(t, e.Start())
		electors[i] = e
		t.Cleanup(func() { _ = e.Stop(context.Background()) })
	}

	// leaderIndex waits for exactly one elector to lead and returns it.
	leaderIndex := func(skip int) int {
		var idx int
		require.Eventually(t, func() bool {
			idx = -1
			for i, e := range electors {
				if i == skip || !e.IsLeader() {
					continue
				}
				if idx >= 0 {
					return false
				}
				idx = i
			}
			return idx >= 0
		}, 30*time.Second, 5*time.Millisecond, "exactly one elector leads")
		return idx
	}
	first := leaderIndex(-1)
	firstToken, ok := electors[first].Token()
	require.True(t, ok)
	for _, e := range electors {
		require.Eventually(t, func() bool {
			return e.Stats().Current.Holder == c.ID(first)
		}, 10*time.Second, 5*time.Millisecond, "every participant sees the same leader")
	}
	lease, err := electors[(first+1)%3].Leader(ctx)
	require.NoError(t, err)
	require.Equal(t, c.ID(first), lease.Holder)
	require.Equal(t, firstToken, lease.Token)
	require.Equal(t, c.ID(first), lease.Metadata["node"])

	// Kill the holder's node. Its elector loses the store and stops leading
	// at once (store closed) or at its holder-side deadline at the latest.
	c.Kill(first)
	require.Eventually(t, func() bool { return !electors[first].IsLeader() }, 10*time.Second, 5*time.Millisecond)
	c.WaitForLeader()
	second := leaderIndex(first)
	secondToken, ok := electors[second].Token()
	require.True(t, ok)
	require.Greater(t, secondToken, firstToken, "the new holder's token is larger")
	t.Logf("n%d led with token %d; after its node died n%d leads with token %d", first, firstToken, second, secondToken)

	mu.Lock()
	require.False(t, overlap, "two OnElected ran at once")
	mu.Unlock()
}
