package report

import (
	"bytes"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/raftlease/raftlease/jepsen/checker"
	"github.com/raftlease/raftlease/jepsen/history"
	"github.com/raftlease/raftlease/jepsen/nemesis"
)

func sample() (*history.History, Results) {
	s := int64(time.Second)
	h := &history.History{
		Run: &history.RunInfo{Seed: 7, Family: "pause", Start: 0, Config: history.RunConfig{
			Nodes: []string{"n1", "n2", "n3"}, Participants: []string{"p1", "p2", "p3"}, MaxDrift: 0.01}},
		Ops: []history.Op{
			{Process: "c1", ID: 1, Kind: history.Acquire, Name: "x", Holder: "A", Invoke: s, Complete: s + 5e6, Outcome: history.OK, Lease: &history.LeaseResult{Holder: "A", Token: 1}},
			{Process: "c1", ID: 2, Kind: history.Get, Name: "x", Invoke: 2 * s},
		},
		Nemesis: []history.NemesisEvent{
			{Step: 1, Phase: history.PhaseStart, Kind: "pause-holder", Targets: []string{"p1"}, Detail: "p1", Time: 3 * s},
			{Step: 1, Phase: history.PhaseStop, Kind: "pause-holder", Targets: []string{"p1"}, Time: 6 * s},
			{Step: 2, Phase: history.PhaseStart, Kind: "kill-leader", Targets: []string{"n1"}, Time: 7 * s},
			{Step: 2, Phase: history.PhaseStop, Kind: "kill-leader", Targets: []string{"n1"}, Time: 8 * s},
		},
		Participants: []history.ParticipantEvent{
			{Participant: "p1", Seq: 1, Name: "e", Event: history.Gained, Token: 4, Time: s},
			{Participant: "p1", Seq: 2, Name: "e", Event: history.Lost, Token: 4, Time: 5 * s},
			{Participant: "p2", Seq: 1, Name: "e", Event: history.Gained, Token: 5, Time: 5*s + 1e8},
		},
		Writes: []history.FencedWrite{
			{Index: 1, Writer: "p1", Token: 4, Fenced: true, Accepted: true, Time: 2 * s},
			{Index: 2, Writer: "p2", Token: 5, Fenced: true, Accepted: true, Time: 5*s + 2e8},
			{Index: 3, Writer: "p1", Token: 4, Fenced: true, Accepted: false, Highest: 5, Time: 6 * s},
			{Index: 4, Writer: "p1", Token: 4, Fenced: false, Accepted: true, Time: 6*s + 1},
			{Index: 5, Writer: "p3", Token: 5, Fenced: true, Accepted: true, Highest: 5, Time: 9 * s},
		},
		Statuses: []history.NodeStatus{
			{Node: "n1", State: "leader", Term: 1, Time: s},
			{Node: "n2", State: "follower", Term: 1, Time: s},
			{Node: "n2", State: "candidate", Term: 2, Time: 7*s + 1e8},
			{Node: "n2", State: "leader", Term: 2, Time: 7*s + 3e8},
		},
		EndTime: 10 * s,
	}
	h.Sort()
	verdicts, _ := checker.All(h, nil, checker.OptionsFor(h.Config()))
	r := Results{
		Seed: 7, Family: "pause", Config: h.Config(), StartNs: 0, EndNs: 10 * s, DurationNs: 10 * s,
		Ops: CountOps(h), Writes: CountWrites(h), Verdicts: verdicts, Valid: checker.Valid(verdicts),
		Recovery:  checker.Recoveries(h),
		Latencies: map[string]checker.Distribution{"acquire": checker.Summarise([]time.Duration{5e6})},
		Files:     map[string]string{"history": "history.jsonl"},
	}
	sched, _ := nemesis.Generate(nemesis.Options{Family: nemesis.FamilyPause, Seed: 7, Duration: time.Minute,
		Nodes: []string{"n1", "n2", "n3"}, Participants: []string{"p1", "p2", "p3"}, TTL: 2 * time.Second})
	r.Schedule = &sched
	r.Summary = Summary(r)
	return h, r
}

func TestResultsRoundTrip(t *testing.T) {
	_, r := sample()
	path := filepath.Join(t.TempDir(), "results.json")
	if err := WriteResults(path, r); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip differs:\n%+v\n%+v", got, r)
	}
}

func TestSummary(t *testing.T) {
	_, r := sample()
	// p3 wrote with p2's token: fenced exclusion fails.
	want := "run seed=7 family=pause ops=2 valid=false violations=2 failed=fenced-exclusion duration=10s"
	if r.Summary != want {
		t.Fatalf("summary\n%s\nwant\n%s", r.Summary, want)
	}
	if r.Ops.Pending != 1 || r.Ops.ByKind["get"]["pending"] != 1 || r.Writes.FencedRejected != 1 || r.Writes.Unfenced != 1 {
		t.Fatalf("counts %+v %+v", r.Ops, r.Writes)
	}
}

func TestTimeline(t *testing.T) {
	h, r := sample()
	var buf bytes.Buffer
	if err := WriteTimeline(&buf, h, r); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if strings.Contains(page, "<script") || strings.Contains(page, "<link") || regexp.MustCompile(`(src|href)="http`).MatchString(page) {
		t.Fatal("timeline is not self-contained")
	}
	if n := strings.Count(page, "<svg"); n != 1 {
		t.Fatalf("%d svg elements", n)
	}
	// one row per participant and node, plus the nemesis row
	for _, row := range []string{"nemesis", "p1", "p2", "p3", "n1", "n2", "n3"} {
		if !strings.Contains(page, `font-size="12">`+row+"</text>") {
			t.Errorf("no row %s", row)
		}
	}
	for class, n := range map[string]int{
		`class="write accepted"`:  2,
		`class="write rejected"`:  1,
		`class="write unfenced"`:  1,
		`class="write violating"`: 1, // write #5 reuses p2's token 5
		`class="lead"`:            2,
		`class="node-leader"`:     2,
		`class="node-candidate"`:  1,
		`class="paused"`:          1,
		`class="down"`:            1,
		`class="band"`:            2,
	} {
		if got := strings.Count(page, class); got != n {
			t.Errorf("%s: %d, want %d", class, got, n)
		}
	}
	if !strings.Contains(page, "p1 leads e with token 4") {
		t.Error("no tooltip for p1's term")
	}
	path := filepath.Join(t.TempDir(), "timeline.html")
	if err := WriteTimelineFile(path, h, r); err != nil {
		t.Fatal(err)
	}
}
