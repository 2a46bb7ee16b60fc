package nemesis

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftlease/raftlease/jepsen/history"
)

func options(f Family, seed uint64, d time.Duration, nodes int) Options {
	o := Options{
		Family: f, Seed: seed, Duration: d,
		Participants: []string{"p1", "p2", "p3", "p4", "p5"},
		TTL:          2 * time.Second, MaxDrift: 0.01,
	}
	for i := range nodes {
		o.Nodes = append(o.Nodes, fmt.Sprintf("n%d", i+1))
	}
	o.Spares = []string{"n6", "n7"}
	return o
}

func TestGenerateDeterministic(t *testing.T) {
	for _, f := range Families() {
		o := options(f, 42, time.Minute, 5)
		a, err := Generate(o)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		b, _ := Generate(o)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: same seed, different schedules:\n%s\n%s", f, a, b)
		}
		if f == FamilyNone {
			continue
		}
		different := false
		for seed := uint64(43); seed < 53 && !different; seed++ {
			o.Seed = seed
			c, _ := Generate(o)
			different = !reflect.DeepEqual(a.Steps, c.Steps)
		}
		if !different {
			t.Errorf("%s: ten other seeds all gave seed 42's schedule", f)
		}
	}
}

func TestGenerateEveryFamilyValid(t *testing.T) {
	seen := map[Kind]bool{}
	for _, f := range Families() {
		for _, nodes := range []int{3, 5} {
			for _, d := range []time.Duration{30 * time.Second, time.Minute, 5 * time.Minute} {
				for seed := uint64(1); seed <= 25; seed++ {
					o := options(f, seed, d, nodes)
					s, err := Generate(o)
					if err != nil {
						t.Fatalf("%s nodes=%d d=%v seed=%d: %v", f, nodes, d, seed, err)
					}
					if err := s.Validate(); err != nil {
						t.Fatalf("%s seed=%d: %v\n%s", f, seed, err, s)
					}
					last := s.Steps[len(s.Steps)-1]
					if last.Kind != Heal || last.At > d-2*time.Second {
						t.Fatalf("%s seed=%d: ends with %s at %v of %v", f, seed, last.Kind, last.At, d)
					}
					faults := s.Faults()
					if f != FamilyNone && len(faults) == 0 {
						t.Fatalf("%s seed=%d: no faults", f, seed)
					}
					if f == FamilyNone && len(faults) != 0 {
						t.Fatalf("none produced faults: %s", s)
					}
					for _, st := range faults {
						seen[st.Kind] = true
					}
					if f == FamilySnapshot && s.SnapshotThreshold == 0 {
						t.Fatalf("snapshot family without a small threshold")
					}
				}
			}
		}
	}
	for _, f := range Families() {
		for _, k := range f.Kinds() {
			if !seen[k] {
				t.Errorf("kind %s (%s) never generated", k, f)
			}
		}
	}
}

func TestGenerateRefusesBadOptions(t *testing.T) {
	bad := []Options{
		options("bogus", 1, time.Minute, 3),
		options(FamilyKill, 1, 5*time.Second, 3),
		options(FamilyKill, 1, time.Minute, 2),
	}
	o := options(FamilyMembership, 1, time.Minute, 3)
	o.Spares = nil
	bad = append(bad, o)
	o = options(FamilyClockBeyond, 1, time.Minute, 3)
	o.Participants = nil
	bad = append(bad, o)
	o = options(FamilyKill, 1, time.Minute, 3)
	o.Participants = []string{"n1"}
	bad = append(bad, o)
	for i, o := range bad {
		if _, err := Generate(o); err == nil {
			t.Errorf("options %d accepted: %+v", i, o)
		}
	}
}

func TestGenerateRules(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		s, _ := Generate(options(FamilyPause, seed, 2*time.Minute, 3))
		for _, st := range s.Faults() {
			if (st.Kind == PauseParticipant || st.Kind == PauseHolder) && st.Hold <= s.TTL {
				t.Fatalf("participant pause %v not longer than the TTL", st.Hold)
			}
		}
		s, _ = Generate(options(FamilyClock, seed, 2*time.Minute, 3))
		for _, st := range s.Faults() {
			if st.Kind == ClockSkew && (!st.WithinBound || st.ClockRate < 0.99 || st.ClockRate > 1.01) {
				t.Fatalf("clock family skew %v beyond the bound", st.ClockRate)
			}
		}
		s, _ = Generate(options(FamilyClockBeyond, seed, 2*time.Minute, 3))
		var skews, pauses int
		for _, st := range s.Faults() {
			switch st.Kind {
			case ClockSkew:
				skews++
				if st.WithinBound || st.ClockRate < 1.3 {
					t.Fatalf("clock-beyond skew %v not beyond the bound", st.ClockRate)
				}
			case PauseHolder:
				pauses++
				if !st.Nested || st.Hold >= s.TTL {
					t.Fatalf("clock-beyond pause %+v", st)
				}
			}
		}
		if skews == 0 || pauses == 0 {
			t.Fatalf("clock-beyond without skew and pause:\n%s", s)
		}
		s, _ = Generate(options(FamilyPartition, seed, 2*time.Minute, 3))
		for _, st := range s.Faults() {
			if st.Kind == PartitionRing {
				t.Fatalf("ring on 3 nodes")
			}
		}
	}
}

