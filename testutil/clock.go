// Package testutil holds helpers for raftlease's tests: a manual clock
// (clock.go), in-process clusters of real nodes (cluster.go) with HTTP
// servers in front (httpcluster.go), a launcher for real leasenode
// processes (leasenode.go) and one for a real redis-server (redis.go).
// Only _test.go files import it.
package testutil

import (
	"sort"
	"sync"
	"time"

	"github.com/raftlease/raftlease"
)

// ManualClock is a raftlease.Clock that moves only when Advance is called.
// Timers fire, in deadline order, during the Advance that reaches them.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
	// changed is closed and replaced whenever the set of timers changes, so
	// tests can wait for a goroutine to arm its next timer.
	changed chan struct{}
}

var _ raftlease.Clock = (*ManualClock)(nil)

// NewManualClock returns a clock set to a fixed, arbitrary instant.
func NewManualClock() *ManualClock {
	return &ManualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock reaches now+d.
func (c *ManualClock) NewTimer(d time.Duration) raftlease.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{clock: c, ch: make(chan time.Time, 1)}
	c.armLocked(t, d)
	return t
}

// Advance moves the clock forward by d, firing every timer whose deadline it
// reaches, in deadline order.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		t := c.nextDueLocked(end)
		if t == nil {
			break
		}
		c.now = t.deadline
		c.removeLocked(t)
		select {
		case t.ch <- c.now:
		default:
		}
	}
	c.now = end
	c.mu.Unlock()
}

// Timers returns how many timers are armed.
func (c *ManualClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitForTimers blocks until at least n timers are armed or the timeout
// passes (real time), and reports whether they are.
func (c *ManualClock) WaitForTimers(n int, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		ok, ch := len(c.timers) >= n, c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

func (c *ManualClock) nextDueLocked(end time.Time) *manualTimer {
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].deadline.Before(c.timers[j].deadline) })
	if len(c.timers) > 0 && !c.timers[0].deadline.After(end) {
		return c.timers[0]
	}
	return nil
}

func (c *ManualClock) armLocked(t *manualTimer, d time.Duration) {
	t.deadline = c.now.Add(d)
	t.armed = true
	c.timers = append(c.timers, t)
	c.notifyLocked()
}

func (c *ManualClock) removeLocked(t *manualTimer) bool {
	if !t.armed {
		return false
	}
	t.armed = false
	for i, x := range c.timers {
		if x == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			break
		}
	}
	c.notifyLocked()
	return true
}

func (c *ManualClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

type manualTimer struct {
	clock    *ManualClock
	ch       chan time.Time
	deadline time.Time
	armed    bool
}

func (t *manualTimer) C() <-chan time.Time { return t.ch }

func (t *manualTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	return t.clock.removeLocked(t)
}

func (t *manualTimer) Reset(d time.Duration) bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.clock.removeLocked(t)
	// Drain a stale fire so the next receive sees the new deadline.
	select {
	case <-t.ch:
	default:
	}
	t.clock.armLocked(t, d)
	return was
}
