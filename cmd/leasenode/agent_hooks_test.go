package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/cluster"
)

// TestUnsafeHooksOffWithoutFlag: without --unsafe-test-hooks nothing of the
// hooks exists: no hooks, no clock or link faults plugged into the node,
// no listener.
func TestUnsafeHooksOffWithoutFlag(t *testing.T) {
	cfg, err := parseAgentConfig([]string{"--id", "n1", "--data-dir", t.TempDir()}, envOf())
	require.NoError(t, err)
	opts := cfg.nodeOptions()
	before := opts
	u, err := newUnsafeHooks(cfg, &opts, hclog.NewNullLogger())
	require.NoError(t, err)
	require.Nil(t, u)
	require.Nil(t, opts.TestHooks)
	require.Nil(t, opts.Clock)
	require.Nil(t, opts.Faults)
	require.Equal(t, before.SnapshotThreshold, opts.SnapshotThreshold)
	u.serve(nil) // nil hooks: no-ops
	u.close()

	_, err = parseAgentConfig([]string{"--id", "n1", "--data-dir", t.TempDir(), "--unsafe-stale-reads"}, envOf())
	require.ErrorContains(t, err, "--unsafe-stale-reads needs --unsafe-test-hooks")
}

// TestUnsafeHooksEndpoint: with the flag, the control endpoint drives the
// hooks plugged into the node's options.
func TestUnsafeHooksEndpoint(t *testing.T) {
	cfg, err := parseAgentConfig([]string{"--id", "n1", "--data-dir", t.TempDir(), "--unsafe-test-hooks", "127.0.0.1:0"}, envOf())
	require.NoError(t, err)
	opts := cfg.nodeOptions()
	u, err := newUnsafeHooks(cfg, &opts, hclog.NewNullLogger())
	require.NoError(t, err)
	defer u.close()
	require.NotNil(t, opts.TestHooks)
	require.NotNil(t, opts.Clock)
	require.NotNil(t, opts.Faults)

	srv := httptest.NewServer(u.handler())
	defer srv.Close()
	post := func(path string, body any) int {
		data, _ := json.Marshal(body)
		resp, err := http.Post(srv.URL+path, "application/json", bytes.NewReader(data))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, post("/v1/test/clock", hooksClockJSON{Rate: 1.5, WallOffsetMs: 3000}))
	require.Equal(t, http.StatusOK, post("/v1/test/logstore", hooksLogStoreJSON{DelayMs: 5, ErrorRate: 0.25}))
	require.Equal(t, http.StatusOK, post("/v1/test/crash", hooksCrashJSON{Point: string(cluster.CrashAfterApply), After: 7}))
	require.Equal(t, http.StatusBadRequest, post("/v1/test/crash", hooksCrashJSON{Point: "nowhere"}))
	require.Equal(t, http.StatusOK, post("/v1/test/stale-reads", hooksStaleJSON{Enabled: true}))
	require.Equal(t, http.StatusOK, post("/v1/test/links", hooksLinksJSON{
		Peers: map[string][]string{"n2": {"127.0.0.1:1"}},
		Cut:   []hooksLinkJSON{{From: "n1", To: "n2"}},
	}))
	st := opts.TestHooks.State()
	require.Equal(t, 1.5, st.ClockRate)
	require.Equal(t, 3*time.Second, st.WallOffset)
	require.Equal(t, 5*time.Millisecond, st.LogDelay)
	require.Equal(t, 0.25, st.LogErrorRate)
	require.Equal(t, cluster.CrashAfterApply, st.CrashPoint)
	require.Equal(t, 7, st.CrashAfter)
	require.True(t, st.StaleReads)
	require.True(t, opts.Faults.Blocked("n1", "n2"))
	require.False(t, opts.Faults.Blocked("n2", "n1"))
	require.Equal(t, http.StatusOK, post("/v1/test/links", hooksLinksJSON{}))
	require.False(t, opts.Faults.Blocked("n1", "n2"))
}
