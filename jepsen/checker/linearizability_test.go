package checker

import (
	"bytes"
	"strings"
	"testing"

	"github.com/raftlease/raftlease/jepsen/history"
)

func checkLin(t *testing.T, h *history.History) Verdict {
	t.Helper()
	v, lin := Linearizability(h, opts())
	if lin == nil {
		t.Fatalf("no linearization for %d ops", len(h.Ops))
	}
	return v
}

func TestLinearizabilityLegal(t *testing.T) {
	tests := []struct {
		name string
		h    *history.History
	}{
		{"sequential lifecycle", hist(
			acquireOK("a", "x", "A", 3, 0, 10),
			getOK("c", "x", "A", 3, 11, 20),
			acquireHeld("b", "x", "B", "A", 3, 21, 30),
			renewOK("a", "x", "A", 3, 31, 40),
			acquireOK("a", "x", "A", 3, 41, 50), // idempotent: same token
			releaseOK("a", "x", "A", 3, 51, 60),
			getFree("c", "x", 61, 70),
			acquireOK("b", "x", "B", 9, 71, 80), // tokens are global: gaps are fine
			getOK("c", "x", "B", 9, 81, 90),
			renewRefused("a", "x", "A", 3, 91, 100),
		)},
		{"concurrent acquires, one wins", hist(
			acquireOK("a", "x", "A", 1, 0, 50),
			acquireHeld("b", "x", "B", "A", 1, 10, 60),
			getOK("c", "x", "A", 1, 20, 30), // concurrent with A's acquire, after its effect
		)},
		{"read concurrent with release may see either", hist(
			acquireOK("a", "x", "A", 1, 0, 10),
			releaseOK("a", "x", "A", 1, 20, 50),
			getOK("c", "x", "A", 1, 25, 30),
			getFree("d", "x", 26, 31),
		)},
		{"a retried release answered not_holder may have released", hist(
			acquireOK("a", "x", "A", 1, 0, 10),
			releaseRefused("a", "x", "A", 1, 20, 50), // an earlier attempt applied
			getFree("c", "x", 60, 70),
			acquireOK("b", "x", "B", 2, 71, 80),
		)},
		{"names are independent and tokens interleave", hist(
			acquireOK("a", "x", "A", 1, 0, 10),
			acquireOK("b", "y", "B", 2, 0, 10),
			acquireOK("c", "z", "C", 3, 11, 20),
			releaseOK("a", "x", "A", 1, 21, 30),
			acquireOK("b", "x", "B", 4, 31, 40),
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantValid(t, checkLin(t, tt.h)) })
	}
}

func TestLinearizabilityIllegal(t *testing.T) {
	tests := []struct {
		name string
		h    *history.History
		// ref is the operation the violation must name.
		ref string
	}{
		{"two holders granted at once", hist(
			acquireOK("a", "x", "A", 1, 0, 10),
			acquireOK("b", "x", "B", 2, 20, 30),
		), "op b#1"},
		{"stale read after a newer acknowledged acquire", hist(
			acquireOK("a", "x", "A", 1, 0, 10),
			releaseOK("a", "x", "A", 1, 11, 20),
			acquireOK("b", "x", "B", 3, 21, 30),
			getOK("c", "x", "A", 1, 40, 50),
		), "op c#1"},
		{"token goes down", hist(
			acquireOK("a", "x", "A", 5, 0, 10),
			releaseOK("a", "x", "A", 5, 11, 20),
			acquireOK("b", "x", "B", 3, 21, 30),
		), "op b#1"},
		{"renew accepted with a wrong token", hist(
			acquireOK("a", "x", "A", 5, 0, 10),
			renewOK("a", "x", "A", 7, 11, 20),
		), "op a#2"},
		{"idempotent acquire with another token", hist(
			acquireOK("a", "x", "A", 5, 0, 10),
			acquireOK("a", "x", "A", 6, 11, 20),
		), "op a#2"},
		{"read of a free lease while held", hist(
			acquireOK("a", "x", "A", 5, 0, 10),
			getFree("c", "x", 11, 20),
		), "op c#1"},
		{"lease_held while free", hist(
			acquireOK("a", "x", "A", 5, 0, 10),
			releaseOK("a", "x", "A", 5, 11, 20),
			acquireHeld("b", "x", "B", "A", 5, 21, 30),
		), "op b#1"},
		{"a not_applied acquire is dropped, so its effect is illegal", hist(
			notApplied(acquireOK("a", "x", "A", 5, 0, 10)),
			getOK("c", "x", "A", 5, 11, 20),
		), "op c#1"},
		{"without the ambiguous acquire, the same lease_held is illegal", hist(
			acquireHeld("b", "x", "B", "A", 4, 20, 30),
			acquireOK("a", "x", "A", 4, 40, 50),
		), "op b#1"},
		{"an ambiguous acquire cannot take effect while another holds", hist(
			ambiguous(acquireOK("a", "x", "A", 0, 0, 10)),
			acquireOK("b", "x", "B", 6, 20, 30),
			getOK("c", "x", "A", 4, 40, 50),
		), "op c#1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := checkLin(t, tt.h)
			wantViolation(t, v, "not linearizable", tt.ref)
			if !strings.Contains(v.Violations[0].Message, `lease "x"`) {
				t.Errorf("violation does not name the lease: %s", v.Violations[0].Message)
			}
		})
	}
}

