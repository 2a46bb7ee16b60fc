package nemesis

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Options describe the run a schedule is generated for.
type Options struct {
	Family Family
	// Seed makes the schedule; log it (Schedule.String does). NewSeed picks
	// one.
	Seed     uint64
	Duration time.Duration
	// Nodes are the initial members (3 or 5). Spares are further node ids
	// the membership family may add, or rejoin a replaced node under.
	Nodes  []string
	Spares []string
	// Participants are the elector participant ids (may be empty: then no
	// participant faults are drawn).
	Participants []string
	// TTL is the elector lease duration: participant pauses last longer.
	TTL time.Duration
	// MaxDrift is the cluster's drift bound; within-bound skews stay under
	// it, clock-beyond goes well past it.
	MaxDrift float64
}

// NewSeed returns a random seed for a new run.
func NewSeed() uint64 { return rand.Uint64() }

// Timing of a schedule of duration d.
func warmup(d time.Duration) time.Duration { return clamp(d/10, time.Second, 5*time.Second) }
func settle(d time.Duration) time.Duration { return clamp(d/6, 2*time.Second, 10*time.Second) }
func unit(d time.Duration) time.Duration   { return clamp(d/20, time.Second, 5*time.Second) }

// SmallSnapshotThreshold and SmallTrailingLogs are the snapshot family's
// log compaction settings: a snapshot every 32 entries, and only 8
// entries kept after it, so that a follower cut off or killed for a
// second or two is sent a snapshot when it comes back.
const (
	SmallSnapshotThreshold = 32
	SmallTrailingLogs      = 8
)

func clamp(d, lo, hi time.Duration) time.Duration { return min(max(d, lo), hi) }

// Generate makes the schedule of o: fault steps one after another (nested
// ones only in clock-beyond) from warm-up until the final heal, which
// comes early enough for the cluster to converge before the run ends. The
// same Options always give the same Schedule. It fails when o is invalid
// or the duration leaves no room for a fault of the family.
func Generate(o Options) (Schedule, error) {
	if err := o.validate(); err != nil {
		return Schedule{}, err
	}
	g := &generator{
		o: o,
		r: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		u: unit(o.Duration),
	}
	s := Schedule{
		Seed: o.Seed, Family: o.Family, Duration: o.Duration,
		Nodes: slices.Clone(o.Nodes), Spares: slices.Clone(o.Spares), Participants: slices.Clone(o.Participants),
		TTL: o.TTL, MaxDrift: o.MaxDrift,
	}
	healAt := o.Duration - settle(o.Duration)
	start := warmup(o.Duration)
	switch o.Family {
	case FamilyNone:
	case FamilyClockBeyond:
		s.Steps = g.clockBeyond(start, healAt)
	case FamilyMembership:
		s.Steps = g.membership(start, healAt)
	default:
		if o.Family == FamilySnapshot {
			s.SnapshotThreshold, s.TrailingLogs = SmallSnapshotThreshold, SmallTrailingLogs
		}
		s.Steps = g.sequence(start, healAt)
	}
	if o.Family != FamilyNone && len(s.Steps) == 0 {
		return Schedule{}, fmt.Errorf("nemesis: a %v run leaves no room for a %s fault", o.Duration, o.Family)
	}
	s.Steps = append(s.Steps, Step{Kind: Heal, At: healAt})
	for i := range s.Steps {
		s.Steps[i].Index = i + 1
	}
	if err := s.Validate(); err != nil {
		return Schedule{}, fmt.Errorf("nemesis: generated an invalid schedule (a bug): %w", err)
	}
	return s, nil
}

func (o Options) validate() error {
	var errs []error
	if !o.Family.Valid() {
		errs = append(errs, fmt.Errorf("nemesis: unknown family %q", o.Family))
	}
	if o.Duration < 10*time.Second {
		errs = append(errs, fmt.Errorf("nemesis: duration %v is shorter than 10s", o.Duration))
	}
	if len(o.Nodes) < 3 {
		errs = append(errs, fmt.Errorf("nemesis: %d nodes; want at least 3", len(o.Nodes)))
	}
	all := append(append(slices.Clone(o.Nodes), o.Spares...), o.Participants...)
	slices.Sort(all)
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			errs = append(errs, fmt.Errorf("nemesis: id %q used twice", all[i]))
		}
	}
	for _, id := range all {
		if id == "" {
			errs = append(errs, errors.New("nemesis: empty id"))
			break
		}
	}
	if o.MaxDrift < 0 || o.MaxDrift >= 0.5 {
		errs = append(errs, fmt.Errorf("nemesis: max drift %v out of [0, 0.5)", o.MaxDrift))
	}
	if o.Family == FamilyMembership && len(o.Spares) == 0 {
		errs = append(errs, errors.New("nemesis: the membership family needs spare node ids"))
	}
	if o.Family == FamilyClockBeyond && len(o.Participants) == 0 {
		errs = append(errs, errors.New("nemesis: clock-beyond needs participants (it pauses the holder)"))
	}
	return errors.Join(errs...)
}

