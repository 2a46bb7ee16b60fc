package elector

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
)

// Elector campaigns for one named lease on a raftlease.Store and keeps it
// while it leads. See the package documentation for its invariants and
// goroutines. All methods are safe for concurrent use.
type Elector struct {
	store raftlease.Store
	opts  Options // validated; Metadata is e.metadata's initial value
	clock raftlease.Clock
	log   hclog.Logger
	// kick wakes the loop when leadership changed outside it (capacity 1).
	kick chan struct{}
	// stopCh is closed by Stop.
	stopCh chan struct{}
	// allDone is closed once Stop was called and every goroutine the
	// elector owns, Run included, has returned.
	allDone chan struct{}
	finish  sync.Once

	mu sync.Mutex
	// metadata is what this elector advertises; Proclaim replaces it.
	metadata map[string]string
	// term is the live leadership term, nil when not leader.
	term *term
	// lastTerm is the most recent term, live or ended; each term's leader
	// work waits for the previous term's.
	lastTerm *term
	// held is the token under which the store may still hold the lease for
	// this elector (it outlives a term that ended on the holder-side
	// deadline); 0 when none. Release and ReleaseOnStop use it.
	held uint64
	// releases counts Release calls: an acquire sent before a Release is
	// not taken up as leadership.
	releases uint64
	// cooldownUntil: after Release, Run does not campaign before it.
	cooldownUntil time.Time
	// highest is the highest token seen for the name; older news is stale.
	highest uint64
	// observed is the leader as this elector last saw it.
	observed LeaderInfo
	// lastLeader, lastChange and changeTimes feed Stats.
	lastLeader  LeaderInfo
	lastChange  time.Time
	changeTimes []time.Time
	subs        map[*subscriber]struct{}

	running    bool
	started    bool
	runCancel  context.CancelFunc
	runErr     error // a fatal error that ended a Run started by Start
	stopErr    error
	stopped    bool
	goroutines int
	doneClosed bool
}

// term is one stretch of leadership, from a successful acquire to the
// moment this elector stops acting as leader.
type term struct {
	token  uint64
	ctx    context.Context
	cancel context.CancelFunc
	// safeUntil and lastSend are guarded by Elector.mu.
	safeUntil time.Time
	lastSend  time.Time
	// finished is closed when the term's leader work (OnElected, then
	// OnDemoted) has returned.
	finished chan struct{}
}

// Reasons carried by Changes this elector causes itself.
const (
	reasonElected   = "elected"
	reasonRefused   = "renew refused"
	reasonSafeUntil = "safe-until passed"
	reasonReleased  = "released"
	reasonStopped   = "stopped"
)

var (
	errAlreadyRunning = errors.New("elector: already running")
	// errTermEnded: the term a renewal was meant for ended meanwhile.
	errTermEnded = errors.New("elector: leadership term ended")
	// errOperationTimeout is the cause of a store call cancelled after
	// OperationTimeout.
	errOperationTimeout = errors.New("elector: store operation timed out")
	// doneContext is the LeaderContext of an elector that is not leader.
	doneContext = func() context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}()
)

// New returns an elector for opts.Name on store. It validates opts and
// starts nothing: call Run or Start to take part in the election, or
// TryAcquire for single attempts.
func New(store raftlease.Store, opts Options) (*Elector, error) {
	var errs []error
	if store == nil {
		errs = append(errs, &raftlease.FieldError{Field: "store", Reason: "must not be nil"})
	}
	errs = append(errs, opts.Validate())
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("elector: %w", err)
	}
	opts.Metadata = maps.Clone(opts.Metadata)
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Elector{
		store:    store,
		opts:     opts,
		clock:    raftlease.OrSystem(opts.Clock),
		log:      logger.Named("elector").With("lease", opts.Name, "holder", opts.Holder),
		kick:     make(chan struct{}, 1),
		stopCh:   make(chan struct{}),
		allDone:  make(chan struct{}),
		metadata: maps.Clone(opts.Metadata),
		subs:     make(map[*subscriber]struct{}),
	}, nil
}

