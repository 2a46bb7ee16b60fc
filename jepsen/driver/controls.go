package driver

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/raftlease/raftlease/jepsen"
	"github.com/raftlease/raftlease/jepsen/checker"
	"github.com/raftlease/raftlease/jepsen/nemesis"
)

// Control is a negative control: a run set up to break a property on
// purpose. The harness must detect it, or it is too weak and the run
// fails.
type Control struct {
	// Name is what `jepsen run --family` takes.
	Name string
	// Family is the nemesis family its schedule belongs to.
	Family nemesis.Family
	// Expect says, for people, what must be found.
	Expect string
	// StaleReads starts the nodes in the UNSAFE stale-read mode.
	StaleReads bool
	// schedule makes the control's schedule (nil: nemesis.Generate).
	schedule func(o nemesis.Options) (nemesis.Schedule, error)
	// detected reports whether the results show the expected violation.
	detected func(r jepsen.Results) (bool, string)
	// evidence names what the control counts and how many were found.
	evidence func(r jepsen.Results) (what string, n int64)
}

// Evidence returns what the control looks for in r and how many were
// found (unfenced overlaps, linearizability violations, early takeovers).
func (c Control) Evidence(r jepsen.Results) (what string, n int64) { return c.evidence(r) }

// Names of the negative controls.
const (
	ControlUnfenced    = "control-unfenced"
	ControlStaleReads  = "control-stale-reads"
	ControlClockBeyond = string(nemesis.FamilyClockBeyond)
)

// Controls lists the negative controls, in the order `make jepsen-short`
// runs them.
func Controls() []Control {
	return []Control{
		{
			Name: ControlUnfenced, Family: nemesis.FamilyPause,
			Expect:   "unfenced-overlap > 0 (a paused holder writes after another took over) while fenced-exclusion stays valid",
			schedule: holderPauses,
			detected: func(r jepsen.Results) (bool, string) {
				o, _ := r.Verdict(checker.NameUnfencedOverlap)
				f, _ := r.Verdict(checker.NameFencedExclusion)
				n := o.Counters["overlaps"]
				return n > 0 && f.Valid && !f.Skipped, fmt.Sprintf("unfenced overlaps=%d, fenced-exclusion valid=%v stale_rejected=%d", n, f.Valid, f.Counters["stale_rejected"])
			},
			evidence: func(r jepsen.Results) (string, int64) {
				o, _ := r.Verdict(checker.NameUnfencedOverlap)
				return "unfenced overlaps", o.Counters["overlaps"]
			},
		},
		{
			Name: ControlStaleReads, Family: nemesis.FamilyPartition, StaleReads: true,
			Expect:   "linearizability invalid (the UNSAFE stale-read mode answers reads from an isolated replica)",
			schedule: leaderIsolations,
			detected: func(r jepsen.Results) (bool, string) {
				v, _ := r.Verdict(checker.NameLinearizability)
				return !v.Valid, fmt.Sprintf("linearizability valid=%v violations=%d", v.Valid, v.ViolationCount)
			},
			evidence: func(r jepsen.Results) (string, int64) {
				v, _ := r.Verdict(checker.NameLinearizability)
				return "lease names not linearizable", int64(v.ViolationCount)
			},
		},
		{
			Name: ControlClockBeyond, Family: nemesis.FamilyClockBeyond,
			Expect: "no-early-takeover violated (the leader's clock runs beyond the drift bound)",
			detected: func(r jepsen.Results) (bool, string) {
				v, _ := r.Verdict(checker.NameNoEarlyTakeover)
				return !v.Valid, fmt.Sprintf("no-early-takeover valid=%v violations=%d", v.Valid, v.ViolationCount)
			},
			evidence: func(r jepsen.Results) (string, int64) {
				v, _ := r.Verdict(checker.NameNoEarlyTakeover)
				return "early takeovers", int64(v.ViolationCount)
			},
		},
	}
}

// ControlNamed returns the control called name.
func ControlNamed(name string) (Control, bool) {
	for _, c := range Controls() {
		if c.Name == name {
			return c, true
		}
	}
	return Control{}, false
}

// timing of a control schedule (the generator's, for the same duration).
func controlTiming(d time.Duration) (start, healAt time.Duration) {
	warm := min(max(d/10, time.Second), 5*time.Second)
	settle := min(max(d/6, 2*time.Second), 10*time.Second)
	return warm, d - settle
}

func controlSchedule(o nemesis.Options, step func(r *rand.Rand, at time.Duration) nemesis.Step, gap func(r *rand.Rand) time.Duration) (nemesis.Schedule, error) {
	r := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed))
	start, healAt := controlTiming(o.Duration)
	s := nemesis.Schedule{Seed: o.Seed, Family: o.Family, Duration: o.Duration, Nodes: slices.Clone(o.Nodes),
		Spares: slices.Clone(o.Spares), Participants: slices.Clone(o.Participants), TTL: o.TTL, MaxDrift: o.MaxDrift}
	for t := start; ; {
		st := step(r, t)
		if st.End() > healAt {
			break
		}
		s.Steps = append(s.Steps, st)
		t = st.End() + gap(r)
	}
	if len(s.Steps) == 0 {
		return s, fmt.Errorf("driver: a %v run leaves no room for a control step", o.Duration)
	}
	s.Steps = append(s.Steps, nemesis.Step{Kind: nemesis.Heal, At: healAt})
	for i := range s.Steps {
		s.Steps[i].Index = i + 1
	}
	return s, s.Validate()
}

// holderPauses pauses the lease holder, again and again, for 1.5–2.5 TTLs:
// each time another participant takes over, and the holder, woken, writes
// once more on its old belief.
func holderPauses(o nemesis.Options) (nemesis.Schedule, error) {
	ttl := o.TTL
	return controlSchedule(o, func(r *rand.Rand, at time.Duration) nemesis.Step {
		hold := time.Duration((1.5 + r.Float64()) * float64(ttl)).Truncate(time.Millisecond)
		return nemesis.Step{Kind: nemesis.PauseHolder, At: at, Hold: hold, Select: nemesis.SelectHolder, Pick: r.Uint64()}
	}, func(r *rand.Rand) time.Duration { return ttl + time.Duration(r.Int64N(int64(ttl))) })
}

// leaderIsolations isolates the Raft leader for 3–5 s at a time.
func leaderIsolations(o nemesis.Options) (nemesis.Schedule, error) {
	return controlSchedule(o, func(r *rand.Rand, at time.Duration) nemesis.Step {
		hold := 3*time.Second + time.Duration(r.Int64N(int64(2*time.Second))).Truncate(time.Millisecond)
		return nemesis.Step{Kind: nemesis.PartitionLeader, At: at, Hold: hold, Select: nemesis.SelectLeader, Pick: r.Uint64()}
	}, func(r *rand.Rand) time.Duration { return 2*time.Second + time.Duration(r.Int64N(int64(time.Second))) })
}
