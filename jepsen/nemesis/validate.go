package nemesis

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Validate checks a schedule whole and reports every problem:
//
//   - steps are numbered 1..n in order of At, and the last is a Heal at or
//     before Duration, after every other step has ended;
//   - each kind belongs to the schedule's family; held kinds hold for a
//     positive time, instantaneous ones for none;
//   - steps do not overlap, except Nested ones (clock-beyond only), which
//     lie within the window of the last non-nested step before them;
//   - explicit targets are known ids of the kind's domain, selectors are
//     valid for the kind, partitions cut links between known nodes, the
//     ring needs 5 nodes and kill-majority a majority;
//   - participant pauses outlast the TTL (unless nested);
//   - a clock skew's WithinBound matches its rate and the drift bound:
//     within-bound in the clock family, beyond in clock-beyond;
//   - membership changes keep between 3 and 5 voters and add only spares.
func (s Schedule) Validate() error {
	var errs []error
	bad := func(st Step, format string, args ...any) {
		errs = append(errs, fmt.Errorf("step %d (%s): %s", st.Index, st.Kind, fmt.Sprintf(format, args...)))
	}
	if !s.Family.Valid() {
		errs = append(errs, fmt.Errorf("unknown family %q", s.Family))
	}
	n := len(s.Steps)
	if n == 0 || s.Steps[n-1].Kind != Heal {
		errs = append(errs, errors.New("the schedule does not end with a heal"))
		return errors.Join(errs...)
	}
	heal := s.Steps[n-1]
	if heal.At > s.Duration || heal.At < 0 || heal.Hold != 0 {
		bad(heal, "heal at %v (hold %v) outside a %v run", heal.At, heal.Hold, s.Duration)
	}
	allowed := s.Family.Kinds()
	count := len(s.Nodes)
	used := map[string]bool{}
	var enclosing *Step
	for i, st := range s.Steps {
		if st.Index != i+1 {
			bad(st, "numbered %d at position %d", st.Index, i+1)
		}
		if i > 0 && st.At < s.Steps[i-1].At {
			bad(st, "starts at %v, before step %d", st.At, i)
		}
		if st.Kind == Heal {
			if i != n-1 {
				bad(st, "heal before the end")
			}
			continue
		}
		if !slices.Contains(allowed, st.Kind) {
			bad(st, "not a %s fault", s.Family)
		}
		if st.At < 0 || st.End() > heal.At {
			bad(st, "runs %v..%v, not before the heal at %v", st.At, st.End(), heal.At)
		}
		if st.Kind.Instantaneous() != (st.Hold == 0) || st.Hold < 0 {
			bad(st, "hold %v", st.Hold)
		}
		// overlap
		switch {
		case st.Nested:
			if s.Family != FamilyClockBeyond {
				bad(st, "nested outside clock-beyond")
			}
			if enclosing == nil || st.At < enclosing.At || st.End() > enclosing.End() {
				bad(st, "nested step %v..%v outside its enclosing step", st.At, st.End())
			}
		default:
			if enclosing != nil && st.At < enclosing.End() {
				bad(st, "starts at %v, before step %d ends at %v", st.At, enclosing.Index, enclosing.End())
			}
			enclosing = &s.Steps[i]
		}
		s.validateTargets(st, bad)
		if (st.Kind == PauseParticipant || st.Kind == PauseHolder) && !st.Nested && s.TTL > 0 && st.Hold <= s.TTL {
			bad(st, "pause of %v does not outlast the TTL %v", st.Hold, s.TTL)
		}
		switch st.Kind {
		case LinkDelay, StoreSlow:
			if st.Delay <= 0 {
				bad(st, "delay %v", st.Delay)
			}
		case LinkDrop:
			if st.DropRate <= 0 || st.DropRate >= 1 {
				bad(st, "drop rate %v out of (0, 1)", st.DropRate)
			}
		case StoreFail:
			if st.ErrorRate <= 0 || st.ErrorRate >= 1 {
				bad(st, "error rate %v out of (0, 1)", st.ErrorRate)
			}
		case StoreCorrupt:
			if st.Corrupt != CorruptLogStore && st.Corrupt != CorruptSnapshot {
				bad(st, "corrupts %q, want %q or %q", st.Corrupt, CorruptLogStore, CorruptSnapshot)
			}
		}
		if st.Kind == ClockSkew {
			within := math.Abs(st.ClockRate-1) <= s.MaxDrift
			switch {
			case st.ClockRate <= 0:
				bad(st, "clock rate %v", st.ClockRate)
			case st.WithinBound != within:
				bad(st, "rate %v marked within_bound=%t with drift bound %v", st.ClockRate, st.WithinBound, s.MaxDrift)
			case s.Family == FamilyClock && !within:
				bad(st, "rate %v beyond the drift bound in the clock family", st.ClockRate)
			case s.Family == FamilyClockBeyond && within:
				bad(st, "rate %v within the drift bound in clock-beyond", st.ClockRate)
			}
		}
		// membership
		switch st.Kind {
		case MemberAdd:
			for _, id := range st.Targets {
				if !slices.Contains(s.Spares, id) || used[id] {
					bad(st, "adds %q, not an unused spare", id)
				}
				used[id] = true
			}
			count++
		case MemberRemove, MemberRemoveLeader:
			count--
		case MemberReplace:
			if !slices.Contains(s.Spares, st.NewID) || used[st.NewID] {
				bad(st, "rejoins as %q, not an unused spare", st.NewID)
			}
			used[st.NewID] = true
		}
		if count < 3 || count > max(5, len(s.Nodes)) {
			bad(st, "leaves %d voters", count)
		}
	}
	return errors.Join(errs...)
}

