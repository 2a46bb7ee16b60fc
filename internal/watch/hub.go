package watch

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/raftlease/raftlease"
)

// Defaults for Options.
const (
	// DefaultRetain is how many recent events a hub keeps by default.
	DefaultRetain = 4096
	// DefaultBuffer is the default capacity of a subscriber's channel.
	DefaultBuffer = 256
)

// scanLimit bounds how many retained events a subscriber examines per hold
// of the hub's lock, so that Publish never waits long behind a subscriber
// scanning a long stretch of events its filter rejects.
const scanLimit = 256

// Options size a Hub. The zero value gives the defaults.
type Options struct {
	// Retain is how many of the most recent events the hub keeps so that a
	// watch can resume from a revision, and so that a subscriber whose
	// consumer is briefly slow can catch up. It should exceed the largest
	// number of events one revision carries: a revision that does not fit
	// is never complete in the ring, so live subscribers are compacted by
	// it. Zero or negative means DefaultRetain.
	Retain int
	// Buffer is the capacity of each subscriber's channel. Zero or negative
	// means DefaultBuffer.
	Buffer int
}

// Hub fans the events of applied revisions out to subscribers. Create it
// with NewHub and Close it when done. All methods are safe for concurrent
// use, except that Publish and Reset must be called from one goroutine at a
// time (the apply path).
type Hub struct {
	retain int
	buffer int
	done   chan struct{} // closed by Close; every subscriber goroutine selects on it
	wg     sync.WaitGroup

	mu sync.Mutex
	// ring holds the retained events: the event with sequence number s is at
	// ring[s%retain] for tail <= s < head. It grows up to retain entries.
	ring []raftlease.Event
	head uint64 // sequence number the next published event gets
	tail uint64 // sequence number of the oldest retained event
	// revision is the last revision published or reset to.
	revision uint64
	// oldest is the oldest revision whose events are all retained: every
	// event with Revision >= oldest is in the ring.
	oldest uint64
	// generation counts Resets; a subscriber from an older generation has
	// lost its history.
	generation uint64
	// wake is closed and replaced by Publish or Reset when waiting is set,
	// that is when some subscriber took it to wait on since the last swap.
	wake    chan struct{}
	waiting bool
	closed  bool
}

// NewHub returns a hub at revision 0 with no history. It starts no
// goroutine; each Subscribe starts one.
func NewHub(opts Options) *Hub {
	if opts.Retain <= 0 {
		opts.Retain = DefaultRetain
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	return &Hub{
		retain: opts.Retain,
		buffer: opts.Buffer,
		done:   make(chan struct{}),
		oldest: 1,
		wake:   make(chan struct{}),
	}
}

// Reset restarts the hub's history at revision rev, as when the store's
// state is replaced by a snapshot taken at rev: the hub keeps no event, its
// revision becomes rev, and a Subscribe with FromRevision in (0, rev] fails
// with ErrCompacted. Every open subscription has lost its place in the
// history, so each receives an EventCompacted event carrying rev+1 and its
// channel closes. Later Publish calls carry revisions above rev.
func (h *Hub) Reset(rev uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.revision = rev
	clear(h.ring) // drop references; tail = head marks every slot stale
	h.tail = h.head
	h.oldest = rev + 1
	h.generation++
	h.wakeLocked()
}

// Publish records that revision rev has been applied with the given events,
// which may be none (an epoch, a tick, a refused command). Each event is
// copied with its Revision set to rev; the caller may reuse the slice.
// Publish never waits for a subscriber: a subscriber that falls more than
// Retain events behind is compacted instead.
//
// Revisions must not decrease from one Publish (or Reset) to the next;
// Publish panics if rev is below the hub's revision, because such a history
// could no longer be served in order and without gaps.
func (h *Hub) Publish(rev uint64, events []raftlease.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if rev < h.revision {
		panic(fmt.Sprintf("watch: Publish of revision %d after revision %d", rev, h.revision))
	}
	h.revision = rev
	if len(events) == 0 {
		return
	}
	retain := uint64(h.retain)
	for _, ev := range events {
		ev.Revision = rev
		if h.head-h.tail == retain {
			// The ring is full: the oldest event goes, and with it the
			// completeness of its revision.
			h.oldest = max(h.oldest, h.ring[h.tail%retain].Revision+1)
			h.tail++
		}
		if slot := h.head % retain; slot < uint64(len(h.ring)) {
			h.ring[slot] = ev
		} else {
			h.ring = append(h.ring, ev)
		}
		h.head++
	}
	h.wakeLocked()
}

// wakeLocked wakes every subscriber waiting for news.
func (h *Hub) wakeLocked() {
	if h.waiting {
		close(h.wake)
		h.wake = make(chan struct{})
		h.waiting = false
	}
}

// Revision returns the last revision published or reset to.
func (h *Hub) Revision() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.revision
}

