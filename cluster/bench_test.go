package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/cluster"
	"github.com/raftlease/raftlease/testutil"
)

// BenchmarkCluster measures lease operations on a 3-node in-process cluster
// with fsync on, sent to the leader, at several concurrencies, with group
// commit on (batch=256, MaxInflight 2) and off (batch=1: one operation per
// entry, up to 64 entries in flight, so raft's own pipelining and log
// batching still apply). Each op is one Raft-committed
// write. Reported: ops/s and p50/p99 latency per operation.
//
//	go test ./cluster -run '^$' -bench Cluster -benchtime 2000x
func BenchmarkCluster(b *testing.B) {
	for _, batch := range []int{256, 1} {
		for _, callers := range []int{1, 16, 64} {
			for _, op := range []string{"acquire+release", "renew"} {
				b.Run(fmt.Sprintf("op=%s/batch=%d/callers=%d", op, batch, callers), func(b *testing.B) {
					benchOps(b, batch, callers, op)
				})
			}
		}
	}
}

func benchOps(b *testing.B, batch, callers int, op string) {
	c := testutil.NewCluster(b, 3, testutil.ClusterOptions{Edit: func(_ int, o *cluster.Options) {
		o.MaxBatch = batch
		if batch == 1 {
			// Without group commit, let raft pipeline every caller's entry.
			o.MaxInflight = 64
		}
		o.SnapshotThreshold = 1 << 20
	}})
	node := c.Node(c.Leader())
	ctx := context.Background()
	tokens := make([]uint64, callers)
	if op == "renew" {
		for i := range callers {
			l, err := node.Acquire(ctx, raftlease.AcquireRequest{Name: fmt.Sprintf("r%d", i), Holder: "bench", TTL: time.Hour})
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
					if _, err := node.Renew(ctx, raftlease.RenewRequest{Name: name, Holder: "bench", Token: tokens[w]}); err != nil {
						b.Error(err)
						return
					}
				default:
					l, err := node.Acquire(ctx, raftlease.AcquireRequest{Name: name, Holder: "bench", TTL: time.Minute})
					if err != nil {
						b.Error(err)
						return
					}
					if err := node.Release(ctx, raftlease.ReleaseRequest{Name: name, Holder: "bench", Token: l.Token}); err != nil {
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
