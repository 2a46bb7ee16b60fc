package main_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/client"
	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/testutil/storetest"
	"github.com/raftlease/raftlease/transport"
)

// TestCluster runs, one after another, the checks that do not kill nodes
// against one 3-node cluster of agent processes: bad requests on the
// wire, the CLI, and the Store conformance suite through the client.
func TestCluster(t *testing.T) {
	c := testutil.StartLeasenodes(t, 3, testutil.LeasenodeOptions{})
	ctx := ctxTimeout(t, 30*time.Second)
	leader := c.WaitForLeader(ctx)
	follower := (leader + 1) % 3

	t.Run("BadRequests", func(t *testing.T) { testBadRequests(t, c, leader, follower) })
	t.Run("Endpoints", func(t *testing.T) { testEndpoints(t, c, follower) })
	t.Run("CLI", func(t *testing.T) { testCLI(t, c, follower) })
	t.Run("Watch", func(t *testing.T) { testCLIWatch(t, c, follower) })
	t.Run("Campaign", func(t *testing.T) { testCLICampaign(t, c) })
	t.Run("Conformance", func(t *testing.T) { testConformance(t, c, follower) })
}

// testBadRequests: malformed or out-of-bounds requests get 400
// invalid_argument and change nothing. Plain net/http, so the real wire is
// what is tested.
func testBadRequests(t *testing.T, c *testutil.Leasenodes, leader, follower int) {
	const name = "bad/requests"
	huge := strings.Repeat("x", raftlease.MaxMetadataValueLen+1)
	manyKeys := map[string]string{}
	for i := range raftlease.MaxMetadataKeys + 1 {
		manyKeys["k"+strconv.Itoa(i)] = "v"
	}
	tests := []struct {
		name, path, body string
	}{
		{"malformed JSON", "/acquire", `{"holder":"a","ttl":`},
		{"not an object", "/acquire", `["a"]`},
		{"empty body", "/acquire", ``},
		{"trailing data", "/acquire", `{"holder":"a","ttl":"5s"} {}`},
		{"unknown field", "/acquire", `{"holder":"a","ttl":"5s","bogus":1}`},
		{"misspelt field", "/acquire", `{"holder":"a","tll":"5s"}`},
		{"wrong type", "/acquire", `{"holder":7,"ttl":"5s"}`},
		{"negative TTL", "/acquire", `{"holder":"a","ttl":"-5s"}`},
		{"TTL without unit", "/acquire", `{"holder":"a","ttl":"5"}`},
		{"TTL below minimum", "/acquire", `{"holder":"a","ttl":"1ms"}`},
		{"TTL above maximum", "/acquire", `{"holder":"a","ttl":"48h"}`},
		{"missing TTL", "/acquire", `{"holder":"a"}`},
		{"missing holder", "/acquire", `{"ttl":"5s"}`},
		{"holder with space", "/acquire", `{"holder":"a b","ttl":"5s"}`},
		{"huge metadata value", "/acquire", mustJSON(t, map[string]any{"holder": "a", "ttl": "5s", "metadata": map[string]string{"k": huge}})},
		{"too many metadata keys", "/acquire", mustJSON(t, map[string]any{"holder": "a", "ttl": "5s", "metadata": manyKeys})},
		{"bad metadata key", "/acquire", `{"holder":"a","ttl":"5s","metadata":{"sp ace":"v"}}`},
		{"body over the limit", "/acquire", mustJSON(t, map[string]any{"holder": "a", "ttl": "5s", "metadata": map[string]string{"k": strings.Repeat("y", 100<<10)}})},
		{"renew with token 0", "/renew", `{"holder":"a","token":0}`},
		{"renew with negative token", "/renew", `{"holder":"a","token":-1}`},
		{"renew with string token", "/renew", `{"holder":"a","token":"1"}`},
		{"renew with negative TTL", "/renew", `{"holder":"a","token":1,"ttl":"-1s"}`},
		{"release unknown field", "/release", `{"holder":"a","token":1,"force":true}`},
	}
	ctx := ctxTimeout(t, 30*time.Second)
	before, err := c.Status(ctx, leader)
	require.NoError(t, err)
	for _, node := range []int{follower, leader} {
		for _, tc := range tests {
			code, body := api(t, c, node, http.MethodPost, leasePath(name)+tc.path, tc.body, nil)
			assert.Equal(t, http.StatusBadRequest, code, "%s via %s: %s", tc.name, c.ID(node), body)
			if code == http.StatusBadRequest {
				assert.Equal(t, transport.CodeInvalidArgument, errorCode(t, body), tc.name)
			}
		}
		// A bad name in the path.
		code, body := api(t, c, node, http.MethodPost, "/v1/leases/bad%20name/acquire", `{"holder":"a","ttl":"5s"}`, nil)
		assert.Equal(t, http.StatusBadRequest, code, "%s", body)
		code, body = api(t, c, node, http.MethodGet, "/v1/leases?prefix=bad%20prefix", nil, nil)
		assert.Equal(t, http.StatusBadRequest, code, "%s", body)
	}
	// Nothing changed: no token issued, no lease, and (with no live lease
	// in the cluster) no log entry.
	after, err := c.Status(ctx, leader)
	require.NoError(t, err)
	assert.Equal(t, before.LastToken, after.LastToken)
	assert.Equal(t, before.Leases, after.Leases)
	if before.Leases == 0 {
		assert.Equal(t, before.LastIndex, after.LastIndex, "no entry was written")
	}
	code, body := api(t, c, follower, http.MethodGet, leasePath(name), nil, nil)
	assert.Equal(t, http.StatusNotFound, code, "%s", body)
	assert.Equal(t, transport.CodeNotFound, errorCode(t, body))

	// The same name works with a good request.
	var l transport.LeaseJSON
	code, body = api(t, c, follower, http.MethodPost, leasePath(name)+"/acquire", `{"holder":"a","ttl":"5s"}`, &l)
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.Equal(t, before.LastToken+1, l.Token, "the next token, nothing skipped")
	code, body = api(t, c, follower, http.MethodPost, leasePath(name)+"/release", mustJSON(t, map[string]any{"holder": "a", "token": l.Token}), nil)
	require.Equal(t, http.StatusOK, code, "%s", body)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// testEndpoints: health, readiness and metrics of every node, and status.
func testEndpoints(t *testing.T, c *testutil.Leasenodes, follower int) {
	for i := range c.Size() {
		code, body := api(t, c, i, http.MethodGet, "/healthz", nil, nil)
		assert.Equal(t, http.StatusOK, code, "%s", body)
		c.WaitReady(ctxTimeout(t, 10*time.Second), i) // 200 once caught up with the leader
		code, body = api(t, c, i, http.MethodGet, "/metrics", nil, nil)
		assert.Equal(t, http.StatusOK, code)
		assert.Contains(t, string(body), "raftlease_raft_term")
		assert.Contains(t, string(body), "raftlease_hashicorp_raft", "hashicorp/raft's metrics are bridged")
		assert.Contains(t, string(body), "go_goroutines")
	}
	var st transport.StatusJSON
	code, body := api(t, c, follower, http.MethodGet, "/v1/status", nil, &st)
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.Equal(t, c.ID(follower), st.ID)
	require.NotNil(t, st.Leader)
	require.Len(t, st.Members, 3)
	for _, m := range st.Members {
		i := c.Index(m.ID)
		require.GreaterOrEqual(t, i, 0, m.ID)
		assert.Equal(t, c.HTTPAddr(i), m.HTTPAddr, "http_addr is the advertised --http-addr")
		assert.Equal(t, c.RaftAddr(i), m.RaftAddr)
		assert.True(t, m.Voter)
	}
	assert.Equal(t, c.HTTPAddr(c.Index(st.Leader.ID)), st.Leader.HTTPAddr)
}

// testCLI runs the lease and admin commands as processes, pointed at a
// follower, and checks their output and exit statuses.
func testCLI(t *testing.T, c *testutil.Leasenodes, follower int) {
	bin := c.Binary()
	env := []string{"LEASENODE_ADDR=" + c.HTTPAddr(follower)}
	cli := func(args ...string) cliResult { t.Helper(); return runCLI(t, bin, env, args...) }

	r := cli("acquire", "cli/job", "--holder", "alice", "--ttl", "30s", "--meta", "addr=10.0.0.9:80", "-o", "json")
	require.Equal(t, 0, r.status, r.stderr)
	var l transport.LeaseJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &l))
	assert.Equal(t, "alice", l.Holder)
	assert.Equal(t, "10.0.0.9:80", l.Metadata["addr"])
	token := strconv.FormatUint(l.Token, 10)

	r = cli("acquire", "cli/job", "--holder", "bob")
	assert.Equal(t, 1, r.status, "held: refused")
	assert.Contains(t, r.stderr, "held by alice")
	r = cli("acquire", "cli/job", "--holder", "bob", "-o", "json")
	assert.Equal(t, 1, r.status)
	assert.Equal(t, transport.CodeLeaseHeld, errorCode(t, []byte(r.stdout)))

	r = cli("get", "cli/job")
	require.Equal(t, 0, r.status)
	assert.Contains(t, r.stdout, "alice")
	assert.Contains(t, r.stdout, "token:")
	r = cli("get", "cli/job", "--stale", "-o", "json")
	require.Equal(t, 0, r.status)
	r = cli("get", "cli/none")
	assert.Equal(t, 1, r.status, "not found")

	r = cli("renew", "cli/job", "--holder", "alice", "--token", token, "--ttl", "20s", "-o", "json")
	require.Equal(t, 0, r.status, r.stderr)
	var renewed transport.LeaseJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &renewed))
	assert.Equal(t, l.Token, renewed.Token)
	assert.Equal(t, int64(20000), renewed.TTLMs)
	r = cli("renew", "cli/job", "--holder", "alice", "--token", strconv.FormatUint(l.Token+100, 10))
	assert.Equal(t, 1, r.status, "stale token: not holder")

	r = cli("list", "--prefix", "cli/", "-o", "json")
	require.Equal(t, 0, r.status)
	var ll transport.LeaseListJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &ll))
	require.Len(t, ll.Leases, 1)
	assert.Equal(t, "cli/job", ll.Leases[0].Name)
	r = cli("list")
	require.Equal(t, 0, r.status)
	assert.Contains(t, r.stdout, "cli/job")

	r = cli("status", "-o", "json")
	require.Equal(t, 0, r.status)
	var st transport.StatusJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	assert.Len(t, st.Members, 3)
	r = cli("status")
	require.Equal(t, 0, r.status)
	assert.Contains(t, r.stdout, "leader:")
	r = cli("members", "list", "-o", "json")
	require.Equal(t, 0, r.status)
	assert.Contains(t, r.stdout, `"members"`)

	// Snapshot save and restore: a restore never lowers a token.
	snap := filepath.Join(t.TempDir(), "snap.bin")
	r = cli("snapshot", "save", snap)
	require.Equal(t, 0, r.status, r.stderr)
	fi, err := os.Stat(snap)
	require.NoError(t, err)
	assert.Positive(t, fi.Size())
	r = cli("snapshot", "restore", snap, "-o", "json")
	require.Equal(t, 0, r.status, r.stderr)
	var report transport.RestoreReportJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &report))
	assert.GreaterOrEqual(t, report.TokenFloor, l.Token)

	r = cli("release", "cli/job", "--holder", "alice", "--token", token)
	require.Equal(t, 0, r.status, r.stderr)
	r = cli("release", "cli/job", "--holder", "alice", "--token", token)
	assert.Equal(t, 1, r.status, "released already: not holder")
	r = cli("acquire", "cli/job", "--holder", "bob", "-o", "json")
	require.Equal(t, 0, r.status, r.stderr)
	var next transport.LeaseJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &next))
	assert.Greater(t, next.Token, l.Token)
	r = cli("release", "cli/job", "--holder", "bob", "--token", strconv.FormatUint(next.Token, 10))
	require.Equal(t, 0, r.status, r.stderr)

	// Usage and unavailability.
	r = cli("acquire", "cli/job")
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, "--holder")
	r = cli("acquire", "cli/job", "--holder", "a", "--ttl", "1ms")
	assert.Equal(t, 2, r.status)
	r = runCLI(t, bin, []string{"LEASENODE_ADDR=127.0.0.1:1"}, "status", "--timeout", "2s")
	assert.Equal(t, 3, r.status, "unreachable: unavailable")
	// Several endpoints: a dead one first, then a live one.
	r = runCLI(t, bin, nil, "get", "cli/none", "--addr", "127.0.0.1:1,"+c.HTTPAddr(follower))
	assert.Equal(t, 1, r.status, "the live endpoint answered not found")
}

