package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/client"
	"github.com/raftlease/raftlease/redisbridge"
	"github.com/raftlease/raftlease/testutil"
)

// TestMigratePlan: what migrate does with each kind of exported name.
func TestMigratePlan(t *testing.T) {
	live := redisbridge.ExportedLease{Name: "job", Holder: "alice", Token: 7, TTL: 10 * time.Second, Remaining: 5 * time.Second,
		Metadata: map[string]string{"addr": "a:1"}, CounterValue: 9}
	tests := []struct {
		name    string
		e       redisbridge.ExportedLease
		current *raftlease.Lease
		elapsed time.Duration
		status  string
		skip    string
		ttl     time.Duration // for migrated
		reason  string
	}{
		{name: "free name", e: redisbridge.ExportedLease{Name: "free", CounterValue: 40}, status: migrateFree},
		{name: "what is left, plus PTTL's millisecond", e: live, status: migrateMigrated, ttl: 5*time.Second + time.Millisecond},
		{name: "time spent migrating comes off", e: live, elapsed: time.Second, status: migrateMigrated, ttl: 4*time.Second + time.Millisecond},
		{name: "clipped to the TTL", e: with(live, func(e *redisbridge.ExportedLease) { e.Remaining = e.TTL }), status: migrateMigrated, ttl: 10 * time.Second},
		{name: "below MinTTL: MinTTL", e: with(live, func(e *redisbridge.ExportedLease) { e.Remaining = 30 * time.Millisecond }),
			status: migrateMigrated, ttl: raftlease.MinTTL, reason: "below the minimum TTL"},
		{name: "expired meanwhile", e: live, elapsed: 6 * time.Second, status: migrateSkipped, skip: skipExpired},
		{name: "held by someone else in the cluster", e: live, current: &raftlease.Lease{Holder: "bob", Token: 3},
			status: migrateSkipped, skip: skipHeld, reason: "held by bob"},
		{name: "same holder, token not above Redis's", e: live, current: &raftlease.Lease{Holder: "alice", Token: 9},
			status: migrateSkipped, skip: skipStaleToken},
		{name: "same holder, token above Redis's: already migrated", e: live, current: &raftlease.Lease{Holder: "alice", Token: 12, TTL: 4 * time.Second},
			status: migratePresent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			row := planMigration(tc.e, tc.current, tc.elapsed)
			assert.Equal(t, tc.status, row.Status, row.Reason)
			assert.Equal(t, tc.skip, row.Skip)
			assert.Equal(t, tc.status == migrateMigrated, row.apply)
			if tc.status == migrateMigrated {
				assert.Equal(t, tc.ttl, row.ttl)
				assert.LessOrEqual(t, row.ttl, max(tc.e.TTL, raftlease.MinTTL), "never longer than the TTL")
				assert.GreaterOrEqual(t, row.ttl, tc.e.Remaining-tc.elapsed, "never earlier than the Redis deadline")
			}
			assert.Contains(t, row.Reason, tc.reason)
			if tc.e.Live() {
				assert.Equal(t, tc.e.Holder, row.Holder)
				assert.Equal(t, tc.e.Token, row.RedisToken)
			}
			assert.Equal(t, tc.e.CounterValue, row.RedisCounter)
		})
	}
}

func with(e redisbridge.ExportedLease, f func(*redisbridge.ExportedLease)) redisbridge.ExportedLease {
	f(&e)
	return e
}

