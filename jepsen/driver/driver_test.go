package driver

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftlease/raftlease/jepsen/checker"
	"github.com/raftlease/raftlease/jepsen/history"
)

// buildBinaries builds leasenode and jepsen (for its participant
// subcommand) into dir.
func buildBinaries(t *testing.T, dir string) (leasenode, jepsenBin string) {
	t.Helper()
	leasenode, jepsenBin = filepath.Join(dir, "leasenode"), filepath.Join(dir, "jepsen")
	for out, pkg := range map[string]string{leasenode: "./cmd/leasenode", jepsenBin: "./cmd/jepsen"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = filepath.Join("..", "..")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return leasenode, jepsenBin
}

// TestHooksModeRun makes one short partition run against real leasenode
// processes, with links cut through the unsafe test hooks: the run must be
// valid, and every checker must have had something to check.
func TestHooksModeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts leasenode processes for half a minute")
	}
	bin := t.TempDir()
	leasenode, jepsenBin := buildBinaries(t, bin)
	dir := filepath.Join(t.TempDir(), "run")
	seed := uint64(time.Now().UnixNano() % 1_000_000)
	t.Logf("seed %d", seed)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o, err := Run(ctx, Config{Family: "partition", Seed: seed, Duration: 25 * time.Second, Nodes: 3,
		Participants: 3, Clients: 6, Dir: dir, Mode: ModeHooks, Leasenode: leasenode,
		Participant: []string{jepsenBin, "participant"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(o.Line)
	if !o.Pass {
		for _, v := range o.Results.Verdicts {
			if !v.Valid {
				t.Errorf("%s: %+v", v.Name, v.Violations)
			}
		}
		t.Fatalf("run failed: %s", o.Line)
	}
	if o.Steps < 2 || o.StepErrors > 0 {
		t.Errorf("nemesis steps %d, errors %d", o.Steps, o.StepErrors)
	}
	r := o.Results
	for _, name := range []string{checker.NameLinearizability, checker.NameFencedExclusion, checker.NameNoEarlyTakeover,
		checker.NameOneLeaderPerTerm, checker.NameConvergence, checker.NameNoLostAcks} {
		v, ok := r.Verdict(name)
		if !ok || v.Skipped {
			t.Errorf("%s skipped or missing: %+v", name, v)
		}
	}
	if lin, _ := r.Verdict(checker.NameLinearizability); lin.Counters["operations"] < 300 {
		t.Errorf("only %d register operations", lin.Counters["operations"])
	}
	if r.Writes.FencedAccepted == 0 {
		t.Error("no fenced write accepted")
	}
	for _, f := range []string{"history.jsonl", "history-p1.jsonl", "results.json", "timeline.html", "schedule.json", "logs/n1.log", "logs/p1.log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestCompleteKilled: a killed participant's pending operations are
// completed as ambiguous, after its torn last line is cut.
func TestCompleteKilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history-p1.jsonl")
	rec, err := history.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rec.Invoke(history.Op{Process: "p1", Kind: history.Acquire, Name: "e", Holder: "p1"}).Complete(history.Result{Outcome: history.OK, Lease: &history.LeaseResult{Holder: "p1", Token: 3}})
	rec.Participant(history.ParticipantEvent{Participant: "p1", Name: "e", Event: history.Gained, Token: 3})
	rec.Invoke(history.Op{Process: "p1", Kind: history.Renew, Name: "e", Holder: "p1", Token: 3})
	rec.Close()
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"type":"invoke","op":{"proc`)
	f.Close()
	n, err := completeKilled(path, history.Now())
	if err != nil || n != 1 {
		t.Fatalf("completed %d: %v", n, err)
	}
	h, err := history.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Ops) != 2 || h.Ops[1].Outcome != history.Ambiguous || h.Truncated {
		t.Fatalf("ops %+v truncated %v", h.Ops, h.Truncated)
	}
	if len(h.Participants) != 2 || h.Participants[1].Event != history.Lost || h.Participants[1].Token != 3 {
		t.Fatalf("events %+v", h.Participants)
	}
}