// Options returns the options the elector runs with. Metadata is the
// initial metadata, not what Proclaim set since.
func (e *Elector) Options() Options {
	o := e.opts
	o.Metadata = maps.Clone(o.Metadata)
	return o
}

// Run takes part in the election until ctx ends or Stop is called: it
// campaigns while not leader, renews while leader, and watches the lease to
// follow other participants and campaign as soon as the lease is free.
// When Run returns, this elector is no longer leader (and, with
// ReleaseOnStop, has released the lease).
//
// Run returns ctx.Err() when ctx ends, raftlease.ErrClosed after Stop, or
// the error that made it give up: the store reporting raftlease.ErrClosed
// or raftlease.ErrInvalidArgument. Every other store error is retried. Only
// one Run may be active at a time.
func (e *Elector) Run(ctx context.Context) error {
	err, releaseErr := e.run(ctx)
	return errors.Join(err, releaseErr)
}

// run is Run, with the error that ended the loop apart from the error of
// the release on the way out.
func (e *Elector) run(parent context.Context) (err, releaseErr error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	e.mu.Lock()
	switch {
	case e.stopped:
		e.mu.Unlock()
		return raftlease.ErrClosed, nil
	case e.running:
		e.mu.Unlock()
		return errAlreadyRunning, nil
	}
	e.running = true
	e.runCancel = cancel
	e.goroutines++ // Run itself: Stop waits for it to return.
	signals := make(chan signal, signalBuffer)
	watchDone := make(chan struct{})
	e.goLocked(func() {
		defer close(watchDone)
		e.watch(ctx, signals)
	})
	e.mu.Unlock()

	e.log.Debug("running")
	err = e.loop(ctx, signals)
	ended := ctx.Err() != nil
	cancel()
	<-watchDone
	releaseErr = e.endRun()

	e.mu.Lock()
	e.running = false
	e.runCancel = nil
	stopped := e.stopped
	e.exitLocked()
	e.mu.Unlock()
	if ended {
		switch {
		case parent.Err() != nil:
			err = parent.Err()
		case stopped:
			err = raftlease.ErrClosed
		}
	}
	e.log.Debug("run ended", "error", err)
	return err, releaseErr
}

// endRun ends leadership when Run returns: it cancels the leader context,
// waits for the leader work to return, then releases the lease if
// ReleaseOnStop.
func (e *Elector) endRun() error {
	e.mu.Lock()
	if t := e.term; t != nil {
		e.loseLocked(t, reasonStopped, LeaderInfo{})
	}
	last := e.lastTerm
	e.mu.Unlock()
	if last != nil {
		<-last.finished
	}
	if !e.opts.ReleaseOnStop {
		return nil
	}
	return e.releaseHeld(context.Background())
}

// Start runs Run in a goroutine the elector owns, until Stop. It fails if
// the elector was stopped or is already running.
func (e *Elector) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.stopped:
		return raftlease.ErrClosed
	case e.started || e.running:
		return errAlreadyRunning
	}
	e.started = true
	e.goLocked(func() {
		err, releaseErr := e.run(context.Background())
		e.mu.Lock()
		if e.stopped && errors.Is(err, raftlease.ErrClosed) {
			err = nil // Stop ended it
		} else if err != nil {
			e.log.Error("election loop stopped", "error", err)
		}
		e.runErr = errors.Join(err, releaseErr)
		e.mu.Unlock()
	})
	return nil
}

