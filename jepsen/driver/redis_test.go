package driver

import (
	"context"
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

// TestRedisSchedule: the failover schedule is a function of its seed;
// every kill is followed by its rejoin before the next kill, kills are far
// enough apart for Sentinel, and the heal comes last.
func TestRedisSchedule(t *testing.T) {
	parts := []string{"p1", "p2"}
	for seed := range uint64(50) {
		for _, d := range []time.Duration{20 * time.Second, time.Minute, 5 * time.Minute} {
			s := RedisSchedule(seed, d, 10*time.Second, parts)
			if !reflect.DeepEqual(s, RedisSchedule(seed, d, 10*time.Second, parts)) {
				t.Fatalf("seed %d: two schedules differ", seed)
			}
			n := len(s.Steps)
			if n < 3 || s.Steps[n-1].Kind != nemesis.Heal || s.Steps[n-1].At >= d {
				t.Fatalf("seed %d %v: %s", seed, d, s)
			}
			var lastKill time.Duration = -time.Hour
			for i, st := range s.Steps[:n-1] {
				if st.Index != i+1 {
					t.Fatalf("seed %d: step %d has index %d", seed, i, st.Index)
				}
				switch {
				case i%2 == 0 && (st.Kind == KindRedisKillPrimary || st.Kind == KindRedisLostHandover):
					if st.At-lastKill < 2*redisFailoverTimeout+time.Second {
						t.Fatalf("seed %d: kills %v apart:\n%s", seed, st.At-lastKill, s)
					}
					lastKill = st.At
				case i%2 == 1 && st.Kind == KindRedisRejoin:
					if st.At <= lastKill || st.At+3*time.Second > s.Steps[n-1].At {
						t.Fatalf("seed %d: rejoin at %v:\n%s", seed, st.At, s)
					}
				default:
					t.Fatalf("seed %d: step %d is %s:\n%s", seed, i, st.Kind, s)
				}
			}
			if kills := (n - 1) / 2; d >= time.Minute && kills < int(d/(15*time.Second))-1 {
				t.Errorf("seed %d %v: only %d kills", seed, d, kills)
			}
		}
	}
}

// TestRedisFailoverRun makes one short Redis comparison run against a real
// redis-server primary and replica and three Sentinels: the run must
// complete, every checker must give a verdict (the Raft-only ones skipped),
// the primary must have been failed over, and the participants must have
// made accepted fenced writes. Whether violations occur is what the
// comparison measures, so it is logged, not asserted.
func TestRedisFailoverRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server, sentinels and participants for 20 s")
	}
	server, err := FindRedisServer()
	if err != nil {
		t.Skipf("skipping the Redis comparison run: %v", err)
	}
	_, jepsenBin := buildBinaries(t, t.TempDir())
	dir := filepath.Join(t.TempDir(), "run")
	// A seed whose schedule has a lost handover, so that the run shows
	// the fencing counter going back (or says why it did not).
	seed := uint64(time.Now().UnixNano() % 1_000_000)
	for !hasKind(RedisSchedule(seed, 20*time.Second, 7*time.Second, []string{"p1"}), KindRedisLostHandover) {
		seed++
	}
	t.Logf("seed %d", seed)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o, err := RunRedis(ctx, RedisConfig{Seed: seed, Duration: 20 * time.Second, Participants: 4, Dir: dir,
		RedisServer: server, Participant: []string{jepsenBin, "participant"}, FailoverEvery: 7 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(o.Line)
	if !o.Pass {
		t.Fatalf("run not completed: %s", o.Line)
	}
	if o.StepErrors > 0 {
		t.Errorf("%d of %d nemesis steps failed", o.StepErrors, o.Steps)
	}
	r := o.Results
	if r.Family != FamilyRedisFailover {
		t.Errorf("family %q", r.Family)
	}
	ok, failed := RedisFailovers(r)
	if ok < 1 || failed > 0 {
		t.Errorf("failovers: %d promoted, %d failed", ok, failed)
	}
	if r.Schedule != nil {
		for _, st := range r.Schedule.Steps {
			t.Logf("step %d %s %v: %s", st.Index, st.Kind, st.Targets, st.Observed)
			// With the holder paused past its TTL, another participant
			// must take over on the primary before the kill.
			if st.Kind == KindRedisLostHandover && !strings.Contains(st.Observed, "took over") {
				t.Errorf("step %d: no handover before the kill: %s", st.Index, st.Observed)
			}
		}
	}
	want := map[string]bool{ // checker → must have checked something
		checker.NameLinearizability: false, checker.NameFencedExclusion: true, checker.NameUnfencedOverlap: true,
		checker.NameTokenMonotonicity: true, checker.NameNoLostAcks: true, checker.NameNoEarlyTakeover: false,
		checker.NameOneLeaderPerTerm: true, checker.NameConvergence: false, checker.NameNoHangs: true,
		checker.NameNodeLogs: true, checker.NameDamagedData: false,
	}
	for name, fed := range want {
		v, found := r.Verdict(name)
		switch {
		case !found:
			t.Errorf("%s: no verdict", name)
		case fed && v.Skipped:
			t.Errorf("%s skipped: %s", name, v.Note)
		default:
			t.Logf("%s: valid=%t skipped=%t violations=%d %v %s", name, v.Valid, v.Skipped, v.ViolationCount, v.Counters, v.Note)
		}
	}
	// Without Raft nodes there is nothing for these to check: skipped, not failed.
	for _, name := range []string{checker.NameConvergence, checker.NameLinearizability} {
		if v, _ := r.Verdict(name); !v.Skipped || !v.Valid {
			t.Errorf("%s on a Redis run: %+v, want skipped", name, v)
		}
	}
	// The servers' roles were sampled: both servers were master at some
	// point (the replica was promoted), and the killed one was seen down.
	h, err := history.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, st := range h.Statuses {
		seen[st.Node+" "+st.State] = true
	}
	for _, want := range []string{"r1 leader", "r2 leader", "r1 follower", "r2 follower"} {
		if !seen[want] {
			t.Errorf("no status sample %q; have %v", want, seen)
		}
	}
	if !seen["r1 down"] && !seen["r2 down"] {
		t.Errorf("the killed server was never sampled down; have %v", seen)
	}
	if r.Writes.FencedAccepted == 0 {
		t.Error("no fenced write accepted")
	}
	t.Logf("fenced writes: %d accepted, %d rejected", r.Writes.FencedAccepted, r.Writes.FencedRejected)
	for _, f := range []string{"history.jsonl", "history-p1.jsonl", "results.json", "timeline.html", "schedule.json",
		"logs/r1.log", "logs/r2.log", "logs/s1.log", "logs/p1.log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func hasKind(s nemesis.Schedule, k nemesis.Kind) bool {
	for _, st := range s.Steps {
		if st.Kind == k {
			return true
		}
	}
	return false
}
