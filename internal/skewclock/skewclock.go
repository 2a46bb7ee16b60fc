// Package skewclock is a raftlease.Clock whose rate can be changed while it
// runs, for fault injection: the unsafe test hooks of leasenode (the node's
// leader clock) and the jepsen participants (the elector's clock) run on
// one. At rate 1 it reads exactly as the system clock does.
//
// Readings keep Go's monotonic clock reading, so differences between two
// readings (the only thing raftlease uses for decisions) advance at Rate
// times real time and never jump. A rate change takes effect from the
// moment of the change: the readings stay continuous.
//
// # Goroutines
//
// None. Timers are system timers whose durations are scaled by the rate at
// the time they are set.
package skewclock

import (
	"sync"
	"time"

	"github.com/raftlease/raftlease"
)

// Clock is a raftlease.Clock running at an adjustable rate. The zero value
// is not usable; call New.
type Clock struct {
	mu       sync.Mutex
	baseReal time.Time
	baseRead time.Time
	rate     float64
}

var _ raftlease.Clock = (*Clock)(nil)

// New returns a clock at rate 1 that reads the system time.
func New() *Clock {
	now := time.Now()
	return &Clock{baseReal: now, baseRead: now, rate: 1}
}

// Now returns the clock's reading.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked(time.Now())
}

func (c *Clock) nowLocked(real time.Time) time.Time {
	return c.baseRead.Add(time.Duration(float64(real.Sub(c.baseReal)) * c.rate))
}

// Rate returns the current rate (1 = real time).
func (c *Clock) Rate() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rate
}

// SetRate makes the clock advance at rate times real time from now on. A
// rate of zero or less means 1.
func (c *Clock) SetRate(rate float64) {
	if rate <= 0 {
		rate = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	real := time.Now()
	c.baseRead = c.nowLocked(real)
	c.baseReal = real
	c.rate = rate
}

// real converts a duration on this clock to real time at the current rate.
func (c *Clock) real(d time.Duration) time.Duration {
	c.mu.Lock()
	rate := c.rate
	c.mu.Unlock()
	if rate == 1 || d <= 0 {
		return d
	}
	return time.Duration(float64(d) / rate)
}

// NewTimer returns a timer that fires after d has passed on this clock
// (d / rate of real time, at the rate when it is set).
func (c *Clock) NewTimer(d time.Duration) raftlease.Timer {
	return &timer{c: c, t: time.NewTimer(c.real(d))}
}

type timer struct {
	c *Clock
	t *time.Timer
}

func (t *timer) C() <-chan time.Time        { return t.t.C }
func (t *timer) Stop() bool                 { return t.t.Stop() }
func (t *timer) Reset(d time.Duration) bool { return t.t.Reset(t.c.real(d)) }