// Stop ends the elector: it stops acting as leader at once (cancelling the
// leader context), stops Run, waits for every goroutine the elector owns to
// return (OnElected included), then, with ReleaseOnStop, releases the lease
// if this elector held it. Subscriber channels are closed.
//
// If ctx ends first, Stop returns its error; the elector keeps stopping and
// a later Stop waits again. Stop is idempotent: later calls wait for the
// same end and return the same result, which includes the error that ended
// a Run started by Start, if any. Do not call Stop from OnElected: it
// would wait for itself until ctx ends.
func (e *Elector) Stop(ctx context.Context) error {
	e.mu.Lock()
	if !e.stopped {
		e.stopped = true
		if t := e.term; t != nil {
			e.loseLocked(t, reasonStopped, LeaderInfo{})
		}
		if e.runCancel != nil {
			e.runCancel()
		}
		close(e.stopCh)
		e.checkDoneLocked()
		e.log.Debug("stopping")
	}
	e.mu.Unlock()
	select {
	case <-e.allDone:
	case <-ctx.Done():
		return fmt.Errorf("elector: stop: %w", ctx.Err())
	}
	e.finish.Do(func() {
		var err error
		if e.opts.ReleaseOnStop {
			err = e.releaseHeld(ctx)
		}
		e.mu.Lock()
		e.stopErr = errors.Join(e.runErr, err)
		e.mu.Unlock()
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopErr
}

// Close is Stop without a deadline.
func (e *Elector) Close() error { return e.Stop(context.Background()) }

// TryAcquire makes one campaign attempt, for use without Run: it reports
// true when this elector is leader afterwards, false when someone else holds
// the lease. While leader, it renews (an acquire by the holder is one).
// Without Run nothing renews: call TryAcquire again within RenewInterval,
// or leadership ends when the holder-side deadline passes.
func (e *Elector) TryAcquire(ctx context.Context) (bool, error) {
	res, err := e.campaign(ctx)
	if err != nil {
		return false, err
	}
	if res.gained {
		e.mu.Lock()
		e.cooldownUntil = time.Time{}
		e.mu.Unlock()
	}
	return res.gained, nil
}

// Release gives up leadership: it cancels the leader context at once, then
// releases the lease in the store so another participant can take over
// without waiting for it to expire. It returns nil when there was nothing
// to release. A running elector then stays out of the election for one
// LeaseDuration, so that another participant wins; if none does, it
// campaigns again.
func (e *Elector) Release(ctx context.Context) error {
	e.mu.Lock()
	e.releases++
	e.cooldownUntil = e.clock.Now().Add(e.opts.LeaseDuration)
	if t := e.term; t != nil {
		e.loseLocked(t, reasonReleased, LeaderInfo{})
	}
	token := e.held
	e.held = 0
	e.mu.Unlock()
	if token == 0 {
		return nil
	}
	return e.releaseToken(ctx, token)
}

// releaseHeld releases the lease if the store may still hold it for this
// elector.
func (e *Elector) releaseHeld(ctx context.Context) error {
	e.mu.Lock()
	token := e.held
	e.held = 0
	e.mu.Unlock()
	if token == 0 {
		return nil
	}
	return e.releaseToken(ctx, token)
}

func (e *Elector) releaseToken(ctx context.Context, token uint64) error {
	callCtx, done := e.opContext(ctx)
	err := e.store.Release(callCtx, raftlease.ReleaseRequest{Name: e.opts.Name, Holder: e.opts.Holder, Token: token})
	err = opError(callCtx, err)
	done()
	switch {
	case err == nil:
		e.log.Info("released", "token", token)
		return nil
	case errors.Is(err, raftlease.ErrNotHolder):
		// Expired or already released: nothing left to give up.
		return nil
	default:
		e.log.Warn("release failed; the lease will expire", "token", token, "error", err)
		return fmt.Errorf("elector: release: %w", err)
	}
}

// IsLeader reports whether this elector leads now: it won the lease and its
// holder-side deadline has not passed. It turns false at that deadline even
// if no goroutine has run since.
func (e *Elector) IsLeader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.liveTermLocked() != nil
}

// Token returns the fencing token of the current term, and whether this
// elector leads. Send it with every write to a fenced resource.
func (e *Elector) Token() (uint64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.liveTermLocked(); t != nil {
		return t.token, true
	}
	return 0, false
}

// LeaderContext returns the context of the current term: it is cancelled
// when this leadership ends. When this elector does not lead, it returns a
// context that is already done.
func (e *Elector) LeaderContext() context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.liveTermLocked(); t != nil {
		return t.ctx
	}
	return doneContext
}