type generator struct {
	o Options
	r *rand.Rand
	u time.Duration
}

// between returns a duration uniformly in [lo, hi), in whole
// milliseconds when the range is wider than one.
func (g *generator) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	d := lo + time.Duration(g.r.Int64N(int64(hi-lo)))
	if hi-lo > time.Millisecond {
		d = max(lo, d.Truncate(time.Millisecond))
	}
	return d
}

func (g *generator) scaled(lo, hi float64) time.Duration {
	return g.between(time.Duration(lo*float64(g.u)), time.Duration(hi*float64(g.u)))
}

func (g *generator) uniform(lo, hi float64) float64 { return lo + g.r.Float64()*(hi-lo) }

func (g *generator) node() string { return g.o.Nodes[g.r.IntN(len(g.o.Nodes))] }

func (g *generator) gap() time.Duration { return g.scaled(0.5, 1.5) }

// participantPause lasts longer than the TTL.
func (g *generator) participantPause() time.Duration {
	if g.o.TTL <= 0 {
		return g.scaled(1, 2)
	}
	return time.Duration(g.uniform(1.5, 3) * float64(g.o.TTL)).Truncate(time.Millisecond)
}

// usable lists the kinds of the family this cluster shape allows.
func (g *generator) usable() []Kind {
	var out []Kind
	for _, k := range g.o.Family.Kinds() {
		switch {
		case k == PartitionRing && len(g.o.Nodes) != 5:
		case k.Domain() == DomainParticipants && len(g.o.Participants) == 0:
		case k == ClockSkew && g.o.MaxDrift == 0:
		default:
			out = append(out, k)
		}
	}
	return out
}

// sequence draws one fault after another until the heal.
func (g *generator) sequence(t, healAt time.Duration) []Step {
	kinds := g.usable()
	var steps []Step
	for {
		s := g.step(kinds[g.r.IntN(len(kinds))], t)
		if s.End() > healAt {
			return steps
		}
		steps = append(steps, s)
		t = s.End() + g.gap()
	}
}

// step makes one fault of kind k at t.
func (g *generator) step(k Kind, t time.Duration) Step {
	s := Step{Kind: k, At: t, Pick: g.r.Uint64()}
	nodes := g.o.Nodes
	n := len(nodes)
	switch k {
	case PartitionOne:
		target := g.node()
		s.Targets, s.Links = []string{target}, IsolateLinks(target, nodes)
		s.Hold = g.scaled(1, 2.5)
		if g.o.Family == FamilySnapshot {
			s.Hold = g.scaled(2, 4) // long enough to fall behind a snapshot
		}
	case PartitionLeader:
		s.Select, s.Hold = SelectLeader, g.scaled(1, 2.5)
	case PartitionHalves:
		perm := g.perm(nodes)
		minority := perm[:(n-1)/2]
		s.Targets, s.Links = minority, SplitLinks(minority, perm[(n-1)/2:])
		s.Hold = g.scaled(1, 2.5)
	case PartitionRing:
		ring := g.perm(nodes)
		s.Targets, s.Links, s.Hold = ring, RingLinks(ring), g.scaled(1, 2.5)
	case PartitionOneWay:
		target := g.node()
		s.Targets, s.Links, s.Hold = []string{target}, OneWayLinks(target, nodes), g.scaled(1, 2.5)
	case PartitionBridge:
		perm := g.perm(nodes)
		bridge, rest := perm[0], perm[1:]
		left, right := rest[:len(rest)/2], rest[len(rest)/2:]
		s.Targets, s.Links, s.Hold = []string{bridge}, BridgeLinks(left, right), g.scaled(1, 2.5)
	case KillRandom:
		s.Targets, s.Hold = []string{g.node()}, g.scaled(0.7, 2)
		if g.o.Family == FamilySnapshot {
			s.Hold = g.scaled(1.5, 3)
		}
	case KillLeader:
		s.Select, s.Hold = SelectLeader, g.scaled(0.7, 2)
	case KillMajority:
		perm := g.perm(nodes)
		s.Targets, s.Hold = perm[:n/2+1], g.scaled(0.7, 2)
		slices.Sort(s.Targets)
	case KillHolder:
		s.Select, s.Hold = SelectHolder, g.scaled(0.5, 1.5)
	case PauseNode:
		s.Targets, s.Hold = []string{g.node()}, g.scaled(0.5, 1.5)
	case PauseLeader:
		s.Select, s.Hold = SelectLeader, g.scaled(0.5, 1.5)
	case PauseParticipant:
		p := g.o.Participants
		s.Targets, s.Hold = []string{p[g.r.IntN(len(p))]}, g.participantPause()
	case PauseHolder:
		s.Select, s.Hold = SelectHolder, g.participantPause()
	case ClockJump:
		off := g.between(time.Second, 60*time.Second)
		if g.r.IntN(2) == 0 {
			off = -off
		}
		s.Targets, s.Hold, s.ClockOffset, s.WithinBound = []string{g.node()}, g.scaled(1, 2), off, true
	case ClockSkew:
		dev := g.o.MaxDrift * g.uniform(0.2, 0.9)
		if g.r.IntN(2) == 0 {
			dev = -dev
		}
		s.ClockRate, s.WithinBound, s.Hold = 1+dev, true, g.scaled(1.5, 3)
		if g.r.IntN(2) == 0 {
			s.Select = SelectLeader
		} else {
			s.Targets = []string{g.node()}
		}
	case TermLeader:
		s.Select, s.Hold = SelectLeader, g.scaled(0.5, 1.5)
	case RollingRestart:
		s.Targets = g.perm(nodes)
		s.Hold = time.Duration(n) * g.scaled(0.5, 1)
	case StoreSlow:
		s.Delay, s.Hold = g.between(5*time.Millisecond, 100*time.Millisecond), g.scaled(1, 2)
		g.nodeOrLeader(&s)
	case StoreFail:
		s.ErrorRate, s.Hold = g.uniform(0.05, 0.5), g.scaled(1, 2)
		g.nodeOrLeader(&s)
	case StoreCorrupt:
		s.Select, s.Hold, s.Corrupt = SelectFollower, g.scaled(1, 2), CorruptLogStore
		if g.r.IntN(2) == 0 {
			s.Corrupt = CorruptSnapshot
		}
	case LinkDelay:
		s.Delay, s.Hold = g.between(10*time.Millisecond, 150*time.Millisecond), g.scaled(1, 2.5)
		g.nodeOrLeader(&s)
	case LinkDrop:
		s.DropRate, s.Hold = g.uniform(0.05, 0.4), g.scaled(1, 2.5)
		g.nodeOrLeader(&s)
	}
	return s
}

