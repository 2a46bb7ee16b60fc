package main_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/testutil"
)

// TestDamagedLogStoreRefusesToStart runs a real 3-node cluster, stops a
// follower, overwrites the pages of its bolt log store (which makes bbolt
// panic when it reads them) and restarts it: the agent must exit with a
// clear error instead of a crash, `check-data` must say the dir is
// damaged, and the other two nodes must serve on.
func TestDamagedLogStoreRefusesToStart(t *testing.T) {
	c := testutil.StartLeasenodes(t, 3, testutil.LeasenodeOptions{})
	ctx := ctxTimeout(t, 60*time.Second)
	leader := c.WaitForLeader(ctx)
	code, body := api(t, c, leader, http.MethodPost, leasePath("before")+"/acquire", `{"holder":"a","ttl":"1m"}`, nil)
	require.Equal(t, http.StatusOK, code, string(body))
	f := (leader + 1) % 3
	c.WaitApplied(ctx, 3)
	require.NoError(t, c.Stop(f, 15*time.Second))

	bin := c.Binary()
	ok := runCLI(t, bin, nil, "check-data", "--data-dir", c.DataDir(f))
	require.Equal(t, 0, ok.status, ok.stderr)
	require.Contains(t, ok.stdout, "ok: log entries")

	path := filepath.Join(c.DataDir(f), "raft.db")
	st, err := os.Stat(path)
	require.NoError(t, err)
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	junk := make([]byte, st.Size()-8192) // every page but the two meta pages
	for i := range junk {
		junk[i] = byte(i*131 + 17)
	}
	_, err = fh.WriteAt(junk, 8192)
	require.NoError(t, err)
	require.NoError(t, fh.Close())

	bad := runCLI(t, bin, nil, "check-data", c.DataDir(f))
	require.NotEqual(t, 0, bad.status)

	c.Start(f)
	select {
	case <-c.Exited(f):
	case <-ctx.Done():
		t.Fatal("the agent started on a damaged log store")
	}
	log, err := os.ReadFile(c.LogPath(f))
	require.NoError(t, err)
	last := string(log[strings.LastIndex(string(log), "==== start"):])
	require.Contains(t, last, "failed its check")
	require.Contains(t, last, "refusing to start")
	require.NotContains(t, last, "goroutine ", "a clear error, not a crash dump")

	code, body = api(t, c, leader, http.MethodPost, leasePath("after")+"/acquire", `{"holder":"a","ttl":"1m"}`, nil)
	require.Equal(t, http.StatusOK, code, "the other two serve on: %s", body)
}