// SafeUntil returns the holder-side deadline of the current term on the
// elector's Clock: the instant at which, without another successful
// renewal, this elector stops acting as leader and cancels the leader
// context (DESIGN.md, "Time" rule 4). Each successful renewal moves it
// later. It also returns the term's fencing token; ok is false when this
// elector does not lead. Leader work that needs time to wind down (`leasenode
// run` stopping its child) starts winding down that long before SafeUntil,
// and reads it again when that moment comes, since a renewal may have moved
// it.
func (e *Elector) SafeUntil() (until time.Time, token uint64, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.liveTermLocked(); t != nil {
		return t.safeUntil, t.token, true
	}
	return time.Time{}, 0, false
}

type tokenKey struct{}

// TokenFromContext returns the fencing token of the term a leader context
// (the ctx given to OnElected, or LeaderContext) belongs to. Leader work
// should fence its writes with it rather than with Token, which may
// already name a later term.
func TokenFromContext(ctx context.Context) (uint64, bool) {
	token, ok := ctx.Value(tokenKey{}).(uint64)
	return token, ok
}

// Leader returns the current holder of the lease, with its token and
// metadata, read from the store (a linearizable read). It returns an error
// matching raftlease.ErrNotFound when the lease is vacant.
func (e *Elector) Leader(ctx context.Context) (raftlease.Lease, error) {
	callCtx, done := e.opContext(ctx)
	defer done()
	lease, err := e.store.Get(callCtx, e.opts.Name, raftlease.ReadOptions{})
	return lease, opError(callCtx, err)
}

// Proclaim replaces the metadata this leader advertises, without a new
// election: it renews the lease with the new metadata. It fails with an
// error matching raftlease.ErrNotHolder when this elector does not lead
// (and ends leadership if the store says so). Later terms advertise the new
// metadata too.
func (e *Elector) Proclaim(ctx context.Context, metadata map[string]string) error {
	if err := raftlease.ValidateMetadata(metadata); err != nil {
		return err
	}
	md := maps.Clone(metadata)
	if md == nil {
		md = map[string]string{} // nil would keep the old metadata
	}
	e.mu.Lock()
	t := e.liveTermLocked()
	e.mu.Unlock()
	if t == nil {
		return fmt.Errorf("elector: proclaim: %w", raftlease.ErrNotHolder)
	}
	req := raftlease.RenewRequest{Name: e.opts.Name, Holder: e.opts.Holder, Token: t.token, TTL: e.opts.LeaseDuration, Metadata: maps.Clone(md)}
	send, lease, err := e.renewCall(ctx, req)
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case err == nil:
		e.metadata = md
		e.extendLocked(t, lease, send)
		return nil
	case errors.Is(err, raftlease.ErrNotHolder):
		e.refusedLocked(t)
	}
	return fmt.Errorf("elector: proclaim: %w", err)
}

// liveTermLocked returns the current term if its holder-side deadline has
// not passed.
func (e *Elector) liveTermLocked() *term {
	if t := e.term; t != nil && e.clock.Now().Before(t.safeUntil) {
		return t
	}
	return nil
}

// window returns how long after sending the request that granted lease
// this elector may act as leader.
func (e *Elector) window(lease raftlease.Lease) time.Duration {
	ttl := e.opts.LeaseDuration
	if lease.TTL > 0 && lease.TTL < ttl {
		ttl = lease.TTL
	}
	if lease.Remaining > 0 && lease.Remaining < ttl {
		ttl = lease.Remaining
	}
	return safeWindow(ttl, e.opts.MaxClockDrift, e.opts.SafetyMargin)
}

// noteTokenLocked records a token seen for the name and reports whether it
// is current (not older than one already seen).
func (e *Elector) noteTokenLocked(token uint64) bool {
	if token < e.highest {
		return false
	}
	e.highest = token
	return true
}

