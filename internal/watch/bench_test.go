package watch_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/internal/watch"
)

// BenchmarkPublish measures the apply path's cost of publishing one event
// per revision, with no subscriber and with 100 subscribers draining their
// channels (half of them watching everything, half one name that never
// changes). A subscriber that falls behind and is compacted subscribes
// again, as a real watcher would.
func BenchmarkPublish(b *testing.B) {
	for _, subscribers := range []int{0, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", subscribers), func(b *testing.B) {
			h := watch.NewHub(watch.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for i := range subscribers {
				req := raftlease.WatchRequest{}
				if i%2 == 1 {
					req.Name = "idle"
				}
				wg.Go(func() {
					for ctx.Err() == nil {
						ch, err := h.Subscribe(ctx, req)
						if err != nil {
							return // closed or cancelled
						}
						for range ch {
						}
					}
				})
			}
			events := []raftlease.Event{event("jobs/a", 1)}
			b.ReportAllocs()
			rev := uint64(0)
			for b.Loop() {
				rev++
				h.Publish(rev, events)
			}
			b.StopTimer()
			cancel()
			h.Close()
			wg.Wait()
		})
	}
}
