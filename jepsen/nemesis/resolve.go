package nemesis

import (
	"fmt"
	"slices"
)

// View is the cluster as the Nemesis sees it when a step starts.
type View struct {
	// Members are the current voting members.
	Members []string
	// Leader is the current Raft leader ("" when none is known).
	Leader string
	// Holder is the participant holding the elector lease ("" when none).
	Holder string
}

// Resolve fills in the targets (and, for partition-leader, the links) of a
// step that selects a role, from v. A step without a selector is returned
// unchanged. It fails when the role is vacant (no leader, no holder, no
// follower).
func Resolve(s Step, v View) (Step, error) {
	if s.Select == "" {
		return s, nil
	}
	members := slices.Clone(v.Members)
	slices.Sort(members)
	switch s.Select {
	case SelectLeader:
		if v.Leader == "" {
			return s, fmt.Errorf("nemesis: step %d (%s): no leader to target", s.Index, s.Kind)
		}
		s.Targets = []string{v.Leader}
	case SelectHolder:
		if v.Holder == "" {
			return s, fmt.Errorf("nemesis: step %d (%s): no lease holder to target", s.Index, s.Kind)
		}
		s.Targets = []string{v.Holder}
	case SelectFollower:
		followers := without(members, v.Leader)
		if len(followers) == 0 {
			return s, fmt.Errorf("nemesis: step %d (%s): no follower to target", s.Index, s.Kind)
		}
		s.Targets = []string{followers[s.Pick%uint64(len(followers))]}
	default:
		return s, fmt.Errorf("nemesis: step %d: unknown selector %q", s.Index, s.Select)
	}
	if s.Kind == PartitionLeader {
		s.Links = IsolateLinks(s.Targets[0], members)
	}
	return s, nil
}