// gainLocked takes up a successful acquire sent at send. It reports whether
// this elector leads afterwards, and whether the lease should be released
// at once because a Release came after the request was sent.
func (e *Elector) gainLocked(lease raftlease.Lease, send time.Time, releases uint64) (gained, releaseNow bool) {
	e.noteTokenLocked(lease.Token)
	e.held = lease.Token
	if e.stopped {
		return false, false // Stop releases it if ReleaseOnStop.
	}
	if e.releases != releases {
		e.held = 0
		return false, true
	}
	safeUntil := send.Add(e.window(lease))
	now := e.clock.Now()
	if !now.Before(safeUntil) {
		e.log.Warn("acquire answered too late to lead safely", "token", lease.Token, "sent", now.Sub(send))
		return false, false
	}
	if t := e.term; t != nil {
		live := now.Before(t.safeUntil)
		switch {
		case live && t.token == lease.Token:
			return e.extendLocked(t, lease, send), false
		case live:
			e.loseLocked(t, "token changed", LeaderInfo{})
		default:
			// The watchdog has not run yet; this acquire starts a new term.
			e.loseLocked(t, reasonSafeUntil, LeaderInfo{})
		}
	}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), tokenKey{}, lease.Token))
	t := &term{token: lease.Token, ctx: ctx, cancel: cancel, safeUntil: safeUntil, lastSend: send, finished: make(chan struct{})}
	prev := e.lastTerm
	e.term, e.lastTerm = t, t
	e.log.Info("elected", "token", t.token, "safe_for", safeUntil.Sub(now))
	e.setObservedLocked(infoOf(lease), true, false, reasonElected, lease.Revision)
	// Arm the timer here, not in the goroutine, so that it does not depend
	// on when the goroutine gets to run.
	timer := e.timerUntil(safeUntil)
	e.goLocked(func() { e.watchdog(t, timer) })
	if e.opts.OnElected != nil || e.opts.OnDemoted != nil {
		e.goLocked(func() { e.leaderWork(t, prev) })
	} else {
		close(t.finished)
	}
	e.poke()
	return true, false
}

// extendLocked takes up a successful renewal of t sent at send. It reports
// whether t is still live.
func (e *Elector) extendLocked(t *term, lease raftlease.Lease, send time.Time) bool {
	if e.term != t {
		return false
	}
	if !e.clock.Now().Before(t.safeUntil) {
		// The answer came after the holder-side deadline: IsLeader has
		// already said false. End the term; the loop campaigns again and an
		// acquire by the holder starts a new one.
		e.loseLocked(t, reasonSafeUntil, LeaderInfo{})
		return false
	}
	if s := send.Add(e.window(lease)); s.After(t.safeUntil) {
		t.safeUntil = s
	}
	if send.After(t.lastSend) {
		t.lastSend = send
	}
	e.setObservedLocked(infoOf(lease), false, false, "renewed", lease.Revision)
	return true
}

// refusedLocked ends t after the store said this elector no longer holds
// the lease.
func (e *Elector) refusedLocked(t *term) {
	if e.held == t.token {
		e.held = 0
	}
	if e.term == t {
		e.log.Warn("renewal refused: not the holder any more", "token", t.token)
	}
	e.loseLocked(t, reasonRefused, LeaderInfo{})
}

// loseLocked ends term t if it is the current one: from now on this elector
// does not act as leader.
func (e *Elector) loseLocked(t *term, reason string, current LeaderInfo) {
	if t == nil || e.term != t {
		return
	}
	e.term = nil
	t.cancel()
	e.log.Info("no longer leader", "token", t.token, "reason", reason)
	e.setObservedLocked(current, false, true, reason, 0)
	e.poke()
}

