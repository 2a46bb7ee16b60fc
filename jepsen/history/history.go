package history

import (
	"cmp"
	"fmt"
	"slices"
)

// History is a whole run, merged from every recording process and sorted:
// operations by invoke time, events by time, writes by register order.
// Treat it as read-only.
type History struct {
	// Run is the run's header; nil when no file carried one.
	Run          *RunInfo
	Ops          []Op
	Nemesis      []NemesisEvent
	Participants []ParticipantEvent
	Writes       []FencedWrite
	Statuses     []NodeStatus
	Finals       []NodeFinal
	// EndTime is the time of the End record, or 0 when none was written.
	EndTime int64
	// Truncated is set when a file ended in a torn line (its process was
	// killed mid-write); the torn record was skipped.
	Truncated bool
}

// Config returns the run's configuration, or the zero RunConfig.
func (h *History) Config() RunConfig {
	if h.Run == nil {
		return RunConfig{}
	}
	return h.Run.Config
}

// Start returns the run's start time: the RunInfo's, or the earliest time
// recorded.
func (h *History) Start() int64 {
	if h.Run != nil && h.Run.Start != 0 {
		return h.Run.Start
	}
	first := int64(0)
	h.eachTime(func(t int64) {
		if t != 0 && (first == 0 || t < first) {
			first = t
		}
	})
	return first
}

// End returns the end of the run: the End record's time, or the latest
// time recorded when that is later (a participant's file may hold records
// made after the harness wrote its End).
func (h *History) End() int64 { return h.LastTime() }

// LastTime returns the latest time any record carries.
func (h *History) LastTime() int64 {
	last := h.EndTime
	h.eachTime(func(t int64) { last = max(last, t) })
	return last
}

func (h *History) eachTime(f func(int64)) {
	for _, o := range h.Ops {
		f(o.Invoke)
		f(o.Complete)
	}
	for _, e := range h.Nemesis {
		f(e.Time)
	}
	for _, e := range h.Participants {
		f(e.Time)
	}
	for _, w := range h.Writes {
		f(w.Time)
	}
	for _, s := range h.Statuses {
		f(s.Time)
	}
	for _, s := range h.Finals {
		f(s.Time)
	}
}

// Clone returns a copy of h whose slices it does not share.
func (h *History) Clone() *History {
	c := *h
	if h.Run != nil {
		r := *h.Run
		c.Run = &r
	}
	c.Ops = slices.Clone(h.Ops)
	c.Nemesis = slices.Clone(h.Nemesis)
	c.Participants = slices.Clone(h.Participants)
	c.Writes = slices.Clone(h.Writes)
	c.Statuses = slices.Clone(h.Statuses)
	c.Finals = slices.Clone(h.Finals)
	return &c
}

// Sort puts every list of h in its canonical order. Builders call it;
// tests that assemble a History by hand may too.
func (h *History) Sort() {
	slices.SortStableFunc(h.Ops, func(a, b Op) int {
		return cmp.Or(cmp.Compare(a.Invoke, b.Invoke), cmp.Compare(a.Process, b.Process), cmp.Compare(a.ID, b.ID))
	})
	slices.SortStableFunc(h.Nemesis, func(a, b NemesisEvent) int {
		return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.Step, b.Step), cmp.Compare(phaseOrder(a.Phase), phaseOrder(b.Phase)))
	})
	slices.SortStableFunc(h.Participants, func(a, b ParticipantEvent) int {
		return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.Participant, b.Participant), cmp.Compare(a.Seq, b.Seq))
	})
	slices.SortStableFunc(h.Writes, func(a, b FencedWrite) int { return cmp.Compare(a.Index, b.Index) })
	slices.SortStableFunc(h.Statuses, func(a, b NodeStatus) int {
		return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.Node, b.Node))
	})
	slices.SortStableFunc(h.Finals, func(a, b NodeFinal) int { return cmp.Compare(a.Node, b.Node) })
}

func phaseOrder(p string) int {
	if p == PhaseStop {
		return 1
	}
	return 0
}

type opKey struct {
	process string
	id      int64
}

// builder assembles a History from records in any order of files.
type builder struct {
	h     History
	index map[opKey]int
}

func (b *builder) add(rec Record) error {
	switch rec.Type {
	case TypeRun:
		if rec.Run == nil {
			return fmt.Errorf("run record without run")
		}
		if b.h.Run == nil {
			r := *rec.Run
			b.h.Run = &r
		}
	case TypeInvoke:
		if rec.Op == nil {
			return fmt.Errorf("invoke record without op")
		}
		op := *rec.Op
		op.Complete, op.Outcome, op.Code, op.Lease, op.Error = 0, Pending, "", nil, ""
		k := opKey{op.Process, op.ID}
		if b.index == nil {
			b.index = make(map[opKey]int)
		}
		if _, dup := b.index[k]; dup {
			return fmt.Errorf("duplicate invoke of %s", op.Ref())
		}
		b.index[k] = len(b.h.Ops)
		b.h.Ops = append(b.h.Ops, op)
	case TypeComplete:
		c := rec.Completion
		if c == nil {
			return fmt.Errorf("complete record without completion")
		}
		i, ok := b.index[opKey{c.Process, c.ID}]
		if !ok {
			return fmt.Errorf("completion of op %s#%d that was never invoked", c.Process, c.ID)
		}
		op := &b.h.Ops[i]
		if !op.Pending() {
			return fmt.Errorf("second completion of %s", op.Ref())
		}
		if c.Outcome == Pending {
			return fmt.Errorf("completion of %s without an outcome", op.Ref())
		}
		op.Complete, op.Outcome, op.Code, op.Lease, op.Error = c.Complete, c.Outcome, c.Code, c.Lease, c.Error
	case TypeNemesis:
		if rec.Nemesis == nil {
			return fmt.Errorf("nemesis record without nemesis")
		}
		b.h.Nemesis = append(b.h.Nemesis, *rec.Nemesis)
	case TypeParticipant:
		if rec.Participant == nil {
			return fmt.Errorf("participant record without participant")
		}
		b.h.Participants = append(b.h.Participants, *rec.Participant)
	case TypeWrite:
		if rec.Write == nil {
			return fmt.Errorf("write record without write")
		}
		b.h.Writes = append(b.h.Writes, *rec.Write)
	case TypeStatus:
		if rec.Status == nil {
			return fmt.Errorf("status record without status")
		}
		b.h.Statuses = append(b.h.Statuses, *rec.Status)
	case TypeFinal:
		if rec.Final == nil {
			return fmt.Errorf("final record without final")
		}
		b.h.Finals = append(b.h.Finals, *rec.Final)
	case TypeEnd:
		if rec.End == nil {
			return fmt.Errorf("end record without end")
		}
		b.h.EndTime = max(b.h.EndTime, rec.End.Time)
	default:
		return fmt.Errorf("unknown record type %q", rec.Type)
	}
	return nil
}

// history returns a sorted copy of what was built so far.
func (b *builder) history() *History {
	h := b.h.Clone()
	h.Sort()
	return h
}
