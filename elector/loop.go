package elector

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/raftlease/raftlease"
)

// signal is what the watch goroutine hands the loop.
type signal struct {
	event raftlease.Event
	// ready: a watch (re)started, so changes before it may have been
	// missed; the loop resynchronises by campaigning.
	ready bool
}

// signalBuffer is the capacity of the watch-to-loop channel.
const signalBuffer = 16

// alreadyDue is a closed channel: the loop's wait when its action is due.
var alreadyDue = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()

// attempt is the outcome of one campaign.
type attempt struct {
	send   time.Time
	gained bool
	// held is the lease of another holder, when the store refused.
	held *raftlease.Lease
}

// campaign sends one acquire and takes up its answer.
func (e *Elector) campaign(ctx context.Context) (attempt, error) {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return attempt{send: e.clock.Now()}, raftlease.ErrClosed
	}
	req := raftlease.AcquireRequest{Name: e.opts.Name, Holder: e.opts.Holder, TTL: e.opts.LeaseDuration, Metadata: maps.Clone(e.metadata)}
	releases := e.releases
	e.mu.Unlock()

	callCtx, done := e.opContext(ctx)
	send := e.clock.Now()
	lease, err := e.store.Acquire(callCtx, req)
	err = opError(callCtx, err)
	done()
	res := attempt{send: send}
	if err == nil {
		var releaseNow bool
		e.mu.Lock()
		res.gained, releaseNow = e.gainLocked(lease, send, releases)
		e.mu.Unlock()
		if releaseNow {
			_ = e.releaseToken(ctx, lease.Token)
		}
		return res, nil
	}
	var held *raftlease.HeldError
	if errors.As(err, &held) {
		current := held.Current
		res.held = &current
		e.mu.Lock()
		e.observeHolderLocked(current, "held", current.Revision)
		e.mu.Unlock()
		return res, nil
	}
	return res, err
}

// renewCall sends one renewal; send is the clock reading just before.
func (e *Elector) renewCall(ctx context.Context, req raftlease.RenewRequest) (send time.Time, lease raftlease.Lease, err error) {
	callCtx, done := e.opContext(ctx)
	defer done()
	send = e.clock.Now()
	lease, err = e.store.Renew(callCtx, req)
	return send, lease, opError(callCtx, err)
}

// renew renews term t once.
func (e *Elector) renew(ctx context.Context, t *term) (time.Time, error) {
	e.mu.Lock()
	live := e.term == t
	e.mu.Unlock()
	if !live {
		return e.clock.Now(), errTermEnded
	}
	req := raftlease.RenewRequest{Name: e.opts.Name, Holder: e.opts.Holder, Token: t.token, TTL: e.opts.LeaseDuration}
	send, lease, err := e.renewCall(ctx, req)
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case err == nil:
		if !e.extendLocked(t, lease, send) {
			return send, errTermEnded
		}
	case errors.Is(err, raftlease.ErrNotHolder):
		e.refusedLocked(t)
	case e.term != t:
		return send, errTermEnded // nothing left to retry for
	}
	return send, err
}

// observeHolderLocked records that the store reports lease as held by
// another participant (or by this one, without this elector knowing).
func (e *Elector) observeHolderLocked(lease raftlease.Lease, reason string, revision uint64) {
	if !e.noteTokenLocked(lease.Token) {
		return // older than what we know
	}
	if e.held != 0 && e.held != lease.Token {
		e.held = 0 // our lease was re-issued
	}
	cur := infoOf(lease)
	if t := e.term; t != nil && t.token != lease.Token {
		e.log.Warn("the store reports another holder while leading", "token", t.token, "other", lease.Holder, "other_token", lease.Token)
		e.loseLocked(t, reason+" by "+lease.Holder, cur)
	}
	e.setObservedLocked(cur, false, false, reason, revision)
}

// handleEventLocked takes up one watch event and reports whether it showed
// the lease free.
func (e *Elector) handleEventLocked(ev raftlease.Event) (vacant bool) {
	lease := ev.Lease
	if lease.Name != e.opts.Name {
		return false
	}
	switch ev.Type {
	case raftlease.EventAcquired, raftlease.EventRenewed:
		if lease.Holder == e.opts.Holder {
			// This elector learns of its own leadership from its own
			// calls, which carry the send time it needs.
			e.noteTokenLocked(lease.Token)
			return false
		}
		e.observeHolderLocked(lease, ev.Type.String(), ev.Revision)
		return false
	case raftlease.EventReleased, raftlease.EventExpired:
		if !e.noteTokenLocked(lease.Token) {
			return false
		}
		if e.held == lease.Token {
			e.held = 0
		}
		if t := e.term; t != nil && t.token == lease.Token {
			e.log.Warn("the store reports the lease gone while leading", "token", t.token, "event", ev.Type.String())
			e.loseLocked(t, ev.Type.String(), LeaderInfo{})
		}
		e.setObservedLocked(LeaderInfo{}, false, false, ev.Type.String(), ev.Revision)
		return true
	default:
		return false
	}
}

