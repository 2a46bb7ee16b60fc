package fsm_test

// The consensus clock (DESIGN.md "Time", rules 1 and 2): one replicated
// clock, continuous across leaders, that never goes back, pauses for the
// leaderless gap, and never restarts a lease's TTL on failover.

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
)

// century is how far one leader's reading may move consensus time past its
// epoch base (fsm's maxStep).
const century = 100 * 365 * 24 * time.Hour

type clockStep struct {
	op       string // "epoch", "tick" (a command) or "read" (FSM.Now, no change)
	term     uint64
	reading  int64
	want     time.Duration // consensus time after the step (or read)
	rejected bool          // for epochs
}

func epochAt(term uint64, reading int64, want time.Duration) clockStep {
	return clockStep{op: "epoch", term: term, reading: reading, want: want}
}

func tickAt(term uint64, reading int64, want time.Duration) clockStep {
	return clockStep{op: "tick", term: term, reading: reading, want: want}
}

func readAt(term uint64, reading int64, want time.Duration) clockStep {
	return clockStep{op: "read", term: term, reading: reading, want: want}
}

func ns(d time.Duration) int64 { return int64(d) }

func TestConsensusClock(t *testing.T) {
	tests := []struct {
		name  string
		steps []clockStep
	}{
		{"before the first epoch time stands still", []clockStep{
			tickAt(0, ns(5*s1), 0),
			tickAt(1, ns(5*s1), 0),
			readAt(1, ns(hour), 0),
			epochAt(1, ns(100*s1), 0),
			tickAt(1, ns(103*s1), 3*s1),
		}},
		{"within a term it follows the leader's clock from the epoch reading", []clockStep{
			epochAt(1, ns(10*s1), 0),
			tickAt(1, ns(11*s1), s1),
			readAt(1, ns(12*s1), 2*s1),
			tickAt(1, ns(15*s1+500*ms), 5*s1+500*ms),
			tickAt(1, ns(15*s1+500*ms)+1, 5*s1+500*ms+1),
		}},
		{"a reading older than one applied does not move it back", []clockStep{
			epochAt(1, 0, 0),
			tickAt(1, ns(5*s1), 5*s1),
			tickAt(1, ns(3*s1), 5*s1),
			readAt(1, ns(4*s1), 5*s1),
			tickAt(1, ns(6*s1), 6*s1),
		}},
		{"a reading before the epoch reading does not move it", []clockStep{
			epochAt(1, ns(10*s1), 0),
			tickAt(1, ns(9*s1), 0),
			tickAt(1, math.MinInt64, 0),
			tickAt(1, ns(10*s1), 0),
		}},
		{"a new leader whose clock reads far ahead continues from the last consensus time", []clockStep{
			epochAt(1, 0, 0),
			tickAt(1, ns(5*s1), 5*s1),
			epochAt(2, ns(1000*hour), 5*s1),
			readAt(2, ns(1000*hour), 5*s1),
			tickAt(2, ns(1000*hour+s1), 6*s1),
		}},
		{"a new leader whose clock reads far behind continues from the last consensus time", []clockStep{
			epochAt(1, 0, 0),
			tickAt(1, ns(5*s1), 5*s1),
			epochAt(2, ns(-1000*hour), 5*s1),
			tickAt(2, ns(-1000*hour+s1), 6*s1),
		}},
		{"the leaderless gap pauses it", []clockStep{
			epochAt(1, 0, 0),
			tickAt(1, ns(5*s1), 5*s1),
			// The old leader's clock runs on to 30s, but nothing of it commits;
			// the next leader's epoch comes 25s of real time later.
			epochAt(2, ns(777*s1), 5*s1),
			tickAt(2, ns(778*s1), 6*s1),
		}},
		{"stamps of an older term do not move it", []clockStep{
			epochAt(1, 0, 0),
			tickAt(1, ns(5*s1), 5*s1),
			epochAt(2, ns(100*s1), 5*s1),
			tickAt(1, ns(1000*s1), 5*s1),
			tickAt(2, ns(101*s1), 6*s1),
			tickAt(1, math.MaxInt64, 6*s1),
			readAt(1, math.MaxInt64, 6*s1),
		}},
		{"a stamp of a term whose epoch is not applied yet does not move it", []clockStep{
			epochAt(1, 0, 0),
			tickAt(1, ns(5*s1), 5*s1),
			tickAt(2, ns(100*hour), 5*s1),
			readAt(2, ns(100*hour), 5*s1),
			epochAt(2, ns(100*hour), 5*s1),
		}},
		{"an epoch of an older term is refused and changes nothing", []clockStep{
			epochAt(3, 0, 0),
			tickAt(3, ns(5*s1), 5*s1),
			{op: "epoch", term: 2, reading: ns(-hour), want: 5 * s1, rejected: true},
			{op: "epoch", term: 0, reading: ns(hour), want: 5 * s1, rejected: true},
			tickAt(2, ns(-hour+s1), 5*s1),
			tickAt(3, ns(6*s1), 6*s1),
		}},
		{"a retried epoch of the same term takes the time its reading proves", []clockStep{
			epochAt(1, 0, 0),
			tickAt(1, ns(5*s1), 5*s1),
			epochAt(1, ns(7*s1), 7*s1),
			tickAt(1, ns(8*s1), 8*s1),
		}},
		{"an epoch of the same term with an older reading does not speed the clock up", []clockStep{
			epochAt(1, ns(100*s1), 0),
			tickAt(1, ns(200*s1), 100*s1),
			epochAt(1, ns(150*s1), 100*s1),
			// The leader's clock advanced 110s since its first epoch.
			tickAt(1, ns(210*s1), 110*s1),
			epochAt(1, ns(50*s1), 110*s1),
			tickAt(1, ns(211*s1), 111*s1),
		}},
		{"extreme readings", []clockStep{
			epochAt(1, math.MinInt64, 0),
			tickAt(1, math.MinInt64+ns(s1), s1),
			epochAt(2, math.MaxInt64, s1),
			tickAt(2, math.MaxInt64, s1),
			tickAt(2, math.MinInt64, s1),
			epochAt(3, -1, s1),
			tickAt(3, 1, s1+2),
		}},
		{"a huge jump saturates far from overflow", []clockStep{
			epochAt(1, math.MinInt64, 0),
			tickAt(1, math.MaxInt64, century),
			epochAt(2, 0, century),
			tickAt(2, math.MaxInt64, math.MaxInt64/2),
			epochAt(3, math.MinInt64, math.MaxInt64/2),
			tickAt(3, math.MaxInt64, math.MaxInt64/2),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New()
			var index uint64
			prev := time.Duration(0)
			for i, st := range tt.steps {
				stamp := fsm.Stamp{Term: st.term, Reading: st.reading}
				var got time.Duration
				switch st.op {
				case "read":
					before := f.Hash()
					got = f.Now(stamp)
					if f.Hash() != before {
						t.Fatalf("step %d: Now changed the state", i)
					}
				case "epoch":
					index++
					res := f.Apply(index, fsm.Epoch(stamp))
					if st.rejected != (res.Err != nil) {
						t.Fatalf("step %d: epoch term %d: err %v, want rejected=%v", i, st.term, res.Err, st.rejected)
					}
					if res.Err != nil && !errors.Is(res.Err, raftlease.ErrInvalidArgument) {
						t.Fatalf("step %d: epoch refused with %v, want ErrInvalidArgument", i, res.Err)
					}
					got = f.Clock().Now
				case "tick":
					index++
					if res := f.Apply(index, fsm.Tick(stamp)); res.Err != nil {
						t.Fatalf("step %d: tick: %v", i, res.Err)
					}
					got = f.Clock().Now
				}
				if got != st.want {
					t.Fatalf("step %d (%s term %d reading %d): consensus time %v (%d), want %v\nclock %+v",
						i, st.op, st.term, st.reading, got, int64(got), st.want, f.Clock())
				}
				if f.Clock().Now < prev {
					t.Fatalf("step %d: consensus time went back from %v to %v", i, prev, f.Clock().Now)
				}
				prev = f.Clock().Now
			}
			// Whatever the clock did, a lease still gets its whole TTL.
			index++
			res := f.Apply(index, fsm.Acquire(fsm.Stamp{Term: f.Clock().Term, Reading: f.Clock().EpochReading},
				raftlease.AcquireRequest{Name: "a", Holder: "h", TTL: raftlease.MaxTTL}))
			if res.Err != nil {
				t.Fatalf("acquire at the end: %v", res.Err)
			}
			if l := res.Lease; l.Remaining != raftlease.MaxTTL || l.Deadline != f.Clock().Now+raftlease.MaxTTL || l.Deadline < 0 {
				t.Fatalf("lease at consensus time %v: %s", f.Clock().Now, formatLease(l))
			}
		})
	}
}

