package fsm

import (
	"math"
	"time"
)

// ConsensusClock is the replicated clock every deadline lives on (DESIGN.md,
// "Time", rules 1 and 2). It is part of the state machine's state, so every
// replica computes the same consensus time for the same command.
//
// Within one epoch (one leader's term) consensus time advances exactly as
// that leader's monotonic clock advances from its epoch reading. At a new
// epoch it continues from the last consensus time applied, so the leaderless
// gap pauses it: a failover can delay expiry, never bring it forward, and
// never restart a lease's TTL. It never goes back.
type ConsensusClock struct {
	// Term of the current epoch; zero before the first epoch.
	Term uint64
	// EpochReading is the leader clock reading carried by the epoch command.
	EpochReading int64
	// EpochBase is the consensus time when the epoch was applied.
	EpochBase time.Duration
	// Now is the latest consensus time applied.
	Now time.Duration
}

// maxStep bounds how far one reading may move consensus time past the epoch
// base (about 292 years would overflow; a century is plenty).
const maxStep = 100 * 365 * 24 * time.Hour

// At returns the consensus time of a command stamped with s: the epoch base
// plus the leader's clock advance since its epoch, never less than Now. A
// stamp from another term, or from before the epoch reading, does not move
// the clock.
func (c ConsensusClock) At(s Stamp) time.Duration {
	if c.Term == 0 || s.Term != c.Term || s.Reading < c.EpochReading {
		return c.Now
	}
	delta := uint64(s.Reading) - uint64(c.EpochReading) // no overflow: s.Reading >= EpochReading
	if delta > uint64(maxStep) {
		delta = uint64(maxStep)
	}
	t := c.EpochBase + time.Duration(delta)
	if t < c.EpochBase || t > math.MaxInt64/2 { // saturate far from overflow
		t = math.MaxInt64 / 2
	}
	if t < c.Now {
		return c.Now
	}
	return t
}

// advance moves the clock to the consensus time of s and returns it.
func (c *ConsensusClock) advance(s Stamp) time.Duration {
	c.Now = c.At(s)
	return c.Now
}

// epoch starts a new epoch for s.Term at the current consensus time. It
// reports false, changing nothing, for a term older than the current one.
func (c *ConsensusClock) epoch(s Stamp) bool {
	if s.Term == 0 || s.Term < c.Term {
		return false
	}
	// Within the same term a later epoch takes the time its reading proves
	// has passed and keeps the term's mapping. Rebasing on its reading would
	// let consensus time run ahead of the leader's clock whenever that
	// reading is older than one already applied (early expiry).
	if s.Term == c.Term {
		c.Now = c.At(s)
		return true
	}
	c.Term = s.Term
	c.EpochReading = s.Reading
	c.EpochBase = c.Now
	return true
}