func (g *generator) nodeOrLeader(s *Step) {
	if g.r.IntN(2) == 0 {
		s.Select = SelectLeader
	} else {
		s.Targets = []string{g.node()}
	}
}

func (g *generator) perm(ids []string) []string {
	out := slices.Clone(ids)
	g.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// membership alternates additions and removals, keeping between 3 and 5
// voters, until the spares run out or the heal comes. Removals and
// replacements target a role, so the generator tracks only the count.
func (g *generator) membership(t, healAt time.Duration) []Step {
	count := len(g.o.Nodes)
	spares := slices.Clone(g.o.Spares)
	maxCount := max(5, count)
	var steps []Step
	for t <= healAt {
		var choices []Kind
		if len(spares) > 0 && count < maxCount {
			choices = append(choices, MemberAdd)
		}
		if count > 3 {
			choices = append(choices, MemberRemove, MemberRemoveLeader)
		}
		if len(spares) > 0 && count >= 3 {
			choices = append(choices, MemberReplace)
		}
		if len(choices) == 0 {
			break
		}
		if count == 3 && slices.Contains(choices, MemberAdd) {
			choices = []Kind{MemberAdd} // grow first, so removals keep a quorum of 3
		}
		k := choices[g.r.IntN(len(choices))]
		s := Step{Kind: k, At: t, Pick: g.r.Uint64()}
		switch k {
		case MemberAdd:
			s.Targets, spares = []string{spares[0]}, spares[1:]
			count++
		case MemberRemove:
			s.Select = SelectFollower
			count--
		case MemberRemoveLeader:
			s.Select = SelectLeader
			count--
		case MemberReplace:
			s.Select, s.NewID, spares = SelectFollower, spares[0], spares[1:]
		}
		steps = append(steps, s)
		t += g.scaled(1.5, 3) // time to settle into the new configuration
	}
	return steps
}

// clockBeyond composes windows in which the leader's clock runs far
// faster than the drift bound allows, the holder pauses for just under
// the TTL (so it wakes believing it still leads), and the leader is
// killed: early takeover must be detected.
func (g *generator) clockBeyond(t, healAt time.Duration) []Step {
	ttl := g.o.TTL
	if ttl <= 0 {
		ttl = g.u
	}
	var steps []Step
	for {
		window := max(5*ttl, 3*g.u)
		if t+window > healAt {
			return steps
		}
		excess := max(0.3, 10*g.o.MaxDrift) * g.uniform(1, 1.5)
		steps = append(steps, Step{Kind: ClockSkew, At: t, Hold: window, Select: SelectLeader, ClockRate: 1 + excess})
		pauseAt := t + ttl
		pause := time.Duration(g.uniform(0.8, 0.95) * float64(ttl)).Truncate(time.Millisecond)
		steps = append(steps, Step{Kind: PauseHolder, At: pauseAt, Hold: pause, Select: SelectHolder, Nested: true})
		killAt := pauseAt + pause + ttl
		kill := g.scaled(0.5, 1)
		if killAt+kill <= t+window {
			steps = append(steps, Step{Kind: KillLeader, At: killAt, Hold: kill, Select: SelectLeader, Nested: true})
		}
		t += window + g.gap()
	}
}
