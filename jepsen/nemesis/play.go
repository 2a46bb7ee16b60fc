package nemesis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/raftlease/raftlease/jepsen/history"
)

// Nemesis injects and heals faults; the process driver implements it.
type Nemesis interface {
	// Start applies the fault of step, resolving its selector (see
	// Resolve) against the cluster as it is now, and returns the step as
	// applied, with its Targets and Links filled in. On error the fault
	// may be partly applied; Stop is still called for it.
	Start(ctx context.Context, step Step) (Step, error)
	// Stop undoes the fault of a step Start returned. For a Heal step,
	// Start undoes every fault and Stop does nothing.
	Stop(ctx context.Context, step Step) error
}

// EventRecorder receives the nemesis events; *history.Recorder is one.
type EventRecorder interface {
	Nemesis(history.NemesisEvent)
}

// Player executes a schedule.
type Player struct {
	Nemesis Nemesis
	// Rec receives a start and a stop event per step, with the resolved
	// targets (nil: none).
	Rec EventRecorder
	// Wait blocks until offset d from the start of the play or until ctx
	// ends. nil waits in real time from the moment Play was called; tests
	// pass one that returns at once.
	Wait func(ctx context.Context, d time.Duration) error
	// StopTimeout bounds each Stop that runs after ctx has ended (zero:
	// 30 s), so that faults are undone even when the run is cut short.
	StopTimeout time.Duration
}

type playEvent struct {
	at    time.Duration
	stop  bool
	index int // into Schedule.Steps
	// key orders events at the same time: the stops of held steps first,
	// later steps first (nested steps end before their enclosing step);
	// then the starts in step order, each instantaneous step's stop right
	// after its start.
	key [3]int
}

func events(s Schedule) []playEvent {
	var evs []playEvent
	for i, st := range s.Steps {
		evs = append(evs, playEvent{at: st.At, index: i, key: [3]int{1, i, 0}})
		stop := playEvent{at: st.End(), stop: true, index: i, key: [3]int{0, -i, 0}}
		if st.Hold == 0 {
			stop.key = [3]int{1, i, 1}
		}
		evs = append(evs, stop)
	}
	slices.SortFunc(evs, func(a, b playEvent) int {
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.key[0], b.key[0]), cmp.Compare(a.key[1], b.key[1]), cmp.Compare(a.key[2], b.key[2]))
	})
	return evs
}

// Play runs the schedule: at each step's At it calls Start, Hold later
// Stop, and records both. It keeps going when a step fails and returns
// every error joined. When ctx ends it stops every fault still applied
// (each bounded by StopTimeout) and returns ctx's error with the others.
func (p *Player) Play(ctx context.Context, s Schedule) error {
	wait := p.Wait
	if wait == nil {
		begin := time.Now()
		wait = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(time.Until(begin.Add(d)))
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	var errs []error
	applied := map[int]Step{}
	for _, ev := range events(s) {
		if err := wait(ctx, ev.at); err != nil {
			break
		}
		st := s.Steps[ev.index]
		if !ev.stop {
			resolved, err := p.Nemesis.Start(ctx, st)
			if resolved.Kind == "" {
				resolved = st
			}
			applied[ev.index] = resolved
			p.record(resolved, history.PhaseStart, err)
			if err != nil {
				errs = append(errs, fmt.Errorf("nemesis: start %s: %w", st, err))
			}
			continue
		}
		resolved, ok := applied[ev.index]
		if !ok {
			continue
		}
		delete(applied, ev.index)
		err := p.Nemesis.Stop(ctx, resolved)
		p.record(resolved, history.PhaseStop, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("nemesis: stop %s: %w", st, err))
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
		// Undo what is still applied, latest first.
		var open []int
		for i := range applied {
			open = append(open, i)
		}
		slices.Sort(open)
		timeout := p.StopTimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		for _, i := range slices.Backward(open) {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
			err := p.Nemesis.Stop(sctx, applied[i])
			cancel()
			p.record(applied[i], history.PhaseStop, err)
			if err != nil {
				errs = append(errs, fmt.Errorf("nemesis: stop %s after cancellation: %w", applied[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

func (p *Player) record(st Step, phase string, err error) {
	if p.Rec == nil {
		return
	}
	e := history.NemesisEvent{Step: st.Index, Phase: phase, Kind: string(st.Kind), Targets: st.Targets, Detail: st.Detail(), Observed: st.Observed}
	if err != nil {
		e.Error = err.Error()
	}
	p.Rec.Nemesis(e)
}
