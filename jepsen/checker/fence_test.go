package checker

import (
	"testing"

	"github.com/raftlease/raftlease/jepsen/history"
)

func writes(ws ...history.FencedWrite) *history.History {
	h := &history.History{}
	for i, w := range ws {
		w.Index = int64(i + 1)
		if w.Time == 0 {
			w.Time = int64(i+1) * 10
		}
		h.Writes = append(h.Writes, w)
	}
	return h
}

func fw(writer string, token uint64, accepted bool) history.FencedWrite {
	return history.FencedWrite{Writer: writer, Token: token, Fenced: true, Accepted: accepted}
}

func uw(writer string, token uint64, at int64) history.FencedWrite {
	return history.FencedWrite{Writer: writer, Token: token, Accepted: true, Time: at}
}

func TestFencedExclusionValid(t *testing.T) {
	h := writes(
		fw("p1", 1, true), fw("p1", 1, true),
		fw("p2", 2, true),
		fw("p1", 1, false), // the deposed leader, fenced off
		fw("p2", 2, true),
		uw("p1", 1, 65), // unfenced: not this checker's business
	)
	h.Participants = []history.ParticipantEvent{
		{Participant: "p1", Seq: 1, Event: history.Gained, Token: 1, Time: 1},
		{Participant: "p2", Seq: 1, Event: history.Gained, Token: 2, Time: 25},
	}
	v := FencedExclusion(h, opts())
	wantValid(t, v)
	if v.Counters["stale_rejected"] != 1 || v.Counters["fenced_accepted"] != 4 || v.Counters["unfenced"] != 1 {
		t.Fatalf("counters: %v", v.Counters)
	}
}

func TestFencedExclusionViolations(t *testing.T) {
	t.Run("F1 one token, two writers", func(t *testing.T) {
		v := FencedExclusion(writes(fw("p1", 2, true), fw("p2", 2, true)), opts())
		wantViolation(t, v, "F1", "write #1", "write #2")
	})
	t.Run("F2 accepted token went down", func(t *testing.T) {
		v := FencedExclusion(writes(fw("p2", 3, true), fw("p1", 2, true)), opts())
		wantViolation(t, v, "F2", "write #1", "write #2")
	})
	t.Run("F3 current token rejected", func(t *testing.T) {
		v := FencedExclusion(writes(fw("p1", 3, true), fw("p2", 3, false)), opts())
		wantViolation(t, v, "F3", "write #2")
	})
	t.Run("F4 writer is not the token's holder", func(t *testing.T) {
		h := writes(fw("p1", 4, true))
		h.Participants = []history.ParticipantEvent{{Participant: "p2", Seq: 1, Event: history.Gained, Token: 4, Time: 1}}
		wantViolation(t, FencedExclusion(h, opts()), "F4", "participant p2#1", "write #1")
	})
}

func TestUnfencedOverlap(t *testing.T) {
	clean := writes(uw("p1", 1, 10), uw("p1", 1, 20), uw("p2", 2, 30), uw("p2", 2, 40))
	v := UnfencedOverlap(clean, opts())
	if !v.Valid || !v.Informational || v.ViolationCount != 0 || v.Counters["stints"] != 2 {
		t.Fatalf("clean handover: %+v", v)
	}
	// p1 paused across the TTL, resumes and writes while p2 leads.
	overlapping := writes(uw("p1", 1, 10), uw("p2", 2, 30), uw("p1", 1, 35), uw("p2", 2, 40))
	v = UnfencedOverlap(overlapping, opts())
	if !v.Valid {
		t.Fatalf("overlap must be reported, not fail: %+v", v)
	}
	if v.Counters["overlaps"] != 1 || v.Counters["overlap_ns"] != 5 {
		t.Fatalf("counters: %v", v.Counters)
	}
	wantViolation(t, v, "both wrote unfenced", "write #1", "write #3", "write #2")
}
