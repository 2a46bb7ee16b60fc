package jepsen

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raftlease/raftlease/jepsen/checker"
	"github.com/raftlease/raftlease/jepsen/history"
	"github.com/raftlease/raftlease/jepsen/nemesis"
)

func seed(t *testing.T) uint64 {
	s := rand.Uint64()
	t.Logf("seed %d", s)
	return s
}

func verdict(t *testing.T, r Results, name string) checker.Verdict {
	t.Helper()
	v, ok := r.Verdict(name)
	if !ok {
		t.Fatalf("no %s verdict", name)
	}
	return v
}

// TestRegisterWorkloadOnCorrectStore runs the register workload against
// the in-process store behind a fault-like wrapper (not_applied,
// applied-but-ambiguous, lost): every checker must pass. A failure here is
// a false positive of the model or a checker.
func TestRegisterWorkloadOnCorrectStore(t *testing.T) {
	dir := t.TempDir()
	rec, err := history.Create(filepath.Join(dir, HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	s := seed(t)
	rec.Run(history.RunInfo{Seed: s, Family: "none", Config: history.RunConfig{
		Workloads: []string{history.WorkloadRegister}, MaxDrift: 0.01, OpTimeoutNs: int64(time.Second)}})
	store := &chaosStore{Store: newMemstore(t), r: rand.New(rand.NewPCG(s, 1))}
	runRegister(t, rec, store, s, 6, 150)
	rec.End(0)
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Report(dir, rec.History())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Valid {
		for _, v := range r.Verdicts {
			if !v.Valid {
				t.Errorf("%s: %+v", v.Name, v.Violations)
			}
		}
		t.Fatalf("a correct store failed: %s", r.Summary)
	}
	lin := verdict(t, r, checker.NameLinearizability)
	if lin.Skipped || lin.Counters["operations"] < 500 || lin.Counters["ambiguous"]+lin.Counters["dropped_unobserved_ambiguous"] == 0 || lin.Counters["dropped_failed"] == 0 {
		t.Fatalf("linearizability did not check what it should: %+v", lin)
	}
	for _, name := range []string{checker.NameNoLostAcks, checker.NameTokenMonotonicity, checker.NameNoEarlyTakeover} {
		if v := verdict(t, r, name); v.Skipped {
			t.Errorf("%s skipped", name)
		}
	}
	t.Log(r.Summary)
}

// TestRegisterWorkloadFindsStaleReads is a negative control: reads that
// never refresh must make porcupine find the history illegal.
func TestRegisterWorkloadFindsStaleReads(t *testing.T) {
	rec := history.NewRecorder(nil)
	rec.Run(history.RunInfo{Seed: 1, Config: history.RunConfig{MaxDrift: 0.01}})
	runRegister(t, rec, &staleStore{Store: newMemstore(t), cache: map[string]cached{}}, seed(t), 4, 150)
	r, _ := Analyze(rec.History(), nil)
	v := verdict(t, r, checker.NameLinearizability)
	if v.Valid || len(v.Violations) == 0 || len(v.Violations[0].Refs) == 0 {
		t.Fatalf("stale reads not found: %+v", v)
	}
	if !strings.Contains(v.Violations[0].Message, "not linearizable") {
		t.Fatalf("violation %q", v.Violations[0].Message)
	}
}

// electorRecords adds an elector workload to rec by hand: p1 leads, is
// paused past its TTL, p2 takes over; p1 wakes and writes; p3 writes with
// p2's token (a violation); and node status, finals and a nemesis window.
func electorRecords(rec *history.Recorder, base int64) {
	ms := int64(time.Millisecond)
	at := func(d int64) int64 { return base + d*ms }
	ttl := int64(2 * time.Second)
	op := func(p string, kind history.Kind, token uint64, inv, comp int64, out history.Outcome, code string) {
		o := history.Op{Process: p, Workload: history.WorkloadElector, Kind: kind, Name: "elector", Holder: p, Token: token, TTLNs: ttl, Invoke: at(inv)}
		res := history.Result{Outcome: out, Code: code}
		if out == history.OK && kind != history.Release {
			res.Lease = &history.LeaseResult{Holder: p, Token: token, TTLNs: ttl}
		}
		rec.Invoke(o).CompleteAt(at(comp), res)
	}
	op("p1", history.Acquire, 10, 0, 5, history.OK, "")
	rec.Participant(history.ParticipantEvent{Participant: "p1", Name: "elector", Event: history.Gained, Token: 10, Time: at(6)})
	op("p1", history.Renew, 10, 500, 505, history.OK, "")
	rec.Write(history.FencedWrite{Index: 1, Writer: "p1", Token: 10, Fenced: true, Accepted: true, Time: at(600)})
	rec.Write(history.FencedWrite{Index: 2, Writer: "p1", Token: 10, Fenced: false, Accepted: true, Time: at(601)})
	rec.Nemesis(history.NemesisEvent{Step: 1, Phase: history.PhaseStart, Kind: string(nemesis.PauseHolder), Targets: []string{"p1"}, Time: at(700)})
	op("p2", history.Acquire, 11, 2600, 2605, history.OK, "") // after 500 + 2000×0.99
	rec.Participant(history.ParticipantEvent{Participant: "p2", Name: "elector", Event: history.Gained, Token: 11, Time: at(2606)})
	rec.Write(history.FencedWrite{Index: 3, Writer: "p2", Token: 11, Fenced: true, Accepted: true, Highest: 10, Time: at(2700)})
	rec.Write(history.FencedWrite{Index: 4, Writer: "p2", Token: 11, Fenced: false, Accepted: true, Time: at(2701)})
	rec.Nemesis(history.NemesisEvent{Step: 1, Phase: history.PhaseStop, Kind: string(nemesis.PauseHolder), Targets: []string{"p1"}, Time: at(3000)})
	rec.Write(history.FencedWrite{Index: 5, Writer: "p1", Token: 10, Fenced: true, Accepted: false, Highest: 11, Time: at(3010)})
	rec.Write(history.FencedWrite{Index: 6, Writer: "p1", Token: 10, Fenced: false, Accepted: true, Time: at(3011)})
	rec.Write(history.FencedWrite{Index: 7, Writer: "p2", Token: 11, Fenced: false, Accepted: true, Time: at(3020)})
	rec.Participant(history.ParticipantEvent{Participant: "p1", Name: "elector", Event: history.Lost, Token: 10, Reason: "safe-until passed", Time: at(3030)})
	rec.Write(history.FencedWrite{Index: 8, Writer: "p3", Token: 11, Fenced: true, Accepted: true, Highest: 11, Time: at(3100)})
	for _, n := range []string{"n1", "n2", "n3"} {
		state := "follower"
		if n == "n1" {
			state = "leader"
		}
		rec.Status(history.NodeStatus{Node: n, State: state, Term: 3, Leader: "n1", AppliedIndex: 40, Time: at(100)})
		rec.Final(history.NodeFinal{Node: n, AppliedIndex: 90, FSMHash: "c0ffee", Time: at(3500)})
	}
}

// TestCheckReproducesOnlineVerdicts writes a run directory online, then
// replays it with Check: the results must be the same, and every report
// file must be there.
func TestCheckReproducesOnlineVerdicts(t *testing.T) {
	dir := t.TempDir()
	rec, err := history.Create(filepath.Join(dir, HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	s := seed(t)
	cfg := history.RunConfig{
		Workloads: []string{history.WorkloadRegister, history.WorkloadElector},
		Nodes:     []string{"n1", "n2", "n3"}, Participants: []string{"p1", "p2", "p3"},
		ElectorName: "elector", ElectorTTLNs: int64(2 * time.Second), MaxDrift: 0.01, OpTimeoutNs: int64(time.Second),
	}
	rec.Run(history.RunInfo{Seed: s, Family: string(nemesis.FamilyPause), GitSHA: GitSHA(context.Background()), Config: cfg})
	runRegister(t, rec, &chaosStore{Store: newMemstore(t), r: rand.New(rand.NewPCG(s, 2))}, s, 3, 60)
	electorRecords(rec, history.Now())
	rec.End(0)
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	sched, err := nemesis.Generate(nemesis.Options{Family: nemesis.FamilyPause, Seed: s, Duration: time.Minute,
		Nodes: cfg.Nodes, Participants: cfg.Participants, TTL: 2 * time.Second, MaxDrift: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	if err := sched.WriteFile(filepath.Join(dir, ScheduleFile)); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, LogDir), 0o755)
	os.WriteFile(filepath.Join(dir, LogDir, "n2.log"), []byte("ok\npanic: boom\n"), 0o644)

	online, err := Report(dir, rec.History())
	if err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(filepath.Join(dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	offline, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(online, offline) {
		a, _ := json.MarshalIndent(online, "", " ")
		b, _ := json.MarshalIndent(offline, "", " ")
		t.Fatalf("Check differs from the online run:\n%s\n----\n%s", a, b)
	}
	second, _ := os.ReadFile(filepath.Join(dir, ResultsFile))
	if string(first) != string(second) {
		t.Fatal("results.json changed on replay")
	}

	// The run's verdicts: register checks pass; the elector part finds
	// p3's write and the panic, and reports the unfenced overlap.
	if online.Valid {
		t.Fatal("violations missed")
	}
	failed := online.Failed()
	if !reflect.DeepEqual(failed, []string{checker.NameFencedExclusion, checker.NameNodeLogs}) {
		t.Fatalf("failed checkers %v: %s", failed, online.Summary)
	}
	overlap := verdict(t, online, checker.NameUnfencedOverlap)
	if overlap.Counters["overlaps"] != 1 || !overlap.Valid {
		t.Fatalf("unfenced overlap: %+v", overlap)
	}
	for _, name := range []string{checker.NameNoEarlyTakeover, checker.NameOneLeaderPerTerm, checker.NameConvergence, checker.NameNoHangs} {
		if v := verdict(t, online, name); !v.Valid || v.Skipped {
			t.Errorf("%s: %+v", name, v)
		}
	}
	if online.Recovery.HolderDeath.Count != 1 || online.Recovery.HealToWrite.Count != 1 {
		t.Errorf("recovery %+v", online.Recovery)
	}
	if online.Schedule == nil || online.Schedule.Seed != s || online.Seed != s || online.Family != "pause" {
		t.Errorf("run identity lost: seed %d family %s schedule %v", online.Seed, online.Family, online.Schedule != nil)
	}
	if !strings.HasPrefix(online.Summary, "run seed=") || !strings.Contains(online.Summary, "valid=false") {
		t.Errorf("summary %q", online.Summary)
	}
	for _, f := range []string{ResultsFile, TimelineFile, LinearizabilityFile} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(data) == 0 {
			t.Fatalf("%s: %v", f, err)
		}
		if f == TimelineFile && !strings.Contains(string(data), "<svg") {
			t.Fatal("timeline without svg")
		}
	}
	if online.Files["linearizability"] != LinearizabilityFile || online.Files["timeline"] != TimelineFile {
		t.Errorf("files %v", online.Files)
	}
}

func TestCheckMissingHistory(t *testing.T) {
	if _, err := Check(t.TempDir()); err == nil {
		t.Fatal("Check of an empty directory succeeded")
	}
}
