package transport_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/transport"
)

func clusterAPI(t *testing.T, hc *testutil.HTTPCluster, i int) *api {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &api{t: t, base: hc.URL(i), client: &http.Client{Transport: tr}}
}

// TestHTTPOnCluster serves a real 3-node cluster: every request goes to a
// follower, which forwards what only the leader may do.
func TestHTTPOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	hc := testutil.NewHTTPCluster(t, 3, testutil.ClusterOptions{})
	c := hc.Cluster()
	leader := c.Leader()
	follower := c.Follower()
	a := clusterAPI(t, hc, follower)

	t.Run("Leases", func(t *testing.T) {
		a.t = t
		l := a.do("POST", leaseURL("svc/leader", "acquire"), map[string]any{"holder": "a", "ttl": "30s", "metadata": map[string]string{"addr": "10.0.0.1"}}).lease(t)
		got := a.do("GET", leaseURL("svc/leader", ""), nil).lease(t)
		assert.Equal(t, l.Token, got.Token)
		assert.Equal(t, l.DeadlineNs, got.DeadlineNs)

		r := a.do("POST", leaseURL("svc/leader", "acquire"), acquireBody("b", "30s"))
		e := r.errorBody(t, http.StatusConflict, "lease_held")
		require.NotNil(t, e.Lease)
		assert.Equal(t, "a", e.Lease.Holder)
		assert.Equal(t, l.Token, e.Lease.Token)
		assert.Equal(t, l.Revision, e.Lease.Revision)

		a.do("POST", leaseURL("svc/leader", "renew"), map[string]any{"holder": "a", "token": l.Token + 1}).errorBody(t, http.StatusConflict, "not_holder")
		rn := a.do("POST", leaseURL("svc/leader", "renew"), map[string]any{"holder": "a", "token": l.Token, "ttl": "40s"}).lease(t)
		assert.Equal(t, int64(40000), rn.TTLMs)

		r = a.do("GET", "/v1/leases?prefix=svc/", nil)
		var list transport.LeaseListJSON
		r.decode(t, &list)
		require.Len(t, list.Leases, 1)
		assert.GreaterOrEqual(t, list.Revision, rn.Revision)

		// Bad input changes nothing on the cluster either.
		a.do("POST", leaseURL("svc/leader", "renew"), map[string]any{"holder": "a", "token": l.Token, "ttl": "1ms"}).errorBody(t, http.StatusBadRequest, "invalid_argument")
		a.do("POST", leaseURL("svc/leader", "acquire"), `{"holder":"a","ttl":"5s","x":1}`).errorBody(t, http.StatusBadRequest, "invalid_argument")
		assert.Equal(t, rn.Revision, a.do("GET", leaseURL("svc/leader", ""), nil).lease(t).Revision)

		a.do("POST", leaseURL("svc/leader", "release"), map[string]any{"holder": "b", "token": l.Token}).errorBody(t, http.StatusConflict, "not_holder")
		require.Equal(t, http.StatusOK, a.do("POST", leaseURL("svc/leader", "release"), map[string]any{"holder": "a", "token": l.Token}).status)
		a.do("GET", leaseURL("svc/leader", ""), nil).errorBody(t, http.StatusNotFound, "not_found")
	})

	t.Run("BlockingGet", func(t *testing.T) {
		a.t = t
		l := a.do("POST", leaseURL("blocking", "acquire"), acquireBody("a", "30s")).lease(t)
		done := make(chan response, 1)
		go func() {
			done <- a.do("GET", leaseURL("blocking", "")+fmt.Sprintf("?index=%d&wait=30s", l.Revision), nil)
		}()
		// The change goes through another node.
		other := clusterAPI(t, hc, leader)
		rn := other.do("POST", leaseURL("blocking", "renew"), map[string]any{"holder": "a", "token": l.Token}).lease(t)
		select {
		case r := <-done:
			got := r.lease(t)
			assert.GreaterOrEqual(t, got.Revision, rn.Revision)
		case <-time.After(20 * time.Second):
			t.Fatal("blocking query did not return")
		}
		r := a.do("GET", leaseURL("blocking", "")+fmt.Sprintf("?index=%d&wait=100ms", rn.Revision), nil)
		assert.Equal(t, rn.Revision, r.lease(t).Revision)
	})

	t.Run("EventsWithoutGaps", func(t *testing.T) {
		a.t = t
		checkEventsWithoutGaps(t, a, 3, 8)
	})

	t.Run("Status", func(t *testing.T) {
		for i := range 3 {
			r := clusterAPI(t, hc, i).do("GET", "/v1/status", nil)
			require.Equal(t, http.StatusOK, r.status)
			var st transport.StatusJSON
			r.decode(t, &st)
			assert.Equal(t, c.ID(i), st.ID)
			require.Len(t, st.Members, 3)
			for k, m := range st.Members {
				assert.Equal(t, c.ID(k), m.ID)
				assert.Equal(t, hc.Addr(k), m.HTTPAddr, "member %s", m.ID)
			}
			require.NotNil(t, st.Leader)
			assert.Equal(t, c.ID(leader), st.Leader.ID)
			assert.Equal(t, hc.Addr(leader), st.Leader.HTTPAddr)
			assert.Equal(t, http.StatusOK, clusterAPI(t, hc, i).do("GET", "/readyz", nil).status)
		}
	})

	t.Run("Members", func(t *testing.T) {
		a.t = t
		r := a.do("POST", "/v1/members", `{"id":"extra","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","voter":false}`)
		require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
		var st transport.StatusJSON
		require.Eventually(t, func() bool {
			a.do("GET", "/v1/status", nil).decode(t, &st)
			return len(st.Members) == 4
		}, 10*time.Second, 10*time.Millisecond)
		require.Equal(t, http.StatusOK, a.do("DELETE", "/v1/members/extra", nil).status)
		a.do("DELETE", "/v1/members/extra", nil).errorBody(t, http.StatusNotFound, "not_found")
		a.do("POST", "/v1/members", `{"id":"bad","raft_addr":"no-port"}`).errorBody(t, http.StatusBadRequest, "invalid_argument")
	})

	t.Run("Snapshot", func(t *testing.T) {
		a.t = t
		l := a.do("POST", leaseURL("snap/a", "acquire"), acquireBody("holder-a", "1m")).lease(t)
		r := a.do("GET", "/v1/snapshot", nil)
		require.Equal(t, http.StatusOK, r.status)
		require.NotEmpty(t, r.body)
		assert.Equal(t, strconv.Itoa(len(r.body)), r.header.Get(transport.SnapshotBytesTrailer))
		rr := a.do("POST", "/v1/snapshot", r.body)
		require.Equal(t, http.StatusOK, rr.status, "body %s", rr.body)
		var rep transport.RestoreReportJSON
		rr.decode(t, &rep)
		assert.GreaterOrEqual(t, rep.Imported, 1)
		// The same holder keeps its lease (restore re-acquires, which is
		// idempotent for the holder).
		got := a.do("GET", leaseURL("snap/a", ""), nil).lease(t)
		assert.Equal(t, "holder-a", got.Holder)
		assert.Equal(t, l.Token, got.Token)
		a.do("POST", "/v1/snapshot", "not a snapshot").errorBody(t, http.StatusBadRequest, "invalid_argument")
	})

	t.Run("Metrics", func(t *testing.T) {
		for i := range 3 {
			r := clusterAPI(t, hc, i).do("GET", "/metrics", nil)
			require.Equal(t, http.StatusOK, r.status)
			text := string(r.body)
			state := "Follower"
			if i == leader {
				state = "Leader"
			}
			assert.Contains(t, text, `raftlease_raft_state{state="`+state+`"} 1`)
			for _, name := range []string{"raftlease_raft_is_leader", "raftlease_raft_term", "raftlease_raft_commit_index", "raftlease_raft_applied_index", "raftlease_store_leases_held", "raftlease_store_last_token", "raftlease_store_epochs_total", "raftlease_store_expirations_total", "raftlease_http_requests_total"} {
				assert.Contains(t, text, name)
			}
		}
	})

	// Last: an isolated follower refuses linearizable reads and writes with
	// 503 and an outcome, and still serves stale reads.
	t.Run("Isolated", func(t *testing.T) {
		a.t = t
		l := a.do("POST", leaseURL("iso", "acquire"), acquireBody("a", "1m")).lease(t)
		require.Eventually(t, func() bool {
			r := a.do("GET", leaseURL("iso", "")+"?stale=true", nil)
			return r.status == http.StatusOK
		}, 10*time.Second, 10*time.Millisecond, "the follower applied the acquire")
		c.Isolate(follower)
		defer c.Heal()

		r := a.do("GET", leaseURL("iso", "")+"?timeout=1s", nil)
		t.Logf("linearizable read on the isolated node: %s", r.body)
		e := r.errorBody(t, http.StatusServiceUnavailable, r.errCode(t))
		assert.Contains(t, []string{"not_applied", "unknown"}, e.Outcome, "a 503 carries its outcome")
		r = a.do("POST", leaseURL("iso2", "acquire")+"?timeout=1s", acquireBody("a", "5s"))
		t.Logf("write on the isolated node: %s", r.body)
		e = r.errorBody(t, http.StatusServiceUnavailable, r.errCode(t))
		assert.Contains(t, []string{"not_applied", "unknown"}, e.Outcome)
		r = a.do("GET", "/readyz?timeout=500ms", nil)
		e = r.errorBody(t, http.StatusServiceUnavailable, r.errCode(t))
		assert.NotEmpty(t, e.Outcome)

		got := a.do("GET", leaseURL("iso", "")+"?stale=true", nil).lease(t)
		assert.Equal(t, l.Token, got.Token)
		c.Heal()
		require.Eventually(t, func() bool {
			return a.do("GET", "/readyz", nil).status == http.StatusOK
		}, 20*time.Second, 20*time.Millisecond, "ready again after heal")
		_, err := postLease(a, leaseURL("iso2", "acquire"), acquireBody("a", "5s"))
		require.NoError(t, err)
	})
	c.WaitConverged()
}

// errCode returns the error code of a response, for checks that accept
// any 503 kind.
func (r response) errCode(t *testing.T) string {
	t.Helper()
	var e transport.ErrorJSON
	r.decode(t, &e)
	_, status := transport.ErrorCode(e.Err())
	if r.status == http.StatusServiceUnavailable {
		require.True(t, raftlease.IsRetryable(e.Err()), "a 503 is retryable: %s", r.body)
		require.Equal(t, http.StatusServiceUnavailable, status, "code %s", e.Error.Code)
	}
	return e.Error.Code
}
