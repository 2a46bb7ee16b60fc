package checker

import (
	"testing"

	"github.com/raftlease/raftlease/jepsen/history"
)

func TestTokenMonotonicityValid(t *testing.T) {
	h := hist(
		acquireOK("a", "x", "A", 3, 0, 10),
		getOK("c", "x", "A", 3, 11, 20),
		releaseOK("a", "x", "A", 3, 21, 30),
		acquireOK("b", "x", "B", 7, 31, 40),
		acquireOK("b", "x", "B", 7, 41, 50),
		acquireOK("c", "y", "C", 5, 41, 50), // another name: its own sequence
	)
	h.Participants = []history.ParticipantEvent{
		{Participant: "B", Seq: 1, Name: "x", Event: history.Gained, Token: 7, Time: 45},
	}
	wantValid(t, TokenMonotonicity(h, opts()))
}

func TestTokenMonotonicityViolations(t *testing.T) {
	t.Run("M1 token with two holders", func(t *testing.T) {
		h := hist(
			acquireOK("a", "x", "A", 5, 0, 10),
			getOK("c", "x", "B", 5, 20, 30),
		)
		wantViolation(t, TokenMonotonicity(h, opts()), "M1", "op a#1", "op c#1")
	})
	t.Run("M2 token issued below one already seen", func(t *testing.T) {
		h := hist(
			acquireOK("a", "x", "A", 5, 0, 10),
			releaseOK("a", "x", "A", 5, 11, 20),
			acquireOK("b", "x", "B", 4, 21, 30),
		)
		wantViolation(t, TokenMonotonicity(h, opts()), "M2", "op a#1", "op b#1")
	})
	t.Run("M2 across a restart: a read before, a grant after", func(t *testing.T) {
		h := hist(
			getOK("c", "x", "A", 9, 0, 10),
			acquireOK("b", "x", "B", 2, 1000, 1010),
		)
		wantViolation(t, TokenMonotonicity(h, opts()), "M2", "op c#1", "op b#1")
	})
	t.Run("M3 token zero", func(t *testing.T) {
		wantViolation(t, TokenMonotonicity(hist(acquireOK("a", "x", "A", 0, 0, 10)), opts()), "M3", "op a#1")
	})
	t.Run("M4 participant's tokens went down", func(t *testing.T) {
		h := &history.History{Participants: []history.ParticipantEvent{
			{Participant: "p1", Seq: 1, Name: "e", Event: history.Gained, Token: 5, Time: 10},
			{Participant: "p1", Seq: 2, Name: "e", Event: history.Lost, Token: 5, Time: 20},
			{Participant: "p1", Seq: 3, Name: "e", Event: history.Gained, Token: 3, Time: 30},
		}}
		wantViolation(t, TokenMonotonicity(h, opts()), "M4", "participant p1#1", "participant p1#3")
	})
}
