package nemesis

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Selector names a role a step targets, resolved when the step starts.
type Selector string

// Selectors. The empty selector means the step names its Targets.
const (
	SelectLeader   Selector = "leader"   // the Raft leader
	SelectFollower Selector = "follower" // a non-leader member, chosen by Pick
	SelectHolder   Selector = "holder"   // the participant holding the elector lease
)

// Link is a directed network link whose traffic From → To is dropped.
type Link struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Step is one fault of a schedule.
type Step struct {
	// Index numbers the steps from 1, in order of At.
	Index int  `json:"index"`
	Kind  Kind `json:"kind"`
	// At is the offset from the start of the run at which the step starts;
	// Hold how long the fault lasts before Stop undoes it (0 for
	// instantaneous kinds).
	At   time.Duration `json:"at_ns"`
	Hold time.Duration `json:"hold_ns"`
	// Nested steps start inside the window of the last non-nested step
	// before them and end within it (clock-beyond composes a skew with a
	// pause and a kill). Other steps never overlap.
	Nested bool `json:"nested,omitempty"`

	// Select, when set, names the role to target; Pick chooses among
	// several candidates (candidates[Pick % len]). Targets and Links are
	// then filled in by Resolve.
	Select Selector `json:"select,omitempty"`
	Pick   uint64   `json:"pick,omitempty"`
	// Targets are node or participant ids (see Kind.Domain). For
	// rolling-restart, the order of the restarts.
	Targets []string `json:"targets,omitempty"`
	// Links are the links a partition cuts.
	Links []Link `json:"links,omitempty"`
	// NewID is the id a member-replace rejoins under.
	NewID string `json:"new_id,omitempty"`

	// Clock faults: ClockOffset for clock-jump, ClockRate for clock-skew
	// (1.0 = normal speed). WithinBound says whether the fault respects
	// the drift bound (|rate−1| ≤ MaxDrift; a wall-clock jump does).
	ClockOffset time.Duration `json:"clock_offset_ns,omitempty"`
	ClockRate   float64       `json:"clock_rate,omitempty"`
	WithinBound bool          `json:"within_bound,omitempty"`

	// Storage and link faults: Delay for store-slow and link-delay,
	// ErrorRate for store-fail, DropRate for link-drop, Corrupt for
	// store-corrupt.
	Delay     time.Duration `json:"delay_ns,omitempty"`
	ErrorRate float64       `json:"error_rate,omitempty"`
	DropRate  float64       `json:"drop_rate,omitempty"`
	Corrupt   CorruptTarget `json:"corrupt,omitempty"`

	// Observed is filled in by the Nemesis when it starts the step: what
	// it saw while applying a fault that is itself a test (store-corrupt:
	// "refused: <the node's error>"). The Player records it.
	Observed string `json:"observed,omitempty"`
}

// CorruptTarget names the file store-corrupt damages.
type CorruptTarget string

// What store-corrupt damages.
const (
	CorruptLogStore CorruptTarget = "log-store" // pages of raft.db overwritten
	CorruptSnapshot CorruptTarget = "snapshot"  // bytes of the newest snapshot's state flipped
)

// End is when the step's fault is undone.
func (s Step) End() time.Duration { return s.At + s.Hold }

