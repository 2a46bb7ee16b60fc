package checker

import (
	"testing"

	"github.com/raftlease/raftlease/jepsen/history"
)

func TestDamagedDataRefused(t *testing.T) {
	start := func(observed, err string) history.NemesisEvent {
		return history.NemesisEvent{Step: 1, Phase: history.PhaseStart, Kind: KindStoreCorrupt, Targets: []string{"n2"},
			Detail: "n2; damage the log-store", Time: 10, Observed: observed, Error: err}
	}
	stop := history.NemesisEvent{Step: 1, Phase: history.PhaseStop, Kind: KindStoreCorrupt, Time: 20}
	cases := []struct {
		name    string
		events  []history.NemesisEvent
		valid   bool
		skipped bool
	}{
		{"no damage", []history.NemesisEvent{{Step: 1, Phase: history.PhaseStart, Kind: "kill-random", Time: 1}}, true, true},
		{"refused", []history.NemesisEvent{start(ObservedRefused+"cluster: damaged data dir: raft.db: bolt: invalid database; refusing to start", ""), stop}, true, false},
		{"started anyway", []history.NemesisEvent{start("", "n2 was still running 20s after it was started on a damaged data dir"), stop}, false, false},
		{"exit without a clear message", []history.NemesisEvent{start(ObservedRefused+"exit status 2", ""), stop}, false, false},
		{"nothing observed", []history.NemesisEvent{start("", ""), stop}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := DamagedDataRefused(&history.History{Nemesis: tc.events}, Options{})
			if v.Valid != tc.valid || v.Skipped != tc.skipped {
				t.Fatalf("valid=%t skipped=%t, want %t %t: %+v", v.Valid, v.Skipped, tc.valid, tc.skipped, v)
			}
			if !tc.valid && (v.ViolationCount != 1 || len(v.Violations[0].Refs) == 0) {
				t.Fatalf("want one violation with a reference: %+v", v)
			}
		})
	}
}
