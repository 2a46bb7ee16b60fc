package redisbridge_test

import (
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/redisbridge"
	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/testutil/storetest"
)

// TestCluster runs the conformance suite through the cluster client on a
// one-node Redis Cluster, which enforces the cluster rules (every script's
// keys in one slot, sharded pub/sub) as a larger cluster would.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs on real time (about 12 s)")
	}
	r := testutil.StartRedis(t, testutil.RedisOptions{Cluster: true, NotifyKeyspaceEvents: "Ex"})
	s := newStore(t, r, redisbridge.Options{ClusterAddrs: []string{r.Addr()}})
	if s.KeyPrefix() != redisbridge.DefaultClusterKeyPrefix {
		t.Errorf("KeyPrefix() = %q on Cluster, want %q", s.KeyPrefix(), redisbridge.DefaultClusterKeyPrefix)
	}
	if s.WatchMode() != redisbridge.WatchNotifications {
		t.Errorf("WatchMode() = %v, want keyspace notifications", s.WatchMode())
	}
	c := ctx(t)
	l, err := s.Acquire(c, raftlease.AcquireRequest{Name: "slot-check", Holder: "h", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Every key of the store hashes to the slot of its prefix's tag.
	want, err := r.Client().ClusterKeySlot(c, "raftlease").Result()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := r.Client().Keys(c, "{raftlease}:*").Result() // test only: a tiny keyspace
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 7 {
		t.Errorf("keys %v: want the lease, shadow, token, revision, names, deadlines and events keys", keys)
	}
	for _, k := range keys {
		if slot, _ := r.Client().ClusterKeySlot(c, k).Result(); slot != want {
			t.Errorf("key %q in slot %d, want %d", k, slot, want)
		}
	}
	if err := s.Release(c, raftlease.ReleaseRequest{Name: l.Name, Holder: l.Holder, Token: l.Token}); err != nil {
		t.Fatal(err)
	}

	storetest.Run(t, func(t *testing.T) storetest.Subject {
		return storetest.Subject{Store: s}
	})
}
