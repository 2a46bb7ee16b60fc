package main_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/transport"
)

// TestFailoverKeepsLeases: three agents; a lease acquired through a
// follower survives kill -9 of the Raft leader, keeps its token through
// renewals, and a new holder after release gets a larger token; the killed
// node restarts from its data dir, rejoins and catches up.
func TestFailoverKeepsLeases(t *testing.T) {
	c := testutil.StartLeasenodes(t, 3, testutil.LeasenodeOptions{})
	ctx := ctxTimeout(t, 90*time.Second)
	leader := c.WaitForLeader(ctx)
	follower := (leader + 1) % 3
	t.Logf("leader %s, acquiring through follower %s", c.ID(leader), c.ID(follower))

	var first transport.LeaseJSON
	code, body := api(t, c, follower, http.MethodPost, leasePath("jobs/nightly")+"/acquire",
		map[string]any{"holder": "worker-1", "ttl": "60s", "metadata": map[string]string{"addr": "10.0.0.1:80"}}, &first)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.GreaterOrEqual(t, first.Token, uint64(1))
	assert.Equal(t, "worker-1", first.Holder)
	assert.Equal(t, int64(60000), first.TTLMs)

	// Another holder is refused, with the current lease in the error.
	code, body = api(t, c, follower, http.MethodPost, leasePath("jobs/nightly")+"/acquire", acquireBody("worker-2", "10s"), nil)
	require.Equal(t, http.StatusConflict, code)
	assert.Equal(t, transport.CodeLeaseHeld, errorCode(t, body))

	// kill -9 the Raft leader.
	c.Kill(leader)
	newLeader := c.WaitForNewLeader(ctx, leader)
	t.Logf("killed %s; new leader %s", c.ID(leader), c.ID(newLeader))
	survivor := 3 - leader - newLeader // the third node

	// The lease survived, and renewals keep working with the same token.
	for _, i := range []int{newLeader, survivor} {
		var got transport.LeaseJSON
		code, body = api(t, c, i, http.MethodGet, leasePath("jobs/nightly"), nil, &got)
		require.Equal(t, http.StatusOK, code, "%s", body)
		assert.Equal(t, first.Token, got.Token)
		assert.Equal(t, "worker-1", got.Holder)
		assert.Equal(t, "10.0.0.1:80", got.Metadata["addr"])
		assert.Greater(t, got.RemainingMs, int64(50000), "a failover never resets or shortens the lease")
	}
	revision := first.Revision
	for k := range 3 {
		var renewed transport.LeaseJSON
		code, body = api(t, c, []int{survivor, newLeader}[k%2], http.MethodPost, leasePath("jobs/nightly")+"/renew",
			map[string]any{"holder": "worker-1", "token": first.Token, "ttl": "30s"}, &renewed)
		require.Equal(t, http.StatusOK, code, "%s", body)
		assert.Equal(t, first.Token, renewed.Token)
		assert.Equal(t, int64(30000), renewed.TTLMs)
		assert.Greater(t, renewed.Revision, revision)
		revision = renewed.Revision
	}

	// Release; a new holder gets a larger token.
	code, body = api(t, c, survivor, http.MethodPost, leasePath("jobs/nightly")+"/release",
		map[string]any{"holder": "worker-1", "token": first.Token}, nil)
	require.Equal(t, http.StatusOK, code, "%s", body)
	var second transport.LeaseJSON
	code, body = api(t, c, survivor, http.MethodPost, leasePath("jobs/nightly")+"/acquire", acquireBody("worker-2", "60s"), &second)
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.Greater(t, second.Token, first.Token)

	// The killed node restarts from its data dir (it does not join again),
	// rejoins and catches up.
	c.Restart(leader)
	st, err := c.Status(ctx, newLeader)
	require.NoError(t, err)
	c.WaitApplied(ctx, st.CommitIndex)
	var caught transport.LeaseJSON
	waitFor(t, 30*time.Second, "the restarted node to serve the new lease", func() bool {
		code, _ := api(t, c, leader, http.MethodGet, leasePath("jobs/nightly")+"?stale=true", nil, &caught)
		return code == http.StatusOK && caught.Token == second.Token
	})
	assert.Equal(t, "worker-2", caught.Holder)
	restarted, err := c.Status(ctx, leader)
	require.NoError(t, err)
	assert.Len(t, restarted.Members, 3)
	require.NotNil(t, restarted.Leader)
	assert.Equal(t, st.LastToken, restarted.LastToken)
	c.WaitForLeader(ctx)
	// A linearizable read through the restarted node agrees.
	code, body = api(t, c, leader, http.MethodGet, leasePath("jobs/nightly"), nil, &caught)
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.Equal(t, second.Token, caught.Token)
}

// TestGracefulStopHandsOverLeadership: SIGTERM to the leader's agent
// transfers leadership and exits 0.
func TestGracefulStopHandsOverLeadership(t *testing.T) {
	c := testutil.StartLeasenodes(t, 3, testutil.LeasenodeOptions{})
	ctx := ctxTimeout(t, 60*time.Second)
	leader := c.WaitForLeader(ctx)
	var l transport.LeaseJSON
	code, body := api(t, c, leader, http.MethodPost, leasePath("svc")+"/acquire", acquireBody("a", "30s"), &l)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.NoError(t, c.Stop(leader, 20*time.Second), "exit status 0 after SIGTERM")
	next := c.WaitForNewLeader(ctx, leader)
	var got transport.LeaseJSON
	code, body = api(t, c, next, http.MethodGet, leasePath("svc"), nil, &got)
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.Equal(t, l.Token, got.Token)
}