// Subscribe opens a subscription to the events req selects and returns its
// channel, of capacity Options.Buffer.
//
// With req.FromRevision zero, the channel carries the events published
// after Subscribe took its place in the history, which is before it
// returns. With FromRevision f > 0, it carries every event with revision
// >= f, retained ones first and then live ones, in order, without gaps or
// duplicates; f may lie beyond the current revision.
//
// The channel closes when ctx ends or the hub closes. If the consumer falls
// so far behind that events it has not received are no longer retained (or
// Reset discards them), the channel delivers one EventCompacted event whose
// Revision is the oldest revision then retained, and closes.
//
// Errors: a request that fails req.Validate (matching ErrInvalidArgument);
// ErrCompacted, wrapped with the oldest retained revision, when f > 0 and
// the events from f are no longer all retained; ErrClosed after Close;
// ctx.Err() when ctx has already ended.
func (h *Hub) Subscribe(ctx context.Context, req raftlease.WatchRequest) (<-chan raftlease.Event, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, raftlease.ErrClosed
	}
	s := &subscriber{req: req, generation: h.generation, cursor: h.head}
	if f := req.FromRevision; f != 0 {
		if f < h.oldest {
			return nil, fmt.Errorf("%w: watch from revision %d, but the oldest retained revision is %d", raftlease.ErrCompacted, f, h.oldest)
		}
		s.cursor = h.firstFromLocked(f)
	}
	out := make(chan raftlease.Event, h.buffer)
	h.wg.Go(func() { h.serve(ctx, s, out) })
	return out, nil
}

// firstFromLocked returns the sequence number of the first retained event
// with revision >= rev, or head if there is none.
func (h *Hub) firstFromLocked(rev uint64) uint64 {
	retain := uint64(h.retain)
	n := sort.Search(int(h.head-h.tail), func(i int) bool {
		return h.ring[(h.tail+uint64(i))%retain].Revision >= rev
	})
	return h.tail + uint64(n)
}

// Close closes every subscriber channel, waits for every subscriber
// goroutine to end, and makes later Subscribe calls fail with ErrClosed.
// Publish, Reset and Revision keep working. Close is idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// subscriber is one subscription's place in the history. Only its own
// goroutine touches it after Subscribe.
type subscriber struct {
	req        raftlease.WatchRequest
	generation uint64 // the hub generation its cursor belongs to
	cursor     uint64 // sequence number of the next event to examine
}

// step is what a subscriber goroutine learns from one look at the hub.
type step int

const (
	stepSend step = iota // send the batch, then look again
	stepWait             // caught up: wait on the wake channel
	stepLost             // events it needs are gone: send EventCompacted
	stepStop             // the hub is closed
)

// serve is a subscriber's goroutine: it copies the events it needs out of
// the ring under the lock and sends them without it, so only this goroutine
// ever waits for the consumer.
func (h *Hub) serve(ctx context.Context, s *subscriber, out chan<- raftlease.Event) {
	defer close(out)
	var batch []raftlease.Event
	for ctx.Err() == nil {
		var (
			what   step
			wake   <-chan struct{}
			oldest uint64
		)
		batch, what, wake, oldest = h.next(s, batch[:0])
		switch what {
		case stepStop:
			return
		case stepLost:
			select {
			case out <- raftlease.Event{Type: raftlease.EventCompacted, Revision: oldest}:
			case <-ctx.Done():
			case <-h.done:
			}
			return
		case stepWait:
			select {
			case <-wake:
			case <-ctx.Done():
				return
			case <-h.done:
				return
			}
		case stepSend:
			for i := range batch {
				select {
				case out <- batch[i]:
				case <-ctx.Done():
					return
				case <-h.done:
					return
				}
			}
			clear(batch) // drop the copies' references until the next batch
		}
	}
}

// next advances s through at most scanLimit retained events, appending the
// ones it selects to batch, and says what to do next.
func (h *Hub) next(s *subscriber, batch []raftlease.Event) ([]raftlease.Event, step, <-chan struct{}, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return batch, stepStop, nil, 0
	case s.generation != h.generation || s.cursor < h.tail:
		return batch, stepLost, nil, h.oldest
	case s.cursor == h.head:
		h.waiting = true
		return batch, stepWait, h.wake, 0
	}
	retain := uint64(h.retain)
	end := min(h.head, s.cursor+scanLimit)
	for ; s.cursor < end; s.cursor++ {
		ev := &h.ring[s.cursor%retain]
		if ev.Revision >= s.req.FromRevision && s.req.Matches(ev.Lease.Name) {
			batch = append(batch, *ev)
		}
	}
	return batch, stepSend, nil, 0
}
