package jepsen

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/raftlease/raftlease/jepsen/checker"
	"github.com/raftlease/raftlease/jepsen/history"
)

// widen stretches every completed operation's interval, keeping each
// process's operations in sequence: an invoke moves back towards the
// process's previous completion and a completion forward towards its next
// invoke, by up to spread. A linearization of the original history is one
// of the widened history too, so a correct history stays valid; widening
// makes the nearly sequential in-process history as concurrent as a
// cluster's (one operation in flight per client), which stresses the
// model's handling of overlap.
func widen(h *history.History, r *rand.Rand, spread time.Duration) *history.History {
	w := h.Clone()
	byProc := map[string][]int{}
	for i, op := range w.Ops {
		byProc[op.Process] = append(byProc[op.Process], i)
	}
	orig := h.Clone().Ops
	for _, idx := range byProc {
		for j, i := range idx {
			op := &w.Ops[i]
			lo := op.Invoke - int64(spread)
			if j > 0 {
				lo = max(lo, orig[idx[j-1]].Complete+1)
			}
			if lo < op.Invoke {
				op.Invoke -= r.Int64N(op.Invoke - lo)
			}
			if op.Pending() {
				continue
			}
			hi := op.Complete + int64(spread)
			if j+1 < len(idx) {
				hi = min(hi, orig[idx[j+1]].Invoke-1)
			}
			if hi > op.Complete {
				op.Complete += r.Int64N(hi - op.Complete)
			}
		}
	}
	w.Sort()
	return w
}

func TestRegisterWorkloadConcurrentHistory(t *testing.T) {
	s := seed(t)
	rec := history.NewRecorder(nil)
	rec.Run(history.RunInfo{Seed: s, Config: history.RunConfig{MaxDrift: 0.01}})
	// A quarter of the calls fail, as under a partition.
	runRegister(t, rec, &chaosStore{Store: newMemstore(t), r: rand.New(rand.NewPCG(s, 3)), heavy: true}, s, 10, 150)
	h := rec.History()
	w := widen(h, rand.New(rand.NewPCG(s, 4)), time.Hour)
	start := time.Now()
	v, _ := checker.Linearizability(w, checker.Options{})
	t.Logf("%d ops, widened: valid=%v in %v, %v", len(w.Ops), v.Valid, time.Since(start), v.Counters)
	if !v.Valid {
		t.Fatalf("widened correct history illegal: %+v", v)
	}
	for _, f := range []func(*history.History, checker.Options) checker.Verdict{checker.NoLostAcks, checker.TokenMonotonicity, checker.NoEarlyTakeover} {
		if v := f(w, checker.Options{MaxDrift: 0.01}); !v.Valid {
			t.Fatalf("%s on the widened history: %+v", v.Name, v)
		}
	}
}
