package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/cluster"
	"github.com/raftlease/raftlease/testutil"
)

// stoppedNodeWithSnapshot runs a one-node cluster whose log was compacted
// behind a snapshot, stops it and returns its options.
func stoppedNodeWithSnapshot(t *testing.T) cluster.Options {
	t.Helper()
	c := testutil.NewCluster(t, 1, testutil.ClusterOptions{Edit: func(_ int, o *cluster.Options) {
		o.TrailingLogs = 2
	}})
	n := c.Node(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 20 {
		l, err := n.Acquire(ctx, raftlease.AcquireRequest{Name: "job", Holder: "h", TTL: time.Minute})
		require.NoError(t, err)
		require.NoError(t, n.Release(ctx, raftlease.ReleaseRequest{Name: "job", Holder: "h", Token: l.Token}))
	}
	require.NoError(t, n.Snapshot())
	o := c.Options(0)
	c.Kill(0)
	return o
}

func snapshotDirs(t *testing.T, dataDir string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dataDir, "snapshots", "*"))
	require.NoError(t, err)
	require.NotEmpty(t, matches, "no snapshot on disk")
	return matches
}

func TestCheckDataDirHealthy(t *testing.T) {
	o := stoppedNodeWithSnapshot(t)
	rep, err := cluster.CheckDataDir(o.DataDir)
	require.NoError(t, err)
	require.NotEmpty(t, rep.Snapshots)
	require.Greater(t, rep.FirstIndex, uint64(1), "the log was compacted")
	require.LessOrEqual(t, rep.FirstIndex, rep.Snapshots[0].Index+1)
	require.GreaterOrEqual(t, rep.LastIndex, rep.Snapshots[0].Index)
	n, err := cluster.New(o)
	require.NoError(t, err, "a healthy data dir starts")
	require.NoError(t, n.Close())
}

func TestDamagedDataRefusesToStart(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"snapshot state flipped", func(t *testing.T, dir string) {
			snaps := snapshotDirs(t, dir)
			path := filepath.Join(snaps[len(snaps)-1], "state.bin")
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NotEmpty(t, data)
			data[len(data)/2] ^= 0xff
			require.NoError(t, os.WriteFile(path, data, 0o600))
		}, "CRC mismatch"},
		{"snapshot metadata garbage", func(t *testing.T, dir string) {
			snaps := snapshotDirs(t, dir)
			require.NoError(t, os.WriteFile(filepath.Join(snaps[len(snaps)-1], "meta.json"), []byte("{not json"), 0o600))
		}, "metadata unreadable"},
		{"snapshots deleted behind a compacted log", func(t *testing.T, dir string) {
			require.NoError(t, os.RemoveAll(filepath.Join(dir, "snapshots")))
		}, "are missing"},
		{"bolt meta pages overwritten", func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, "raft.db"), os.O_RDWR, 0)
			require.NoError(t, err)
			defer f.Close()
			junk := make([]byte, 8192)
			for i := range junk {
				junk[i] = byte(i*7 + 3)
			}
			_, err = f.WriteAt(junk, 0)
			require.NoError(t, err)
		}, "raft.db"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := stoppedNodeWithSnapshot(t)
			tc.damage(t, o.DataDir)

			_, err := cluster.CheckDataDir(o.DataDir)
			require.ErrorIs(t, err, cluster.ErrDamagedData)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "refusing to start")

			n, err := cluster.New(o)
			if err == nil {
				n.Close()
			}
			require.Error(t, err, "a node must not start on a damaged data dir")
			require.ErrorIs(t, err, cluster.ErrDamagedData)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestCheckDataDirInUse(t *testing.T) {
	c := testutil.NewCluster(t, 1, testutil.ClusterOptions{})
	_, err := cluster.CheckDataDir(c.Options(0).DataDir)
	require.ErrorContains(t, err, "in use")
	require.NotErrorIs(t, err, cluster.ErrDamagedData)
}
