package redisbridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/redisbridge"
	"github.com/raftlease/raftlease/testutil"
)

// TestNotificationModes checks which mode each configuration picks, and
// that keyspace notifications alone (on a clock that never fires a timer)
// bring the expired event to a watch.
func TestNotificationModes(t *testing.T) {
	cases := []struct {
		name   string
		server string
		mode   redisbridge.NotifyMode
		want   redisbridge.WatchMode
		flags  string // the server's flags afterwards, when checked
	}{
		{"auto, server without notifications", "", redisbridge.NotifyAuto, redisbridge.WatchPolling, ""},
		{"auto, keyevent notifications", "Ex", redisbridge.NotifyAuto, redisbridge.WatchNotifications, ""},
		{"auto, keyspace notifications", "Kx", redisbridge.NotifyAuto, redisbridge.WatchNotifications, ""},
		{"auto, notifications without expired events", "Eg", redisbridge.NotifyAuto, redisbridge.WatchPolling, ""},
		{"off, server with notifications", "Ex", redisbridge.NotifyOff, redisbridge.WatchPolling, ""},
		{"enable, server without notifications", "", redisbridge.NotifyEnable, redisbridge.WatchNotifications, "xE"},
		{"enable keeps the server's flags", "Kg", redisbridge.NotifyEnable, redisbridge.WatchNotifications, "gxKE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testutil.StartRedis(t, testutil.RedisOptions{NotifyKeyspaceEvents: tc.server})
			// A manual clock that never moves: the store's timers never
			// fire, so only a notification can make it notice an expiry.
			s := newStore(t, r, redisbridge.Options{Notifications: tc.mode, Clock: testutil.NewManualClock()})
			if s.WatchMode() != tc.want {
				t.Fatalf("WatchMode() = %v, want %v", s.WatchMode(), tc.want)
			}
			c := ctx(t)
			if tc.flags != "" {
				got, err := r.Client().ConfigGet(c, "notify-keyspace-events").Result()
				if err != nil {
					t.Fatal(err)
				}
				if f := got["notify-keyspace-events"]; !sameLetters(f, tc.flags) {
					t.Errorf("server flags %q, want the letters of %q", f, tc.flags)
				}
			}
			if tc.want != redisbridge.WatchNotifications {
				return
			}
			wctx, cancel := context.WithCancel(c)
			defer cancel()
			w, err := s.Watch(wctx, raftlease.WatchRequest{Name: "job"})
			if err != nil {
				t.Fatal(err)
			}
			l, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h", TTL: raftlease.MinTTL})
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.After(10 * time.Second)
			for {
				select {
				case ev := <-w:
					if ev.Type == raftlease.EventAcquired {
						continue
					}
					if ev.Type != raftlease.EventExpired || ev.Lease.Token != l.Token {
						t.Fatalf("got %v of token %d, want expired of %d", ev.Type, ev.Lease.Token, l.Token)
					}
					return
				case <-deadline:
					t.Fatal("no expired event from the keyspace notification")
				}
			}
		})
	}
}

func sameLetters(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, c := range b {
		if !strings.ContainsRune(a, c) {
			return false
		}
	}
	return true
}