// fatal reports whether a store error will not go away by retrying.
func fatal(err error) bool {
	return errors.Is(err, raftlease.ErrClosed) || errors.Is(err, raftlease.ErrInvalidArgument)
}

// loop is Run's body: one store call at a time, at the time due.
func (e *Elector) loop(ctx context.Context, signals <-chan signal) error {
	var known *term // the term the schedule was made for
	due := e.clock.Now()
	for {
		now := e.clock.Now()
		e.mu.Lock()
		t := e.liveTermLocked()
		var lastSend time.Time
		if t != nil {
			lastSend = t.lastSend
		}
		cooldown := e.cooldownUntil
		e.mu.Unlock()
		if t != known {
			known = t
			if t != nil {
				due = lastSend.Add(e.opts.RenewInterval)
			} else {
				due = now // lost leadership: campaign at once
			}
		}
		if t == nil && due.Before(cooldown) {
			due = cooldown
		}
		var termDone <-chan struct{}
		if t != nil {
			termDone = t.ctx.Done()
		}

		// A timer of zero need not fire at once on every Clock (a manual
		// clock fires it on its next Advance), so a due action waits for
		// none.
		dueC := alreadyDue
		timer := e.timerUntil(due)
		if timer != nil {
			dueC = timer.C()
		}
		fired := false
		select {
		case <-ctx.Done():
		case <-dueC:
			fired = true
		case <-termDone:
		case <-e.kick:
		case s := <-signals:
			e.mu.Lock()
			vacant := s.ready
			if !s.ready {
				vacant = e.handleEventLocked(s.event)
			}
			e.mu.Unlock()
			if vacant && t == nil {
				due = now
			}
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !fired {
			continue
		}

		if t != nil {
			send, err := e.renew(ctx, t)
			switch {
			case err == nil:
				due = send.Add(e.opts.RenewInterval)
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, errTermEnded), errors.Is(err, raftlease.ErrNotHolder):
				// The top of the loop reschedules.
			case fatal(err):
				return err
			default:
				e.log.Warn("renewal failed; retrying", "token", t.token, "error", err)
				due = send.Add(min(e.opts.RetryInterval, e.opts.RenewInterval))
			}
			continue
		}

		res, err := e.campaign(ctx)
		switch {
		case err == nil && res.gained:
			// The top of the loop schedules the first renewal.
		case err == nil && res.held != nil:
			// Campaign again when the holder's lease is due to expire, but
			// at least RetryInterval and at most LeaseDuration later; the
			// watch usually calls us sooner.
			wait := min(res.held.Remaining, e.opts.LeaseDuration)
			due = res.send.Add(max(e.opts.RetryInterval, wait))
		case err == nil:
			due = res.send.Add(e.opts.RetryInterval)
		case ctx.Err() != nil:
			return ctx.Err()
		case fatal(err):
			return err
		default:
			e.log.Warn("campaign failed; retrying", "error", err)
			due = res.send.Add(e.opts.RetryInterval)
		}
	}
}

// watch follows the lease for the loop until ctx ends, re-opening the watch
// after RetryInterval when it fails or closes.
func (e *Elector) watch(ctx context.Context, out chan<- signal) {
	deliver := func(s signal) bool {
		select {
		case out <- s:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		watchCtx, cancel := context.WithCancel(ctx)
		events, err := e.store.Watch(watchCtx, raftlease.WatchRequest{Name: e.opts.Name})
		if err == nil {
			ok := deliver(signal{ready: true})
			for ok {
				ev, open := <-events
				if !open {
					break
				}
				ok = deliver(signal{event: ev})
			}
			if !ok {
				cancel()
				return
			}
		} else if ctx.Err() == nil {
			e.log.Warn("watch failed; retrying", "error", err)
		}
		cancel()
		if !e.sleep(ctx, e.opts.RetryInterval) {
			return
		}
	}
}

// sleep waits d on the elector's Clock, or until ctx ends (false).
func (e *Elector) sleep(ctx context.Context, d time.Duration) bool {
	timer := e.clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C():
		return true
	case <-ctx.Done():
		return false
	}
}
