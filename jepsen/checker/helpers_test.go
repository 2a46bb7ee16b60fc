package checker

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftlease/raftlease/jepsen/history"
)

// Times in these tests are small integers of nanoseconds unless a test
// says otherwise; only their order matters, except for TTL arithmetic.

const longTTL = int64(time.Hour)

func lease(holder string, token uint64) *history.LeaseResult {
	return &history.LeaseResult{Holder: holder, Token: token}
}

func acquireOK(p, name, holder string, token uint64, inv, comp int64) history.Op {
	return history.Op{Process: p, Kind: history.Acquire, Name: name, Holder: holder, TTLNs: longTTL,
		Invoke: inv, Complete: comp, Outcome: history.OK, Lease: lease(holder, token)}
}

func acquireHeld(p, name, holder, cur string, curToken uint64, inv, comp int64) history.Op {
	return history.Op{Process: p, Kind: history.Acquire, Name: name, Holder: holder, TTLNs: longTTL,
		Invoke: inv, Complete: comp, Outcome: history.Refused, Code: history.CodeLeaseHeld, Lease: lease(cur, curToken)}
}

func renewOK(p, name, holder string, token uint64, inv, comp int64) history.Op {
	return history.Op{Process: p, Kind: history.Renew, Name: name, Holder: holder, Token: token, TTLNs: longTTL,
		Invoke: inv, Complete: comp, Outcome: history.OK, Lease: lease(holder, token)}
}

func renewRefused(p, name, holder string, token uint64, inv, comp int64) history.Op {
	return history.Op{Process: p, Kind: history.Renew, Name: name, Holder: holder, Token: token,
		Invoke: inv, Complete: comp, Outcome: history.Refused, Code: history.CodeNotHolder}
}

func releaseRefused(p, name, holder string, token uint64, inv, comp int64) history.Op {
	return history.Op{Process: p, Kind: history.Release, Name: name, Holder: holder, Token: token,
		Invoke: inv, Complete: comp, Outcome: history.Refused, Code: history.CodeNotHolder}
}

func releaseOK(p, name, holder string, token uint64, inv, comp int64) history.Op {
	return history.Op{Process: p, Kind: history.Release, Name: name, Holder: holder, Token: token,
		Invoke: inv, Complete: comp, Outcome: history.OK}
}

func getOK(p, name, holder string, token uint64, inv, comp int64) history.Op {
	return history.Op{Process: p, Kind: history.Get, Name: name, Invoke: inv, Complete: comp,
		Outcome: history.OK, Lease: lease(holder, token)}
}

func getFree(p, name string, inv, comp int64) history.Op {
	return history.Op{Process: p, Kind: history.Get, Name: name, Invoke: inv, Complete: comp,
		Outcome: history.Refused, Code: history.CodeNotFound}
}

// ambiguous turns op into one whose outcome is unknown (a timeout).
func ambiguous(op history.Op) history.Op {
	op.Outcome, op.Code, op.Lease = history.Ambiguous, history.CodeTimeout, nil
	return op
}

// pending turns op into one that never completed.
func pending(op history.Op) history.Op {
	op.Complete, op.Outcome, op.Code, op.Lease = 0, history.Pending, "", nil
	return op
}

// notApplied turns op into a definite failure.
func notApplied(op history.Op) history.Op {
	op.Outcome, op.Code, op.Lease = history.Failed, history.CodeNotApplied, nil
	return op
}

func withTTL(op history.Op, ttl time.Duration) history.Op {
	op.TTLNs = int64(ttl)
	if op.Lease != nil {
		l := *op.Lease
		l.TTLNs = int64(ttl)
		op.Lease = &l
	}
	return op
}

// hist numbers ops per process, marks them register-workload ops unless
// they name a workload, and sorts the history.
func hist(ops ...history.Op) *history.History {
	h := &history.History{}
	ids := map[string]int64{}
	for _, op := range ops {
		if op.Workload == "" {
			op.Workload = history.WorkloadRegister
		}
		if op.ID == 0 {
			ids[op.Process]++
			op.ID = ids[op.Process]
		}
		h.Ops = append(h.Ops, op)
	}
	h.Sort()
	return h
}

func opts() Options { return Options{MaxDrift: 0.1, OpTimeout: time.Second} }

func wantValid(t *testing.T, v Verdict) {
	t.Helper()
	if !v.Valid || v.ViolationCount != 0 {
		t.Fatalf("%s: want valid, got %+v", v.Name, v)
	}
	if v.Skipped {
		t.Fatalf("%s: skipped (%s), want checked", v.Name, v.Note)
	}
}

// wantViolation asserts that v failed with a violation whose message
// contains msg and whose refs include every ref in want.
func wantViolation(t *testing.T, v Verdict, msg string, want ...string) {
	t.Helper()
	if v.Valid && !v.Informational {
		t.Fatalf("%s: want a violation, got valid: %+v", v.Name, v)
	}
	for _, viol := range v.Violations {
		if !strings.Contains(viol.Message, msg) {
			continue
		}
		ok := true
		for _, r := range want {
			ok = ok && slices.Contains(viol.Refs, r)
		}
		if ok {
			return
		}
	}
	t.Fatalf("%s: no violation containing %q with refs %v in %+v", v.Name, msg, want, v.Violations)
}