// Detail describes the step for people and for the history's nemesis
// events.
func (s Step) Detail() string {
	var parts []string
	if s.Select != "" && len(s.Targets) == 0 {
		parts = append(parts, "target "+string(s.Select))
	}
	if len(s.Targets) > 0 {
		parts = append(parts, strings.Join(s.Targets, ","))
	}
	if len(s.Links) > 0 {
		cut := make([]string, len(s.Links))
		for i, l := range s.Links {
			cut[i] = l.From + "→" + l.To
		}
		parts = append(parts, "cut "+strings.Join(cut, " "))
	}
	if s.NewID != "" {
		parts = append(parts, "as "+s.NewID)
	}
	switch s.Kind {
	case Heal:
		parts = append(parts, "undo every fault")
	case ClockJump:
		parts = append(parts, fmt.Sprintf("wall clock %+v", s.ClockOffset))
	case ClockSkew:
		b := "beyond"
		if s.WithinBound {
			b = "within"
		}
		parts = append(parts, fmt.Sprintf("rate %.4f (%s the drift bound)", s.ClockRate, b))
	case StoreSlow:
		parts = append(parts, fmt.Sprintf("+%v per write", s.Delay))
	case StoreFail:
		parts = append(parts, fmt.Sprintf("%.0f%% of writes fail", s.ErrorRate*100))
	case StoreCorrupt:
		parts = append(parts, "damage the "+string(s.Corrupt))
	case LinkDelay:
		parts = append(parts, fmt.Sprintf("+%v per write on its links", s.Delay))
	case LinkDrop:
		parts = append(parts, fmt.Sprintf("%.0f%% of writes on its links dropped", s.DropRate*100))
	}
	return strings.Join(parts, "; ")
}

func (s Step) String() string {
	nested := ""
	if s.Nested {
		nested = " (nested)"
	}
	hold := ""
	if s.Hold > 0 {
		hold = " for " + s.Hold.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("#%d at %v %s%s%s: %s", s.Index, s.At.Round(time.Millisecond), s.Kind, hold, nested, s.Detail())
}

// Schedule is the plan of one run's faults.
type Schedule struct {
	Seed     uint64        `json:"seed"`
	Family   Family        `json:"family"`
	Duration time.Duration `json:"duration_ns"`
	// The cluster shape the schedule was made for.
	Nodes        []string      `json:"nodes"`
	Spares       []string      `json:"spares,omitempty"`
	Participants []string      `json:"participants,omitempty"`
	TTL          time.Duration `json:"ttl_ns,omitempty"`
	MaxDrift     float64       `json:"max_drift"`
	// SnapshotThreshold, when non-zero, is the Raft snapshot threshold the
	// driver must configure the nodes with (the snapshot family sets it
	// small so lagging nodes install snapshots).
	SnapshotThreshold uint64 `json:"snapshot_threshold,omitempty"`
	// TrailingLogs, when non-zero, is how many log entries the nodes keep
	// after a snapshot: few, so that a follower that lagged is sent one.
	TrailingLogs uint64 `json:"trailing_logs,omitempty"`
	Steps        []Step `json:"steps"`
}

// String lists the schedule, one step a line, headed by its seed so a
// failing run can be regenerated.
func (s Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "nemesis schedule: family=%s seed=%d duration=%v nodes=%s", s.Family, s.Seed, s.Duration, strings.Join(s.Nodes, ","))
	if len(s.Participants) > 0 {
		fmt.Fprintf(&b, " participants=%s", strings.Join(s.Participants, ","))
	}
	if s.SnapshotThreshold > 0 {
		fmt.Fprintf(&b, " snapshot_threshold=%d trailing_logs=%d", s.SnapshotThreshold, s.TrailingLogs)
	}
	b.WriteByte('\n')
	for _, st := range s.Steps {
		b.WriteString("  " + st.String() + "\n")
	}
	return b.String()
}

// Faults returns the steps other than the final heal.
func (s Schedule) Faults() []Step {
	if n := len(s.Steps); n > 0 && s.Steps[n-1].Kind == Heal {
		return slices.Clone(s.Steps[:n-1])
	}
	return slices.Clone(s.Steps)
}

// ScheduleFileName is the schedule's file in a run directory.
const ScheduleFileName = "schedule.json"

// WriteFile stores s as indented JSON at path.
func (s Schedule) WriteFile(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// ReadFile loads a schedule stored by WriteFile.
func ReadFile(path string) (Schedule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Schedule{}, err
	}
	var s Schedule
	if err := json.Unmarshal(data, &s); err != nil {
		return Schedule{}, fmt.Errorf("nemesis: %s: %w", path, err)
	}
	return s, nil
}
