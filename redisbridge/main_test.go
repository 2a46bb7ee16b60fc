package redisbridge_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/raftlease/raftlease/redisbridge"
	"github.com/raftlease/raftlease/testutil"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the restart tests cause many.
	if os.Getenv("RAFTLEASE_TEST_LOG") == "" {
		redis.SetLogger(quietLogger{})
	}
	goleak.VerifyTestMain(m)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// newStore starts a store on r, closed at cleanup. opts.Addr is filled in.
func newStore(t testing.TB, r *testutil.Redis, opts redisbridge.Options) *redisbridge.Store {
	t.Helper()
	if opts.Addr == "" && len(opts.ClusterAddrs) == 0 && opts.MasterName == "" {
		opts.Addr = r.Addr()
	}
	s, err := redisbridge.New(opts)
	if err != nil {
		t.Fatalf("redisbridge.New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// ctx returns a context for one test's calls.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// eventually polls cond every 5 ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