// testCLIWatch: `leasenode watch --prefix` prints one line per event, in
// order, until interrupted.
func testCLIWatch(t *testing.T, c *testutil.Leasenodes, follower int) {
	ctx := ctxTimeout(t, 30*time.Second)
	cl := newClient(t, c.URL(follower))
	// Watch from the current revision + 1, so the test's changes are seen
	// however late the watcher's stream opens.
	ll, err := cl.List(ctx, "watched/", raftlease.ReadOptions{})
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, c.Binary(), "watch", "--prefix", "watched/", "-o", "json",
		"--from", strconv.FormatUint(ll.Revision+1, 10), "--addr", c.HTTPAddr(follower))
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan transport.EventJSON, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev transport.EventJSON
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				lines <- ev
			}
		}
		close(lines)
	}()
	next := func() transport.EventJSON {
		t.Helper()
		select {
		case ev, ok := <-lines:
			require.True(t, ok, "watch exited")
			return ev
		case <-ctx.Done():
			t.Fatal("no event")
			return transport.EventJSON{}
		}
	}
	l, err := cl.Acquire(ctx, raftlease.AcquireRequest{Name: "watched/a", Holder: "w", TTL: 10 * time.Second})
	require.NoError(t, err)
	_, err = cl.Acquire(ctx, raftlease.AcquireRequest{Name: "other/x", Holder: "w", TTL: 10 * time.Second})
	require.NoError(t, err)
	require.NoError(t, cl.Release(ctx, raftlease.ReleaseRequest{Name: "watched/a", Holder: "w", Token: l.Token}))
	ev := next()
	assert.Equal(t, "acquired", ev.Type)
	assert.Equal(t, "watched/a", ev.Lease.Name)
	assert.Equal(t, l.Token, ev.Lease.Token)
	ev = next()
	assert.Equal(t, "released", ev.Type, "other/x is not under the prefix")
	assert.Equal(t, l.Token, ev.Lease.Token)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, cmd.Wait(), "exit status 0 on SIGINT")
}

