package raftlease

import "time"

// Clock is the source of time for everything in raftlease that reads time.
// Production code uses SystemClock; tests drive a manual clock
// (testutil.ManualClock) or run under testing/synctest.
//
// Only differences between two Now readings of the same Clock are used for
// decisions (Go's monotonic clock for SystemClock). Wall-clock values are
// reported to humans and never compared across machines.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer that raftlease uses.
type Timer interface {
	// C delivers the time once when the timer fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped it.
	Stop() bool
	// Reset changes the timer to fire after d.
	Reset(d time.Duration) bool
}

// SystemClock is the Clock of the running machine.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer returns a wrapped time.NewTimer.
func (SystemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (s systemTimer) C() <-chan time.Time        { return s.t.C }
func (s systemTimer) Stop() bool                 { return s.t.Stop() }
func (s systemTimer) Reset(d time.Duration) bool { return s.t.Reset(d) }

// OrSystem returns c, or SystemClock when c is nil, so a zero Options value
// runs on real time.
func OrSystem(c Clock) Clock {
	if c == nil {
		return SystemClock{}
	}
	return c
}