func TestLinearizabilityAmbiguous(t *testing.T) {
	tests := []struct {
		name string
		h    *history.History
	}{
		{"ambiguous acquire that took effect", hist(
			ambiguous(acquireOK("a", "x", "A", 0, 0, 10)),
			getOK("c", "x", "A", 4, 20, 30),
			renewOK("a", "x", "A", 4, 31, 40),
			acquireHeld("b", "x", "B", "A", 4, 41, 50),
		)},
		{"ambiguous acquire that did not take effect", hist(
			ambiguous(acquireOK("a", "x", "A", 0, 0, 10)),
			getFree("c", "x", 20, 30),
			acquireOK("b", "x", "B", 4, 31, 40),
			getOK("c", "x", "B", 4, 41, 50),
		)},
		{"ambiguous acquire that took effect late", hist(
			ambiguous(acquireOK("a", "x", "A", 0, 0, 10)),
			getFree("c", "x", 20, 30),
			getOK("c", "x", "A", 4, 40, 50),
		)},
		{"pending acquire is ambiguous", hist(
			pending(acquireOK("a", "x", "A", 0, 0, 10)),
			getOK("c", "x", "A", 4, 20, 30),
		)},
		{"ambiguous release that took effect", hist(
			acquireOK("a", "x", "A", 4, 0, 10),
			ambiguous(releaseOK("a", "x", "A", 4, 11, 20)),
			acquireOK("b", "x", "B", 5, 30, 40),
		)},
		{"ambiguous release that did not", hist(
			acquireOK("a", "x", "A", 4, 0, 10),
			ambiguous(releaseOK("a", "x", "A", 4, 11, 20)),
			getOK("c", "x", "A", 4, 30, 40),
		)},
		{"ambiguous acquire needed: seen held before the holder's idempotent re-acquire", hist(
			ambiguous(acquireOK("a", "x", "A", 0, 0, 10)),
			acquireHeld("b", "x", "B", "A", 4, 20, 30),
			acquireOK("a", "x", "A", 4, 40, 50),
		)},
		{"release by the holder of an ambiguous acquire", hist(
			ambiguous(acquireOK("a", "x", "A", 0, 0, 10)),
			releaseOK("a", "x", "A", 7, 20, 30),
			acquireOK("b", "x", "B", 8, 31, 40),
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := checkLin(t, tt.h)
			wantValid(t, v)
			if tt.h.Ops[0].Outcome != history.OK && v.Counters["ambiguous"]+v.Counters["dropped_unobserved_ambiguous"] == 0 {
				t.Errorf("ambiguous not counted: %v", v.Counters)
			}
		})
	}
}

func TestLinearizabilityIgnoresElectorOps(t *testing.T) {
	op := acquireOK("a", "x", "A", 1, 0, 10)
	op.Workload = history.WorkloadElector
	v, lin := Linearizability(hist(op), opts())
	if !v.Skipped || lin != nil {
		t.Fatalf("elector ops checked: %+v", v)
	}
}

func TestLinearizabilityVisualisation(t *testing.T) {
	h := hist(
		acquireOK("a", "x", "A", 1, 0, 10),
		acquireOK("b", "x", "B", 2, 20, 30),
	)
	h.Nemesis = []history.NemesisEvent{
		{Step: 1, Phase: history.PhaseStart, Kind: "partition-leader", Targets: []string{"n1"}, Time: 5},
		{Step: 1, Phase: history.PhaseStop, Kind: "partition-leader", Time: 25},
	}
	_, lin := Linearizability(h, opts())
	var buf bytes.Buffer
	if err := lin.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{"partition-leader n1", "acquire(A)", "op b#1"} {
		if !strings.Contains(html, want) {
			t.Errorf("visualisation lacks %q", want)
		}
	}
}
