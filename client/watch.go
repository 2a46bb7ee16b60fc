package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/transport"
)

const (
	// watchWait is the wait of each blocking query of a watch; the server
	// may shorten it (its MaxWait).
	watchWait = 30 * time.Second
	// watchBuffer is the capacity of a watch channel.
	watchBuffer = 256
)

// Watch implements raftlease.Store over the blocking query GET /v1/events.
//
// Before it returns, Watch asks the cluster once (with retries, bounded
// like any call): with req.FromRevision zero the server fixes "now" as the
// revision of a linearizable List, so every change after Watch returns is
// delivered; with FromRevision f > 0 it checks that f is still retained and
// returns raftlease.ErrCompacted at once when it is not.
//
// Then one goroutine repeats the query, each from the revision the last
// answer reached, and delivers the events in order on a channel of
// capacity 256. A failed query is retried on the next endpoint after a
// backoff, from the same revision, so a failover loses and repeats
// nothing. The channel closes when ctx ends or the client closes; when the
// server reports the revision compacted (the consumer or the client fell
// too far behind), it delivers an EventCompacted event (Revision: the
// oldest retained revision when the server said, else 0) and closes.
func (c *Client) Watch(ctx context.Context, req raftlease.WatchRequest) (<-chan raftlease.Event, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if c.closed() {
		return nil, raftlease.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The first query, answered at once (wait 0): it fixes the starting
	// revision and reports compaction synchronously.
	var first transport.EventsJSON
	q := selection(req)
	if req.FromRevision == 0 {
		q.Set("index", "0")
	} else {
		q.Set("from", strconv.FormatUint(req.FromRevision, 10))
	}
	q.Set("wait", "0s")
	if err := c.do(ctx, &request{op: "watch", method: http.MethodGet, path: "/v1/events", query: q, out: &first}); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	out := make(chan raftlease.Event, watchBuffer)
	after := req.FromRevision - min(req.FromRevision, 1) // the first answer's events are above it
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer stop()
		defer cancel()
		defer close(out)
		w := &watcher{c: c, req: req, out: out}
		if next, ok := w.deliver(wctx, after, first); ok {
			w.loop(wctx, next)
		}
	}()
	return out, nil
}

// watcher is one watch's goroutine state.
type watcher struct {
	c   *Client
	req raftlease.WatchRequest
	out chan<- raftlease.Event
}

// selection is the query selecting the leases of req.
func selection(req raftlease.WatchRequest) url.Values {
	q := url.Values{}
	if req.Name != "" {
		q.Set("name", req.Name)
	}
	if req.Prefix != "" {
		q.Set("prefix", req.Prefix)
	}
	return q
}

// eventsQuery selects the leases of req and asks for events above after
// (after 0: from revision 1, since index=0 means "from now").
func eventsQuery(req raftlease.WatchRequest, after uint64) url.Values {
	q := selection(req)
	if after > 0 {
		q.Set("index", strconv.FormatUint(after, 10))
	} else {
		q.Set("from", "1")
	}
	return q
}

// loop repeats the blocking query from after until ctx ends or the server
// reports compaction.
func (w *watcher) loop(ctx context.Context, after uint64) {
	failures := 0
	for ctx.Err() == nil {
		i := w.c.preferred()
		q := eventsQuery(w.req, after)
		q.Set("wait", watchWait.String())
		var ans transport.EventsJSON
		err := w.c.once(ctx, i, &request{op: "watch", method: http.MethodGet, path: "/v1/events", query: q, wait: watchWait, out: &ans})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, raftlease.ErrCompacted) {
				w.send(ctx, raftlease.Event{Type: raftlease.EventCompacted})
				return
			}
			failures++
			w.c.rotate(i)
			w.c.followHint(err)
			pause := retryPause(failures)
			pause = pause/2 + rand.N(pause/2+1)
			w.c.log.Warn("watch query failed; retrying", "endpoint", w.c.endpoints[i].Host, "index", after, "pause", pause, "error", err)
			timer := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			continue
		}
		failures = 0
		w.c.prefer(i)
		next, ok := w.deliver(ctx, after, ans)
		if !ok {
			return
		}
		after = next
	}
}

// deliver sends the events of ans above after, in order, and returns the
// revision to continue from; ok is false when the watch is over (ctx
// ended, or compaction was delivered).
func (w *watcher) deliver(ctx context.Context, after uint64, ans transport.EventsJSON) (next uint64, ok bool) {
	for _, ej := range ans.Events {
		ev, err := ej.ToEvent()
		if err != nil {
			w.c.log.Warn("watch: skipping an event of unknown type", "type", ej.Type, "index", ej.Revision)
			continue
		}
		if ev.Type == raftlease.EventCompacted {
			w.send(ctx, ev)
			return 0, false
		}
		if ev.Revision <= after {
			continue // never deliver twice
		}
		if !w.send(ctx, ev) {
			return 0, false
		}
	}
	return max(after, ans.Index), true
}

func (w *watcher) send(ctx context.Context, ev raftlease.Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
