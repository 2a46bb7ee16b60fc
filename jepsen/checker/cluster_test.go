package checker

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftlease/raftlease/jepsen/history"
)

func st(node, state string, term uint64, at int64) history.NodeStatus {
	return history.NodeStatus{Node: node, State: state, Term: term, Time: at}
}

func TestOneLeaderPerTerm(t *testing.T) {
	ok := &history.History{Statuses: []history.NodeStatus{
		st("n1", "leader", 1, 10), st("n2", "follower", 1, 10),
		st("n1", "leader", 1, 20), st("n2", "leader", 2, 30),
		st("n1", "leader", 1, 31), // a deposed leader still thinks so: another term
	}}
	wantValid(t, OneLeaderPerTerm(ok, opts()))

	bad := &history.History{Statuses: []history.NodeStatus{
		st("n1", "leader", 2, 10), st("n2", "leader", 2, 20),
	}}
	wantViolation(t, OneLeaderPerTerm(bad, opts()), "term 2 has two leaders", "status n1@10", "status n2@20")

	if v := OneLeaderPerTerm(&history.History{}, opts()); !v.Skipped || !v.Valid {
		t.Fatalf("no samples: %+v", v)
	}
}

func TestConvergence(t *testing.T) {
	f := func(node string, applied uint64, hash string) history.NodeFinal {
		return history.NodeFinal{Node: node, AppliedIndex: applied, FSMHash: hash, Time: 1}
	}
	wantValid(t, Convergence(&history.History{Finals: []history.NodeFinal{f("n1", 9, "ab"), f("n2", 9, "ab"), f("n3", 9, "ab")}}, opts()))
	wantViolation(t, Convergence(&history.History{Finals: []history.NodeFinal{f("n1", 9, "ab"), f("n2", 9, "cd"), f("n3", 9, "ab")}}, opts()), "did not converge", "final n2")
	wantViolation(t, Convergence(&history.History{Finals: []history.NodeFinal{f("n1", 9, "ab"), f("n2", 8, "ab")}}, opts()), "n2: applied 8")
	unreadable := f("n3", 0, "")
	unreadable.Error = "connection refused"
	wantViolation(t, Convergence(&history.History{Finals: []history.NodeFinal{f("n1", 9, "ab"), unreadable}}, opts()), "unreadable", "final n3")
}

func TestNoHangs(t *testing.T) {
	s := int64(time.Second)
	o := opts() // OpTimeout 1 s, grace 1 s: limit 2 s
	ok := hist(
		getFree("c", "x", 0, s/2),
		ambiguous(acquireOK("a", "x", "A", 0, 0, s)), // a timeout returns at the op timeout
		pending(acquireOK("b", "x", "B", 0, 9*s, 0)), // invoked just before the end
	)
	ok.EndTime = 10 * s
	v := NoHangs(ok, o)
	wantValid(t, v)
	if v.Counters["pending_at_end"] != 1 {
		t.Fatalf("counters: %v", v.Counters)
	}

	slow := hist(renewRefused("a", "x", "A", 1, 0, 3*s))
	wantViolation(t, NoHangs(slow, o), "took 3s", "op a#1")

	stuck := hist(pending(getFree("c", "x", s, 0)))
	stuck.EndTime = 10 * s
	wantViolation(t, NoHangs(stuck, o), "still pending", "op c#1")

	// A participant paused by the nemesis while its renew was in flight
	// answers late: its process stopped, not the store.
	paused := renewOK("p1", "e", "p1", 1, 0, 5*s)
	paused.Workload = history.WorkloadElector
	other := renewOK("p2", "e", "p2", 2, 0, 5*s)
	other.Workload = history.WorkloadElector
	h := hist(paused, other)
	h.Nemesis = []history.NemesisEvent{
		{Step: 1, Phase: history.PhaseStart, Kind: "pause-holder", Targets: []string{"p1"}, Time: s / 2},
		{Step: 1, Phase: history.PhaseStop, Kind: "pause-holder", Targets: []string{"p1"}, Time: 4 * s},
	}
	v = NoHangs(h, o)
	wantViolation(t, v, "took 5s", "op p2#1")
	if v.ViolationCount != 1 || v.Counters["excused_process_stopped"] != 1 {
		t.Fatalf("paused participant not excused: %+v", v)
	}
}

