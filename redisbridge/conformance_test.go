package redisbridge_test

import (
	"testing"

	"github.com/raftlease/raftlease/redisbridge"
	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/testutil/storetest"
)

// TestConformance runs the Store conformance suite on one store shared by
// every subtest, on real time: Redis expires leases by its own clock, which
// no manual clock can move, so Subject.Advance stays nil and the suite's
// manual-clock subtest (Expiry/UnremovedInvisible) is skipped.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("runs on real time (about 15 s)")
	}
	for _, mode := range []struct {
		name   string
		notify string
	}{{"Polling", ""}, {"Notifications", "Ex"}} {
		t.Run(mode.name, func(t *testing.T) {
			r := testutil.StartRedis(t, testutil.RedisOptions{NotifyKeyspaceEvents: mode.notify})
			s := newStore(t, r, redisbridge.Options{})
			want := redisbridge.WatchPolling
			if mode.notify != "" {
				want = redisbridge.WatchNotifications
			}
			if s.WatchMode() != want {
				t.Fatalf("WatchMode() = %v, want %v", s.WatchMode(), want)
			}
			storetest.Run(t, func(t *testing.T) storetest.Subject {
				return storetest.Subject{Store: s}
			})
		})
	}
}