// TestMigrateRedisURL: the redis:// URLs --addr and --from-redis take.
func TestMigrateRedisURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want redisTarget
	}{
		{"redis://127.0.0.1:6379", redisTarget{Addr: "127.0.0.1:6379"}},
		{"redis://h:1/3", redisTarget{Addr: "h:1", DB: 3}},
		{"rediss://u:p@h:1/0", redisTarget{Addr: "h:1", Username: "u", Password: "p", TLS: true}},
		{"redis://:p@h:1", redisTarget{Addr: "h:1", Password: "p"}},
		{"redis://p@h:1", redisTarget{Addr: "h:1", Password: "p"}},
	} {
		got, err := parseRedisURL("addr", tc.in)
		require.NoError(t, err, tc.in)
		got.Display = ""
		assert.Equal(t, tc.want, got, tc.in)
	}
	for _, bad := range []string{"redis://h", "redis://h:1/x", "redis://h:1/-1", "redis://h:1?x=1", "http://h:1", "redis://:1"} {
		_, err := parseRedisURL("addr", bad)
		assert.Error(t, err, bad)
		assert.Equal(t, exitUsage, exitStatus(err), bad)
	}
	got, err := parseRedisURL("addr", "redis://u:hunter2@h:1")
	require.NoError(t, err)
	assert.NotContains(t, got.Display, "hunter2")

	kind, err := storeKindOf("addr", []string{"a:1", "http://b:2"})
	require.NoError(t, err)
	assert.Equal(t, storeCluster, kind)
	kind, err = storeKindOf("addr", []string{"REDIS://h:1"})
	require.NoError(t, err)
	assert.Equal(t, storeRedis, kind)
	_, err = storeKindOf("addr", []string{"redis://h:1", "a:1"})
	assert.Error(t, err, "mixed kinds")
	_, err = storeKindOf("addr", []string{"redis://h:1", "redis://h:2"})
	assert.Error(t, err, "one redis server")
}