func TestNodeLogs(t *testing.T) {
	dir := t.TempDir()
	clean := filepath.Join(dir, "n1.log")
	dirty := filepath.Join(dir, "n2.log")
	os.WriteFile(clean, []byte("starting\nleader elected\n"), 0o644)
	os.WriteFile(dirty, []byte("starting\nWARNING: DATA RACE\nok\npanic: runtime error: index out of range\n"), 0o644)
	wantValid(t, NodeLogs([]string{clean}, opts()))
	v := NodeLogs([]string{clean, dirty}, opts())
	wantViolation(t, v, "DATA RACE", "n2.log:2")
	wantViolation(t, v, "panic:", "n2.log:4")
	if v.ViolationCount != 2 {
		t.Fatalf("want 2 violations, got %+v", v)
	}
	if v := NodeLogs(nil, opts()); !v.Skipped {
		t.Fatalf("no files: %+v", v)
	}
}

func TestRecoveries(t *testing.T) {
	h := hist(
		renewOK("a", "x", "A", 1, 15, 18),
		renewOK("a", "x", "A", 1, 21, 23),
	)
	h.Statuses = []history.NodeStatus{
		st("n1", "leader", 1, 5), st("n2", "follower", 1, 5),
		st("n1", "leader", 1, 12), // isolated, still believes it
		st("n2", "leader", 2, 15),
	}
	h.Nemesis = []history.NemesisEvent{
		{Step: 1, Phase: history.PhaseStart, Kind: "partition-leader", Targets: []string{"n1"}, Time: 10},
		{Step: 1, Phase: history.PhaseStop, Kind: "partition-leader", Targets: []string{"n1"}, Time: 20},
		{Step: 2, Phase: history.PhaseStart, Kind: "kill-holder", Targets: []string{"p1"}, Time: 30},
		{Step: 2, Phase: history.PhaseStop, Kind: "kill-holder", Targets: []string{"p1"}, Time: 40},
		{Step: 3, Phase: history.PhaseStart, Kind: "kill-leader", Targets: []string{"n2"}, Time: 50},
		// A ring that leaves the leader in place is no leader loss.
		{Step: 5, Phase: history.PhaseStart, Kind: "partition-ring", Targets: []string{"n1", "n2"}, Time: 13},
		{Step: 5, Phase: history.PhaseStop, Kind: "partition-ring", Targets: []string{"n1", "n2"}, Time: 14},
		// A slow link on the leader does not depose it: no leader loss.
		{Step: 4, Phase: history.PhaseStart, Kind: "link-delay", Targets: []string{"n2"}, Time: 16},
		{Step: 4, Phase: history.PhaseStop, Kind: "link-delay", Targets: []string{"n2"}, Time: 17},
	}
	h.Writes = []history.FencedWrite{
		{Index: 1, Writer: "p1", Token: 1, Fenced: true, Accepted: true, Time: 25},
		{Index: 2, Writer: "p1", Token: 1, Fenced: true, Accepted: false, Time: 31},
		{Index: 3, Writer: "p2", Token: 2, Fenced: true, Accepted: true, Time: 34},
		{Index: 4, Writer: "p2", Token: 2, Fenced: true, Accepted: true, Time: 45},
	}
	r := Recoveries(h)
	if r.LeaderLoss.Count != 1 || r.LeaderLoss.P50 != 5 || r.LeaderLoss.Unrecovered != 1 {
		t.Errorf("leader loss: %+v", r.LeaderLoss)
	}
	if r.HealToWrite.Count != 4 || r.HealToWrite.Min != 3 || r.HealToWrite.Max != 6 {
		t.Errorf("heal to write: %+v", r.HealToWrite)
	}
	if r.HolderDeath.Count != 1 || r.HolderDeath.P99 != 4 {
		t.Errorf("holder death: %+v", r.HolderDeath)
	}
}

func TestSummarise(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i))
	}
	d := Summarise(s)
	if d.Count != 100 || d.Min != 1 || d.P50 != 50 || d.P90 != 90 || d.P99 != 99 || d.Max != 100 {
		t.Fatalf("%+v", d)
	}
	if s[0] != 100 {
		t.Fatal("Summarise sorted its input")
	}
	if d := Summarise(nil); d.Count != 0 {
		t.Fatal(d)
	}
}