// testCLICampaign: two `leasenode campaign` participants; one gains
// leadership; when it is stopped (SIGTERM: it releases), the other gains
// with a larger token.
func testCLICampaign(t *testing.T, c *testutil.Leasenodes) {
	ctx := ctxTimeout(t, 60*time.Second)
	type participant struct {
		cmd     *exec.Cmd
		changes chan map[string]any
	}
	start := func(holder string, node int) *participant {
		cmd := exec.CommandContext(ctx, c.Binary(), "campaign", "campaign/leader", "--holder", holder,
			"--profile", "fast", "-o", "json", "--addr", c.HTTPAddr(node))
		cmd.Env = cleanEnv()
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		p := &participant{cmd: cmd, changes: make(chan map[string]any, 64)}
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil {
					p.changes <- m
				}
			}
			close(p.changes)
		}()
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return p
	}
	gained := func(p *participant) uint64 {
		for {
			select {
			case m, ok := <-p.changes:
				require.True(t, ok, "participant exited")
				if m["event"] == "gained" {
					return uint64(m["token"].(float64))
				}
			case <-ctx.Done():
				t.Fatal("no gained change")
			}
		}
	}
	a := start("a", 0)
	first := gained(a)
	b := start("b", 1)
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGTERM))
	second := gained(b)
	assert.Greater(t, second, first)
	require.NoError(t, a.cmd.Wait(), "campaign exits 0 on SIGTERM")
	var sawLost bool
	for m := range a.changes {
		sawLost = sawLost || m["event"] == "lost"
	}
	assert.True(t, sawLost, "a printed that it lost leadership")
}

func newClient(t *testing.T, endpoints ...string) *client.Client {
	t.Helper()
	cl, err := client.New(client.Options{Endpoints: endpoints})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// testConformance runs the Store conformance suite against the cluster
// through the client, pointed at a follower. With -short it leaves out the
// groups that wait on real time.
func testConformance(t *testing.T, c *testutil.Leasenodes, follower int) {
	cl := newClient(t, c.URL(follower))
	storetest.Run(t, func(t *testing.T) storetest.Subject {
		if testing.Short() {
			for _, slow := range []string{"/Expiry/", "/Concurrent/", "/Watch/Resume"} {
				if strings.Contains(t.Name(), slow) {
					t.Skip("waits on real time; runs without -short")
				}
			}
		}
		return storetest.Subject{Store: cl}
	})
}