// TestLeaseTimeSurvivesLeaderChanges is the property of DESIGN.md "Time"
// rule 2. A lease granted at consensus time C with TTL T, followed by any
// number of leader changes whose clocks read anything (ahead, behind,
// negative, near the int64 limits), interleaved with late stamps of older
// terms, out-of-order readings and retried epochs, where leader i's clock
// advances by d_i during its term, has exactly
//
//	remaining = max(T - sum(d_i), 0)
//
// at every step: a leader change neither resets nor extends the TTL, and no
// new leader's clock jump shortens it. Consensus time never goes back.
func TestLeaseTimeSurvivesLeaderChanges(t *testing.T) {
	rng := newRand(t)
	const maxAdvance = int64(20 * time.Second)
	// wild returns a leader clock reading from which the leader can still
	// advance maxAdvance*4 without overflowing.
	wild := func(prev int64) int64 {
		top := int64(math.MaxInt64) - 4*maxAdvance
		switch rng.IntN(8) {
		case 0:
			return 0
		case 1:
			return math.MinInt64 + rng.Int64N(maxAdvance)
		case 2:
			return top - rng.Int64N(maxAdvance)
		case 3:
			return -rng.Int64N(int64(1000 * time.Hour))
		case 4: // just behind or ahead of the previous leader's clock
			d := rng.Int64N(2*maxAdvance) - maxAdvance
			if d < 0 && prev < math.MinInt64-d {
				return math.MinInt64
			}
			return min(prev+d, top)
		default:
			v := int64(rng.Uint64())
			return min(v, top)
		}
	}
	trials := 2000
	if testing.Short() {
		trials = 200
	}
	for trial := range trials {
		f := fsm.New()
		var index uint64
		apply := func(c fsm.Command) fsm.Result {
			index++
			return f.Apply(index, c)
		}
		var elapsed time.Duration // sum of the d_i so far (including d_0 before the grant)
		var c0, ttl time.Duration
		term := uint64(1 + rng.IntN(3))
		epochReading := wild(0)
		var history []string
		logf := func(format string, args ...any) { history = append(history, fmt.Sprintf(format, args...)) }
		fail := func(format string, args ...any) {
			t.Helper()
			for _, h := range history {
				t.Log(h)
			}
			t.Fatalf("trial %d: "+format, append([]any{trial}, args...)...)
		}
		prevNow := time.Duration(0)
		check := func(granted bool) {
			t.Helper()
			now := f.Clock().Now
			if now < prevNow {
				fail("consensus time went back from %v to %v", prevNow, now)
			}
			prevNow = now
			if now != elapsed {
				fail("consensus time %v, want the sum of leader clock advances %v", now, elapsed)
			}
			if !granted {
				return
			}
			want := max(ttl-(elapsed-c0), 0)
			l, err := f.Get("a", now)
			switch {
			case want > 0 && err != nil:
				fail("lease gone with %v of its TTL %v left: %v", want, ttl, err)
			case want > 0 && l.Remaining != want:
				fail("remaining %v, want %v (TTL %v minus %v of leader time since the grant)", l.Remaining, want, ttl, elapsed-c0)
			case want == 0 && err == nil:
				fail("lease alive with remaining %v after its TTL %v elapsed (%v)", l.Remaining, ttl, elapsed-c0)
			}
		}
		// advance moves the leader of term by d from base in a few steps,
		// some readings out of order, with late stamps of older terms and
		// retried epochs in between.
		advance := func(term uint64, base int64, d time.Duration, granted bool) {
			t.Helper()
			done := time.Duration(0)
			for done < d {
				step := min(d-done, time.Duration(rng.Int64N(int64(d)+1)))
				done += step
				switch rng.IntN(6) {
				case 0: // a late stamp of an older term: nothing moves
					old := uint64(rng.Int64N(int64(term)))
					logf("tick of old term %d reading %d", old, wild(base))
					apply(fsm.Tick(fsm.Stamp{Term: old, Reading: wild(base)}))
				case 1: // a reading older than one applied (a slow proposal)
					logf("tick term %d reading %d (older)", term, base+int64(done)-rng.Int64N(int64(done)+1))
					apply(fsm.Tick(fsm.Stamp{Term: term, Reading: base + int64(done) - rng.Int64N(int64(done)+1)}))
				case 2: // a retried epoch of this term, at an older reading
					r := base + rng.Int64N(int64(done)+1)
					logf("epoch term %d reading %d (retried)", term, r)
					if res := apply(fsm.Epoch(fsm.Stamp{Term: term, Reading: r})); res.Err != nil {
						fail("retried epoch: %v", res.Err)
					}
				}
				logf("tick term %d reading %d (+%v)", term, base+int64(done), done)
				if res := apply(fsm.Tick(fsm.Stamp{Term: term, Reading: base + int64(done)})); res.Err != nil {
					fail("tick: %v", res.Err)
				}
				elapsed += step
				check(granted)
			}
		}

		logf("epoch term %d reading %d", term, epochReading)
		if res := apply(fsm.Epoch(fsm.Stamp{Term: term, Reading: epochReading})); res.Err != nil {
			fail("first epoch: %v", res.Err)
		}
		d0 := time.Duration(rng.Int64N(maxAdvance))
		advance(term, epochReading, d0, false)
		ttl = raftlease.MinTTL + time.Duration(rng.Int64N(int64(60*time.Second)))
		c0 = elapsed
		logf("acquire ttl %v at reading %d", ttl, epochReading+int64(d0))
		res := apply(fsm.Acquire(fsm.Stamp{Term: term, Reading: epochReading + int64(d0)},
			raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: ttl}))
		if res.Err != nil || res.Lease.Deadline != c0+ttl {
			fail("acquire: %v, deadline %v, want %v", res.Err, res.Lease.Deadline, c0+ttl)
		}
		check(true)
		// The granting leader's clock runs on for a while too.
		dg := time.Duration(rng.Int64N(maxAdvance))
		advance(term, epochReading+int64(d0), dg, true)
		prevReading := epochReading + int64(d0+dg)
		for range rng.IntN(10) {
			term += 1 + uint64(rng.IntN(3))
			reading := wild(prevReading)
			logf("epoch term %d reading %d", term, reading)
			if res := apply(fsm.Epoch(fsm.Stamp{Term: term, Reading: reading})); res.Err != nil {
				fail("epoch: %v", res.Err)
			}
			check(true) // the epoch itself moves nothing
			if rng.IntN(4) == 0 {
				logf("stale epoch term %d", term-1)
				if res := apply(fsm.Epoch(fsm.Stamp{Term: term - 1, Reading: wild(reading)})); res.Err == nil {
					fail("epoch of older term %d accepted", term-1)
				}
				check(true)
			}
			d := time.Duration(rng.Int64N(maxAdvance))
			advance(term, reading, d, true)
			prevReading = reading + int64(d)
		}
		// The leader's expiry agrees: it removes the lease exactly when no
		// time is left.
		res = apply(fsm.Expire(fsm.Stamp{Term: term, Reading: prevReading}, []fsm.ExpireTarget{{Name: "a", Token: 1}}))
		if left := ttl - (elapsed - c0); (res.Expired == 1) != (left <= 0) {
			fail("expire with %v left removed %d", left, res.Expired)
		}
	}
}
