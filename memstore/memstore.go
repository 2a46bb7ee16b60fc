// Package memstore is the in-process raftlease.Store: the same lease state
// machine (package fsm) the Raft node replicates, driven under a mutex by a
// Clock, for a single process. It is the embedded default for one instance
// and the reference store in tests.
//
// It offers the same semantics as the replicated stores — fencing tokens,
// consensus-time deadlines, watch with revisions, background expiry — but no
// durability: its state lives and dies with the process.
//
// # Goroutines
//
// New starts one goroutine, the expiry loop, which sleeps on a Clock timer
// until the earliest lease deadline and then applies an expire command, so
// watchers see vacancies promptly. The watch hub (internal/watch) runs one
// goroutine per open watch. Close stops and waits for all of them.
package memstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
	"github.com/raftlease/raftlease/internal/watch"
)

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Clock drives consensus time and expiry; nil means the system clock.
	Clock raftlease.Clock
	// ExpireBatch bounds how many leases one expire command removes
	// (default 256).
	ExpireBatch int
	// WatchRetain is how many recent events the store keeps for watches that
	// resume from a revision (default 4096).
	WatchRetain int
	// WatchBuffer is each watch channel's capacity (default 256).
	WatchBuffer int
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	if o.ExpireBatch < 0 || o.WatchRetain < 0 || o.WatchBuffer < 0 {
		return fmt.Errorf("%w: memstore: ExpireBatch, WatchRetain and WatchBuffer must not be negative", raftlease.ErrInvalidArgument)
	}
	return nil
}

// Store is an in-process raftlease.Store.
type Store struct {
	clock       raftlease.Clock
	origin      time.Time
	expireBatch int
	hub         *watch.Hub

	mu     sync.Mutex
	fsm    *fsm.FSM
	index  uint64
	closed bool

	wake      chan struct{} // a deadline may have moved earlier
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var _ raftlease.Store = (*Store)(nil)

// term is the only epoch term the in-process store uses: it never changes
// leader.
const term = 1

// New returns a running store. Close it to stop its goroutines.
func New(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.ExpireBatch == 0 {
		opts.ExpireBatch = 256
	}
	clock := raftlease.OrSystem(opts.Clock)
	s := &Store{
		clock:       clock,
		origin:      clock.Now(),
		expireBatch: opts.ExpireBatch,
		hub:         watch.NewHub(watch.Options{Retain: opts.WatchRetain, Buffer: opts.WatchBuffer}),
		fsm:         fsm.New(),
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	s.mu.Lock()
	s.applyLocked(fsm.Epoch(s.stamp()))
	s.mu.Unlock()
	s.wg.Add(1)
	go s.expiryLoop()
	return s, nil
}

// Close stops the expiry loop and closes every watch. Later calls return
// ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		s.wg.Wait()
		s.hub.Close()
	})
	return nil
}

func (s *Store) stamp() fsm.Stamp {
	now := s.clock.Now()
	return fsm.Stamp{Term: term, Reading: int64(now.Sub(s.origin)), Wall: now.UnixNano()}
}

// applyLocked applies one command at the next index and publishes its
// events. The caller holds mu.
func (s *Store) applyLocked(cmd fsm.Command) fsm.Result {
	s.index++
	res := s.fsm.Apply(s.index, cmd)
	s.hub.Publish(s.index, res.Events)
	return res
}

// write validates nothing itself: callers validate before calling so that
// invalid requests use no revision.
func (s *Store) write(ctx context.Context, build func(fsm.Stamp) fsm.Command) (fsm.Result, error) {
	if err := ctx.Err(); err != nil {
		return fsm.Result{}, &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fsm.Result{}, raftlease.ErrClosed
	}
	res := s.applyLocked(build(s.stamp()))
	if res.Err == nil {
		s.poke()
	}
	return res, res.Err
}

// poke tells the expiry loop that a deadline changed.
func (s *Store) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Acquire implements raftlease.Store.
func (s *Store) Acquire(ctx context.Context, req raftlease.AcquireRequest) (raftlease.Lease, error) {
	if err := req.Validate(); err != nil {
		return raftlease.Lease{}, err
	}
	res, err := s.write(ctx, func(st fsm.Stamp) fsm.Command { return fsm.Acquire(st, req) })
	return res.Lease, err
}

// Renew implements raftlease.Store.
func (s *Store) Renew(ctx context.Context, req raftlease.RenewRequest) (raftlease.Lease, error) {
	if err := req.Validate(); err != nil {
		return raftlease.Lease{}, err
	}
	res, err := s.write(ctx, func(st fsm.Stamp) fsm.Command { return fsm.Renew(st, req) })
	return res.Lease, err
}

// Release implements raftlease.Store.
func (s *Store) Release(ctx context.Context, req raftlease.ReleaseRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	_, err := s.write(ctx, func(st fsm.Stamp) fsm.Command { return fsm.Release(st, req) })
	return err
}

// Get implements raftlease.Store. The in-process store has no replicas, so
// every read is linearizable and opts.Stale changes nothing.
func (s *Store) Get(ctx context.Context, name string, _ raftlease.ReadOptions) (raftlease.Lease, error) {
	if err := raftlease.ValidateName(name); err != nil {
		return raftlease.Lease{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return raftlease.Lease{}, raftlease.ErrClosed
	}
	return s.fsm.Get(name, s.fsm.Now(s.stamp()))
}

// List implements raftlease.Store.
func (s *Store) List(ctx context.Context, prefix string, _ raftlease.ReadOptions) (raftlease.LeaseList, error) {
	if err := raftlease.ValidatePrefix(prefix); err != nil {
		return raftlease.LeaseList{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return raftlease.LeaseList{}, raftlease.ErrClosed
	}
	leases, err := s.fsm.List(prefix, s.fsm.Now(s.stamp()))
	return raftlease.LeaseList{Leases: leases, Revision: s.index}, err
}

// Watch implements raftlease.Store.
func (s *Store) Watch(ctx context.Context, req raftlease.WatchRequest) (<-chan raftlease.Event, error) {
	return s.hub.Subscribe(ctx, req)
}

// Revision returns the revision of the last applied command.
func (s *Store) Revision() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

// expiryLoop removes leases past their deadline, waking at the earliest
// deadline or when a write may have moved it.
func (s *Store) expiryLoop() {
	defer s.wg.Done()
	for {
		wait, ok := s.expireDue()
		var timerC <-chan time.Time
		var timer raftlease.Timer
		if ok {
			timer = s.clock.NewTimer(wait)
			timerC = timer.C()
		}
		select {
		case <-s.done:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-s.wake:
		case <-timerC:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// expireDue applies expire commands for every lease past its deadline and
// returns how long until the next deadline, if any.
func (s *Store) expireDue() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, false
	}
	for {
		st := s.stamp()
		now := s.fsm.Now(st)
		due := s.fsm.Expired(now, s.expireBatch)
		if len(due) == 0 {
			next, ok := s.fsm.NextDeadline()
			if !ok {
				return 0, false
			}
			return next - now, true
		}
		s.applyLocked(fsm.Expire(st, due))
	}
}