func TestValidateFindsProblems(t *testing.T) {
	base := func() Schedule {
		s, err := Generate(options(FamilyKill, 7, time.Minute, 3))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := func(s *Schedule) *Step { return &s.Steps[0] }
	cases := map[string]func(s *Schedule){
		"does not end with a heal": func(s *Schedule) { s.Steps = s.Steps[:len(s.Steps)-1] },
		"not a kill fault":         func(s *Schedule) { first(s).Kind = PauseNode; first(s).Targets = []string{"n1"}; first(s).Select = "" },
		"before step":              func(s *Schedule) { s.Steps[1].At = s.Steps[0].At; s.Steps[1].Nested = false },
		"unknown target": func(s *Schedule) {
			*first(s) = Step{Index: 1, Kind: KillRandom, At: time.Second, Hold: time.Second, Targets: []string{"n9"}}
		},
		"not a majority": func(s *Schedule) {
			*first(s) = Step{Index: 1, Kind: KillMajority, At: time.Second, Hold: time.Second, Targets: []string{"n1"}}
		},
		"not before the heal": func(s *Schedule) { first(s).Hold = time.Hour },
		"hold":                func(s *Schedule) { first(s).Hold = 0 },
		"nested outside":      func(s *Schedule) { s.Steps[1].Nested = true },
		"selector": func(s *Schedule) {
			*first(s) = Step{Index: 1, Kind: KillLeader, At: time.Second, Hold: time.Second, Targets: []string{"n1"}}
		},
	}
	for want, mutate := range cases {
		s := base()
		if len(s.Steps) < 3 {
			t.Fatalf("schedule too short for the test:\n%s", s)
		}
		mutate(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Validate = %v", want, err)
		}
	}
	pause := Schedule{Family: FamilyPause, Duration: time.Minute, Nodes: []string{"n1", "n2", "n3"}, Participants: []string{"p1"}, TTL: 2 * time.Second,
		Steps: []Step{{Index: 1, Kind: PauseParticipant, At: time.Second, Hold: time.Second, Targets: []string{"p1"}}, {Index: 2, Kind: Heal, At: 50 * time.Second}}}
	if err := pause.Validate(); err == nil || !strings.Contains(err.Error(), "does not outlast the TTL") {
		t.Errorf("short pause: %v", err)
	}
	skew := Schedule{Family: FamilyClock, Duration: time.Minute, Nodes: []string{"n1", "n2", "n3"}, MaxDrift: 0.01,
		Steps: []Step{{Index: 1, Kind: ClockSkew, At: time.Second, Hold: time.Second, Targets: []string{"n1"}, ClockRate: 1.5}, {Index: 2, Kind: Heal, At: 50 * time.Second}}}
	if err := skew.Validate(); err == nil || !strings.Contains(err.Error(), "beyond the drift bound") {
		t.Errorf("beyond-bound skew in the clock family: %v", err)
	}
}

func TestLinks(t *testing.T) {
	nodes := []string{"n1", "n2", "n3", "n4", "n5"}
	if got := IsolateLinks("n1", nodes[:3]); !reflect.DeepEqual(got, []Link{{"n1", "n2"}, {"n1", "n3"}, {"n2", "n1"}, {"n3", "n1"}}) {
		t.Errorf("isolate: %v", got)
	}
	ring := RingLinks(nodes)
	if len(ring) != 10 {
		t.Fatalf("ring cuts %d links, want 10", len(ring))
	}
	for _, l := range ring {
		if l == (Link{"n1", "n2"}) || l == (Link{"n1", "n5"}) {
			t.Fatalf("ring cut a neighbour link %v", l)
		}
	}
	if !slices.Contains(ring, Link{"n1", "n3"}) {
		t.Fatal("ring kept n1→n3")
	}
	if got := OneWayLinks("n2", nodes[:3]); !reflect.DeepEqual(got, []Link{{"n2", "n1"}, {"n2", "n3"}}) {
		t.Errorf("one way: %v", got)
	}
	if got := BridgeLinks([]string{"n1"}, []string{"n3"}); len(got) != 2 {
		t.Errorf("bridge: %v", got)
	}
}

func TestResolve(t *testing.T) {
	v := View{Members: []string{"n3", "n1", "n2"}, Leader: "n2", Holder: "p4"}
	s, err := Resolve(Step{Kind: PartitionLeader, Select: SelectLeader}, v)
	if err != nil || !reflect.DeepEqual(s.Targets, []string{"n2"}) || len(s.Links) != 4 {
		t.Fatalf("partition-leader: %+v %v", s, err)
	}
	s, _ = Resolve(Step{Kind: PauseHolder, Select: SelectHolder}, v)
	if !reflect.DeepEqual(s.Targets, []string{"p4"}) {
		t.Fatalf("holder: %+v", s)
	}
	a, _ := Resolve(Step{Kind: MemberRemove, Select: SelectFollower, Pick: 0}, v)
	b, _ := Resolve(Step{Kind: MemberRemove, Select: SelectFollower, Pick: 1}, v)
	if a.Targets[0] != "n1" || b.Targets[0] != "n3" {
		t.Fatalf("follower picks: %v %v", a.Targets, b.Targets)
	}
	if _, err := Resolve(Step{Kind: KillLeader, Select: SelectLeader}, View{Members: v.Members}); err == nil {
		t.Fatal("resolved a leader with none")
	}
	explicit := Step{Kind: KillRandom, Targets: []string{"n1"}}
	if s, _ := Resolve(explicit, v); !reflect.DeepEqual(s, explicit) {
		t.Fatal("explicit step changed")
	}
}

// fakeNemesis records calls and resolves against a fixed view.
type fakeNemesis struct {
	calls []string
	fail  Kind
}

func (f *fakeNemesis) Start(ctx context.Context, s Step) (Step, error) {
	r, err := Resolve(s, View{Members: []string{"n1", "n2", "n3"}, Leader: "n1", Holder: "p1"})
	f.calls = append(f.calls, fmt.Sprintf("start %d %s %s", s.Index, s.Kind, strings.Join(r.Targets, ",")))
	if err == nil && s.Kind == f.fail {
		err = errors.New("injected failure")
	}
	return r, err
}

func (f *fakeNemesis) Stop(ctx context.Context, s Step) error {
	f.calls = append(f.calls, fmt.Sprintf("stop %d %s %s", s.Index, s.Kind, strings.Join(s.Targets, ",")))
	return nil
}

func TestPlayerOrder(t *testing.T) {
	s, err := Generate(options(FamilyClockBeyond, 3, time.Minute, 3))
	if err != nil {
		t.Fatal(err)
	}
	nem := &fakeNemesis{}
	rec := history.NewRecorder(nil)
	var waits []time.Duration
	p := &Player{Nemesis: nem, Rec: rec, Wait: func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}}
	if err := p.Play(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(waits) || len(waits) != 2*len(s.Steps) {
		t.Fatalf("waits %v", waits)
	}
	// The first window: skew starts, the nested pause and kill start and
	// stop inside it, then the skew stops.
	want := []string{"start 1 clock-skew n1", "start 2 pause-holder p1", "stop 2 pause-holder p1"}
	if !reflect.DeepEqual(nem.calls[:3], want) {
		t.Fatalf("calls %v", nem.calls)
	}
	evs := rec.History().Nemesis
	if len(evs) != 2*len(s.Steps) || evs[0].Targets[0] != "n1" || !strings.Contains(evs[0].Detail, "beyond the drift bound") {
		t.Fatalf("events %+v", evs)
	}
	last := nem.calls[len(nem.calls)-2:]
	if !strings.HasPrefix(last[0], fmt.Sprintf("start %d heal", len(s.Steps))) {
		t.Fatalf("does not end with the heal: %v", last)
	}
}

func TestPlayerCancelStopsAppliedFaults(t *testing.T) {
	s, err := Generate(options(FamilyKill, 5, time.Minute, 3))
	if err != nil {
		t.Fatal(err)
	}
	nem := &fakeNemesis{fail: KillMajority}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	p := &Player{Nemesis: nem, Wait: func(ctx context.Context, d time.Duration) error {
		n++
		if n == 2 { // after the first start: cancel while step 1 is applied
			cancel()
			return ctx.Err()
		}
		return nil
	}}
	err = p.Play(ctx, s)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Play = %v", err)
	}
	if len(nem.calls) != 2 || !strings.HasPrefix(nem.calls[0], "start 1") || !strings.HasPrefix(nem.calls[1], "stop 1") {
		t.Fatalf("calls %v", nem.calls)
	}
}

func TestPlayerEventOrderAtEqualTimes(t *testing.T) {
	sec := time.Second
	s := Schedule{Steps: []Step{
		{Index: 1, Kind: ClockSkew, At: sec, Hold: 4 * sec},
		{Index: 2, Kind: PauseHolder, At: 2 * sec, Hold: 3 * sec, Nested: true}, // ends with step 1
		{Index: 3, Kind: MemberAdd, At: 5 * sec},                                // instantaneous, at the same time
		{Index: 4, Kind: Heal, At: 5 * sec},
	}}
	var got []string
	for _, ev := range events(s) {
		phase := "start"
		if ev.stop {
			phase = "stop"
		}
		got = append(got, fmt.Sprintf("%s %d", phase, ev.index+1))
	}
	want := []string{"start 1", "start 2", "stop 2", "stop 1", "start 3", "stop 3", "start 4", "stop 4"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