// TestMigrate: leases created through the bridge on a real redis-server
// appear in a real 3-node leasenode cluster with the same holders and
// metadata, deadlines at or after the Redis ones and no longer than their
// TTL; the next acquisition of every name, migrated or free in Redis, gets
// a token above every token Redis issued; a lease held by someone else in
// the cluster is skipped and reported; --dry-run changes nothing; a second
// run changes nothing either.
func TestMigrate(t *testing.T) {
	r := testutil.StartRedis(t)
	c := testutil.StartLeasenodes(t, 3, testutil.LeasenodeOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	c.WaitForLeader(ctx)
	bin := c.Binary()
	redisURL := "redis://" + r.Addr()

	rs := newBridge(t, r, "")
	other := newBridge(t, r, "other:")
	cl, err := client.New(client.Options{Endpoints: c.Endpoints()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })

	// Redis history: counters well above the cluster's, a free name with
	// the highest counter of all, live leases, and one name someone
	// already holds in the cluster.
	churn := func(s raftlease.Store, name string, times int) uint64 {
		var last uint64
		for range times {
			l, err := s.Acquire(ctx, raftlease.AcquireRequest{Name: name, Holder: "churn", TTL: time.Second})
			require.NoError(t, err)
			require.NoError(t, s.Release(ctx, raftlease.ReleaseRequest{Name: name, Holder: "churn", Token: l.Token}))
			last = l.Token
		}
		return last
	}
	churn(rs, "jobs/a", 5)
	churn(rs, "jobs/held", 3)
	freeCounter := churn(rs, "jobs/free", 30)
	live := map[string]raftlease.AcquireRequest{
		"jobs/a":    {Name: "jobs/a", Holder: "alice", TTL: 30 * time.Second, Metadata: map[string]string{"addr": "10.0.0.1:80"}},
		"jobs/b":    {Name: "jobs/b", Holder: "bob", TTL: 20 * time.Second},
		"jobs/held": {Name: "jobs/held", Holder: "carol", TTL: 30 * time.Second},
	}
	var maxRedis uint64
	for _, req := range live {
		l, err := rs.Acquire(ctx, req)
		require.NoError(t, err)
		maxRedis = max(maxRedis, l.Token)
	}
	maxRedis = max(maxRedis, freeCounter)
	// Let some of every TTL run out, so that remaining < TTL.
	time.Sleep(300 * time.Millisecond)
	dave, err := cl.Acquire(ctx, raftlease.AcquireRequest{Name: "jobs/held", Holder: "dave", TTL: time.Minute})
	require.NoError(t, err)
	require.Less(t, dave.Token, maxRedis, "the cluster starts below Redis")
	_, err = other.Acquire(ctx, raftlease.AcquireRequest{Name: "jobs/other", Holder: "eve", TTL: 30 * time.Second})
	require.NoError(t, err)

	clusterState := func() (uint64, []raftlease.Lease) {
		st, err := cl.Status(ctx)
		require.NoError(t, err)
		ll, err := cl.List(ctx, "", raftlease.ReadOptions{})
		require.NoError(t, err)
		for i := range ll.Leases {
			ll.Leases[i].Remaining, ll.Leases[i].Deadline = 0, 0 // these move
		}
		return st.LastToken, ll.Leases
	}
	exportOf := func() []redisbridge.ExportedLease {
		out, err := rs.Export(ctx)
		require.NoError(t, err)
		for i := range out {
			out[i].Remaining = 0
		}
		return out
	}

	t.Run("DryRun", func(t *testing.T) {
		tokenBefore, leasesBefore := clusterState()
		redisBefore := exportOf()
		res := runLeasenode(t, bin, "migrate", "--from-redis", redisURL, "--dry-run", "--addr", c.HTTPAddr(1), "-o", "json")
		require.Equal(t, exitRefused, res.status, "a lease is skipped (held in the cluster): %s", res.stderr)
		rep := decodeReport(t, res.stdout)
		assert.True(t, rep.DryRun)
		assert.Equal(t, maxRedis, rep.RedisMaxCounter)
		assert.Equal(t, maxRedis, rep.TokenFloor)
		assert.Equal(t, 2, rep.Migrated)
		assert.Equal(t, 1, rep.Free)
		assert.Equal(t, 1, rep.Skipped)
		rows := rowsByName(rep)
		assert.Equal(t, migrateMigrated, rows["jobs/a"].Status)
		assert.Zero(t, rows["jobs/a"].Token, "no token in a dry run")
		assert.Positive(t, rows["jobs/a"].TTLMs, "the planned TTL")
		assert.Equal(t, migrateFree, rows["jobs/free"].Status)
		assert.Equal(t, skipHeld, rows["jobs/held"].Skip)
		assert.NotContains(t, rows, "jobs/other", "another prefix")

		tokenAfter, leasesAfter := clusterState()
		assert.Equal(t, tokenBefore, tokenAfter, "no token issued")
		assert.Equal(t, leasesBefore, leasesAfter, "the cluster's leases are as they were")
		assert.Equal(t, redisBefore, exportOf(), "Redis is as it was")

		res = runLeasenode(t, bin, "migrate", "--from-redis", redisURL, "--dry-run", "--addr", c.HTTPAddr(1))
		assert.Equal(t, exitRefused, res.status)
		assert.Contains(t, res.stdout, "dry run: nothing was changed")
		assert.Contains(t, res.stdout, "would migrate 2")
		assert.Contains(t, res.stdout, "held by dave")
	})

	var rep migrateReport
	t.Run("Migrate", func(t *testing.T) {
		// The Redis deadlines, bounded from below: each read happened after
		// `before`, so deadline >= before + remaining.
		redisDeadline := map[string]time.Time{}
		redisLease := map[string]raftlease.Lease{}
		for name := range live {
			before := time.Now()
			l, err := rs.Get(ctx, name, raftlease.ReadOptions{})
			require.NoError(t, err)
			redisDeadline[name], redisLease[name] = before.Add(l.Remaining), l
		}
		res := runLeasenode(t, bin, "migrate", "--from-redis", redisURL, "--addr", strings.Join(c.Endpoints(), ","), "-o", "json")
		require.Equal(t, exitRefused, res.status, "a lease is skipped (held in the cluster): %s", res.stderr)
		rep = decodeReport(t, res.stdout)
		assert.False(t, rep.DryRun)
		assert.Equal(t, maxRedis, rep.TokenFloor)
		assert.Equal(t, 2, rep.Migrated)
		assert.Equal(t, 1, rep.Free)
		assert.Equal(t, 1, rep.Skipped)
		assert.Greater(t, rep.ClusterTokenAfter, maxRedis)
		rows := rowsByName(rep)
		assert.Equal(t, skipHeld, rows["jobs/held"].Skip)
		assert.Contains(t, rows["jobs/held"].Reason, "held by dave")

		for _, name := range []string{"jobs/a", "jobs/b"} {
			// The cluster deadline, bounded from above: the read happened
			// before `after`, so deadline <= after + remaining.
			got, err := cl.Get(ctx, name, raftlease.ReadOptions{})
			after := time.Now()
			require.NoError(t, err, name)
			want := redisLease[name]
			assert.Equal(t, want.Holder, got.Holder, name)
			assert.Equal(t, want.Metadata, got.Metadata, name)
			assert.Greater(t, got.Token, maxRedis, "%s: the migrated token is above every Redis token", name)
			assert.Equal(t, rows[name].Token, got.Token, name)
			assert.Equal(t, want.Token, rows[name].RedisToken, name)
			assert.LessOrEqual(t, got.TTL, want.TTL, "%s: clipped to its TTL", name)
			assert.LessOrEqual(t, got.Remaining, want.TTL, "%s: clipped to its TTL", name)
			assert.Less(t, got.TTL, want.TTL, "%s: what was left, not a fresh TTL", name)
			assert.False(t, after.Add(got.Remaining).Before(redisDeadline[name]),
				"%s: cluster deadline (<= %v) before the Redis deadline (>= %v)", name, after.Add(got.Remaining), redisDeadline[name])
		}
		held, err := cl.Get(ctx, "jobs/held", raftlease.ReadOptions{})
		require.NoError(t, err)
		assert.Equal(t, dave.Token, held.Token, "the cluster's own lease is left alone")
		_, err = cl.Get(ctx, "jobs/free", raftlease.ReadOptions{})
		assert.ErrorIs(t, err, raftlease.ErrNotFound, "a free name stays free")
		_, err = cl.Get(ctx, migrateFloorLease, raftlease.ReadOptions{})
		assert.ErrorIs(t, err, raftlease.ErrNotFound, "the floor marker is released")
	})

	t.Run("AgainChangesNothing", func(t *testing.T) {
		tokenBefore, leasesBefore := clusterState()
		res := runLeasenode(t, bin, "migrate", "--from-redis", redisURL, "--addr", c.HTTPAddr(2))
		require.Equal(t, exitRefused, res.status, res.stderr)
		assert.Contains(t, res.stdout, "migrated 0, already present 2, free 1, skipped 1")
		_, leasesAfter := clusterState()
		assert.Equal(t, leasesBefore, leasesAfter, "the migrated leases are left as they are")
		// The floor marker was taken again (two writes, one token), nothing else.
		tokenAfter, _ := clusterState()
		assert.LessOrEqual(t, tokenAfter, tokenBefore+1)
	})

	t.Run("NextTokens", func(t *testing.T) {
		next := func(name string) uint64 {
			t.Helper()
			l, err := cl.Acquire(ctx, raftlease.AcquireRequest{Name: name, Holder: "newcomer", TTL: 10 * time.Second})
			require.NoError(t, err, name)
			require.NoError(t, cl.Release(ctx, raftlease.ReleaseRequest{Name: name, Holder: "newcomer", Token: l.Token}))
			return l.Token
		}
		rows := rowsByName(rep)
		for _, name := range []string{"jobs/a", "jobs/b"} {
			row := rows[name]
			require.NoError(t, cl.Release(ctx, raftlease.ReleaseRequest{Name: name, Holder: row.Holder, Token: row.Token}), name)
			assert.Greater(t, next(name), maxRedis, "%s: after release by the migrated holder", name)
		}
		assert.Greater(t, next("jobs/free"), freeCounter, "a name free in Redis")
		require.NoError(t, cl.Release(ctx, raftlease.ReleaseRequest{Name: "jobs/held", Holder: "dave", Token: dave.Token}))
		assert.Greater(t, next("jobs/held"), maxRedis, "the skipped name, after its cluster holder released it")
		assert.Greater(t, next("never/in/redis"), maxRedis, "the floor is one for all names")
	})

	t.Run("Prefix", func(t *testing.T) {
		res := runLeasenode(t, bin, "migrate", "--from-redis", redisURL, "--prefix", "other:", "--addr", c.HTTPAddr(0), "-o", "json")
		require.Equal(t, 0, res.status, "nothing skipped: %s", res.stderr)
		rep := decodeReport(t, res.stdout)
		assert.Equal(t, "other:", rep.Prefix)
		require.Len(t, rep.Leases, 1)
		assert.Equal(t, migrateMigrated, rep.Leases[0].Status)
		got, err := cl.Get(ctx, "jobs/other", raftlease.ReadOptions{})
		require.NoError(t, err)
		assert.Equal(t, "eve", got.Holder)

		res = runLeasenode(t, bin, "migrate", "--from-redis", redisURL, "--prefix", "empty:", "--addr", c.HTTPAddr(0))
		require.Equal(t, 0, res.status, res.stderr)
		assert.Contains(t, res.stdout, "nothing in Redis under this prefix")
	})

	t.Run("RollbackFloor", func(t *testing.T) {
		// Going back to Redis: acquire with the cluster's highest token as
		// the floor, so that Redis's next tokens are above the cluster's.
		st, err := cl.Status(ctx)
		require.NoError(t, err)
		res := runLeasenode(t, bin, "acquire", "jobs/free", "--holder", "rollback", "--ttl", "100ms",
			"--token-floor", strconv.FormatUint(st.LastToken, 10), "--addr", redisURL, "-o", "json")
		require.Equal(t, 0, res.status, res.stderr)
		var l struct{ Token uint64 }
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &l))
		assert.Greater(t, l.Token, st.LastToken)
	})

	t.Run("Usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"migrate", "--addr", c.HTTPAddr(0)},                                // no --from-redis
			{"migrate", "--from-redis", c.HTTPAddr(0), "--addr", c.HTTPAddr(0)}, // not a redis URL
			{"migrate", "--from-redis", redisURL, "--addr", redisURL},           // the target is Redis
			{"migrate", "--from-redis", redisURL, "--prefix", "bad{", "--addr", c.HTTPAddr(0)},
		} {
			res := runLeasenode(t, bin, args...)
			assert.Equal(t, exitUsage, res.status, "%v: %s", args, res.stderr)
		}
	})
}

func newBridge(t *testing.T, r *testutil.Redis, prefix string) *redisbridge.Store {
	t.Helper()
	s, err := redisbridge.New(redisbridge.Options{Addr: r.Addr(), KeyPrefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func decodeReport(t *testing.T, out string) migrateReport {
	t.Helper()
	var rep migrateReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	return rep
}

func rowsByName(rep migrateReport) map[string]migrateRow {
	out := map[string]migrateRow{}
	for _, r := range rep.Leases {
		out[r.Name] = r
	}
	return out
}

type leasenodeResult struct {
	stdout, stderr string
	status         int
}

// runLeasenode runs the leasenode binary with args, outside any
// LEASENODE_ environment of the developer's.
func runLeasenode(t *testing.T, bin string, args ...string) leasenodeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEASENODE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	res := leasenodeResult{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.status = ee.ExitCode()
	default:
		t.Fatalf("run leasenode %q: %v", args, err)
	}
	t.Logf("leasenode %s -> %d\n%s%s", strings.Join(args, " "), res.status, res.stdout, res.stderr)
	return res
}