// wantSelector is the selector a kind targets by, "" when it names its
// targets, or "*" when either is fine.
func wantSelector(k Kind) Selector {
	switch k {
	case PartitionLeader, KillLeader, PauseLeader, TermLeader, MemberRemoveLeader:
		return SelectLeader
	case KillHolder, PauseHolder:
		return SelectHolder
	case MemberRemove, MemberReplace, StoreCorrupt:
		return SelectFollower
	case ClockSkew, StoreSlow, StoreFail, LinkDelay, LinkDrop:
		return "*"
	}
	return ""
}

func (s Schedule) validateTargets(st Step, bad func(Step, string, ...any)) {
	want := wantSelector(st.Kind)
	switch {
	case want == "*":
		if st.Select != "" && st.Select != SelectLeader {
			bad(st, "selector %q", st.Select)
		}
		if st.Select == "" && len(st.Targets) == 0 {
			bad(st, "no target")
		}
	case st.Select != want:
		bad(st, "selector %q, want %q", st.Select, want)
	case want == "" && len(st.Targets) == 0:
		bad(st, "no target")
	}
	domain := s.Nodes
	switch {
	case st.Kind.Domain() == DomainParticipants:
		domain = s.Participants
	case st.Kind == MemberAdd:
		domain = s.Spares
	}
	for _, id := range st.Targets {
		if !slices.Contains(domain, id) {
			bad(st, "unknown target %q", id)
		}
	}
	if st.Kind.IsPartition() {
		if st.Select == "" && len(st.Links) == 0 {
			bad(st, "cuts no link")
		}
		for _, l := range st.Links {
			if !slices.Contains(s.Nodes, l.From) || !slices.Contains(s.Nodes, l.To) || l.From == l.To {
				bad(st, "bad link %s→%s", l.From, l.To)
			}
		}
	}
	switch st.Kind {
	case PartitionRing:
		if len(s.Nodes) != 5 || len(st.Targets) != 5 {
			bad(st, "a ring needs the 5 nodes")
		}
	case KillMajority:
		if len(st.Targets) <= len(s.Nodes)/2 {
			bad(st, "kills %d of %d nodes, not a majority", len(st.Targets), len(s.Nodes))
		}
	case RollingRestart:
		if len(st.Targets) != len(s.Nodes) {
			bad(st, "restarts %d of %d nodes", len(st.Targets), len(s.Nodes))
		}
	}
}