// watchdog ends t when its holder-side deadline passes without a newer
// successful renewal, whatever the loop is doing. timer is armed for the
// deadline as it stood when t began (nil if it has passed already).
func (e *Elector) watchdog(t *term, timer raftlease.Timer) {
	for {
		if timer != nil {
			select {
			case <-t.ctx.Done():
				timer.Stop()
				return
			case <-timer.C():
			}
		}
		e.mu.Lock()
		if e.term != t {
			e.mu.Unlock()
			return
		}
		if until := t.safeUntil; e.clock.Now().Before(until) {
			// A renewal moved the deadline.
			e.mu.Unlock()
			timer = e.timerUntil(until)
			continue
		}
		e.log.Warn("holder-side deadline passed without a successful renewal", "token", t.token)
		e.loseLocked(t, reasonSafeUntil, LeaderInfo{})
		e.mu.Unlock()
		return
	}
}

// maxTimerSlack is how far the Clock may move between computing a timer's
// duration and arming it before timerUntil arms it again.
const maxTimerSlack = time.Millisecond

// timerUntil returns a timer that fires when the Clock reaches deadline, or
// nil if it has already. Clock timers are relative: if the clock moves
// between reading it and arming the timer (a manual clock's Advance, or
// this goroutine being descheduled), the timer fires late by as much, so it
// is armed again until the reading and the arming agree.
func (e *Elector) timerUntil(deadline time.Time) raftlease.Timer {
	for {
		wait := deadline.Sub(e.clock.Now())
		if wait <= 0 {
			return nil
		}
		timer := e.clock.NewTimer(wait)
		left := deadline.Sub(e.clock.Now())
		if left > 0 && wait-left <= maxTimerSlack {
			return timer
		}
		timer.Stop()
	}
}

// leaderWork runs the callbacks of term t, after those of the previous
// term, so that OnElected calls never overlap.
func (e *Elector) leaderWork(t, prev *term) {
	defer close(t.finished)
	if prev != nil {
		<-prev.finished
	}
	if e.opts.OnElected != nil {
		if t.ctx.Err() != nil {
			return // the term ended before its turn came
		}
		e.opts.OnElected(t.ctx)
	}
	<-t.ctx.Done()
	if e.opts.OnDemoted != nil {
		e.opts.OnDemoted()
	}
}

// poke wakes the loop.
func (e *Elector) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// goLocked starts f in a goroutine that Stop waits for.
func (e *Elector) goLocked(f func()) {
	e.goroutines++
	go func() {
		defer e.exit()
		f()
	}()
}

func (e *Elector) exit() {
	e.mu.Lock()
	e.exitLocked()
	e.mu.Unlock()
}

func (e *Elector) exitLocked() {
	e.goroutines--
	e.checkDoneLocked()
}

func (e *Elector) checkDoneLocked() {
	if e.stopped && e.goroutines == 0 && !e.doneClosed {
		e.doneClosed = true
		close(e.allDone)
	}
}

// opContext returns the context for one store call: it ends with parent or
// after OperationTimeout on the elector's Clock. Call done when the call
// has returned.
func (e *Elector) opContext(parent context.Context) (ctx context.Context, done func()) {
	if _, ok := e.clock.(raftlease.SystemClock); ok {
		// The same clock, and the store sees the deadline.
		return context.WithTimeoutCause(parent, e.opts.OperationTimeout, errOperationTimeout)
	}
	ctx, cancel := context.WithCancelCause(parent)
	timer := e.clock.NewTimer(e.opts.OperationTimeout)
	finished, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-timer.C():
			cancel(errOperationTimeout)
		case <-finished:
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		close(finished)
		<-exited
		timer.Stop()
		cancel(context.Canceled)
	}
}

// opError marks err as a timeout when the call's context ran out of
// OperationTimeout, and makes it retryable: the request may or may not have
// taken effect.
func opError(callCtx context.Context, err error) error {
	if err == nil || context.Cause(callCtx) != errOperationTimeout {
		return err
	}
	err = fmt.Errorf("%w: %w", errOperationTimeout, err)
	if !raftlease.IsRetryable(err) {
		err = &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: err}
	}
	return err
}
