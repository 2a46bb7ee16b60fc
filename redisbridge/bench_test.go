package redisbridge_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/redisbridge"
	"github.com/raftlease/raftlease/testutil"
)

// BenchmarkRedis measures lease operations through the bridge on a local
// redis-server (no persistence), with the workloads of BenchmarkCluster in
// package cluster: acquire+release and renew at 1, 16 and 64 concurrent
// callers, each on its own lease name. Each op is one script (acquire and
// release are two). Reported: ops/s and p50/p99 latency per operation.
//
//	go test ./redisbridge -run '^$' -bench Redis -benchtime 2000x
func BenchmarkRedis(b *testing.B) {
	r := testutil.StartRedis(b)
	for _, callers := range []int{1, 16, 64} {
		for _, op := range []string{"acquire+release", "renew"} {
			b.Run(fmt.Sprintf("op=%s/callers=%d", op, callers), func(b *testing.B) {
				benchOps(b, r, callers, op)
			})
		}
	}
}

func benchOps(b *testing.B, r *testutil.Redis, callers int, op string) {
	s := newStore(b, r, redisbridge.Options{KeyPrefix: fmt.Sprintf("bench-%s-%d-%d:", op, callers, b.N), PoolSize: 64})
	ctx := context.Background()
	tokens := make([]uint64, callers)
	if op == "renew" {
		for i := range callers {
			l, err := s.Acquire(ctx, raftlease.AcquireRequest{Name: fmt.Sprintf("r%d", i), Holder: "bench", TTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			tokens[i] = l.Token
		}
	}
	var next atomic.Int64
	latencies := make([][]time.Duration, callers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("r%d", w)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				switch op {
				case "renew":
					if _, err := s.Renew(ctx, raftlease.RenewRequest{Name: name, Holder: "bench", Token: tokens[w]}); err != nil {
						b.Error(err)
						return
					}
				default:
					l, err := s.Acquire(ctx, raftlease.AcquireRequest{Name: name, Holder: "bench", TTL: time.Minute})
					if err != nil {
						b.Error(err)
						return
					}
					if err := s.Release(ctx, raftlease.ReleaseRequest{Name: name, Holder: "bench", Token: l.Token}); err != nil {
						b.Error(err)
						return
					}
				}
				latencies[w] = append(latencies[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(latencies...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}
