package elector

import (
	"context"
	"maps"
	"time"

	"github.com/raftlease/raftlease"
)

// LeaderInfo identifies a leader as an elector saw it. The zero value means
// no leader (the lease is vacant, or this elector does not know who holds it).
type LeaderInfo struct {
	// Holder is the leader's participant id.
	Holder string
	// Token is the fencing token of its term.
	Token uint64
	// Metadata is what the leader advertises. Treat it as read-only: it is
	// shared by every subscriber.
	Metadata map[string]string
}

// Vacant reports whether l names no leader.
func (l LeaderInfo) Vacant() bool { return l.Holder == "" }

func infoOf(l raftlease.Lease) LeaderInfo {
	return LeaderInfo{Holder: l.Holder, Token: l.Token, Metadata: maps.Clone(l.Metadata)}
}

// sameTerm reports whether a and b name the same leadership term.
func sameTerm(a, b LeaderInfo) bool { return a.Holder == b.Holder && a.Token == b.Token }

// Change is one change of the leader as this elector sees it: a new holder
// or token, a vacancy, new metadata, or this elector gaining or losing
// leadership.
type Change struct {
	// Previous and Current are the leader before and after the change.
	Previous LeaderInfo
	Current  LeaderInfo
	// Gained: this elector became leader (Current is this elector).
	Gained bool
	// Lost: this elector stopped being leader. Current is then the new
	// leader when known, or vacant.
	Lost bool
	// Reason says why, for humans: "elected", "renew refused",
	// "safe-until passed", "released", "stopped", or the store event
	// ("acquired", "renewed", "released", "expired") an observer saw.
	Reason string
	// Revision is the store revision of the lease change behind this
	// Change when known, zero otherwise.
	Revision uint64
	// At is when the elector noticed the change, on its Clock.
	At time.Time
	// Missed is how many changes were dropped for this subscriber, in all,
	// before this one was queued, because its buffer was full. It only
	// grows; a jump means the consumer fell behind.
	Missed uint64
}

// SubscriberBuffer is the capacity of each channel Subscribe returns.
const SubscriberBuffer = 32

// subscriber is one Subscribe channel. Its fields are guarded by
// Elector.mu; the elector is the only sender.
type subscriber struct {
	ch     chan Change
	missed uint64
}

// send queues c without ever blocking: when the buffer is full it drops the
// oldest queued change and counts it in Missed.
func (s *subscriber) send(c Change) {
	for {
		c.Missed = s.missed
		select {
		case s.ch <- c:
			return
		default:
		}
		select {
		case <-s.ch:
			s.missed++
		default:
		}
	}
}

// Subscribe returns a channel of leader changes as this elector sees them,
// its own (Gained, Lost) and, while Run watches the lease, other
// participants'. The channel holds SubscriberBuffer changes; the elector
// never waits for a subscriber: when the buffer is full the oldest queued
// change is dropped and counted in the next change's Missed. The channel is
// closed when ctx ends or the elector stops (after the final Lost change,
// if it was leader).
func (e *Elector) Subscribe(ctx context.Context) <-chan Change {
	s := &subscriber{ch: make(chan Change, SubscriberBuffer)}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		close(s.ch)
		return s.ch
	}
	e.subs[s] = struct{}{}
	e.goLocked(func() {
		select {
		case <-ctx.Done():
		case <-e.stopCh:
		}
		e.mu.Lock()
		delete(e.subs, s)
		close(s.ch)
		e.mu.Unlock()
	})
	return s.ch
}

// Stats are stability figures of the election as this elector saw it.
type Stats struct {
	// ChangesLast10m and ChangesLastHour count the leadership terms that
	// began, in this elector's view, in the last 10 minutes and hour: each
	// time it saw a holder or token other than the last leader it had
	// seen (its own elections included). Vacancies and metadata updates
	// are not counted, so a handover A→B counts once. The counts saturate
	// at maxChangeTimes.
	ChangesLast10m  int
	ChangesLastHour int
	// LastChange is when the last of those changes was seen (zero if
	// none), on the elector's Clock.
	LastChange time.Time
	// Current is the leader as this elector last saw it.
	Current LeaderInfo
}

// maxChangeTimes bounds the memory Stats keeps.
const maxChangeTimes = 4096

// Stats returns the elector's stability figures, computed with its Clock.
func (e *Elector) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock.Now()
	e.pruneChangesLocked(now)
	st := Stats{ChangesLastHour: len(e.changeTimes), LastChange: e.lastChange, Current: e.observed}
	for _, at := range e.changeTimes {
		if now.Sub(at) < 10*time.Minute {
			st.ChangesLast10m++
		}
	}
	return st
}

func (e *Elector) pruneChangesLocked(now time.Time) {
	i := 0
	for i < len(e.changeTimes) && now.Sub(e.changeTimes[i]) >= time.Hour {
		i++
	}
	if len(e.changeTimes)-i >= maxChangeTimes {
		i = len(e.changeTimes) - maxChangeTimes + 1
	}
	e.changeTimes = append(e.changeTimes[:0], e.changeTimes[i:]...)
}

// setObservedLocked records the leader as now seen and emits a Change when
// anything a subscriber cares about changed.
func (e *Elector) setObservedLocked(cur LeaderInfo, gained, lost bool, reason string, revision uint64) {
	prev := e.observed
	termChanged := !sameTerm(prev, cur)
	if !gained && !lost && !termChanged && maps.Equal(prev.Metadata, cur.Metadata) {
		return
	}
	e.observed = cur
	now := e.clock.Now()
	if termChanged && !cur.Vacant() && !sameTerm(cur, e.lastLeader) {
		e.lastLeader = cur
		e.lastChange = now
		e.pruneChangesLocked(now)
		e.changeTimes = append(e.changeTimes, now)
	}
	c := Change{Previous: prev, Current: cur, Gained: gained, Lost: lost, Reason: reason, Revision: revision, At: now}
	for s := range e.subs {
		s.send(c)
	}
}
