package elector_test

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/raftlease/raftlease"
)

// fakeStore is a stand-in for memstore until it lands.
type fakeStore struct {
	clock  raftlease.Clock
	origin time.Time

	mu      sync.Mutex
	leases  map[string]*raftlease.Lease
	dl      map[string]time.Time
	tokens  map[string]uint64
	rev     uint64
	watches map[chan raftlease.Event]raftlease.WatchRequest
	closed  bool
	wake    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
}

func newFakeStore(clock raftlease.Clock) *fakeStore {
	s := &fakeStore{
		clock: raftlease.OrSystem(clock), leases: map[string]*raftlease.Lease{}, dl: map[string]time.Time{},
		tokens: map[string]uint64{}, watches: map[chan raftlease.Event]raftlease.WatchRequest{},
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	s.origin = s.clock.Now()
	s.wg.Add(1)
	go s.expiry()
	return s
}

func (s *fakeStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.done)
	s.wg.Wait()
	return nil
}

func (s *fakeStore) publishLocked(typ raftlease.EventType, l raftlease.Lease) {
	s.rev++
	for ch, req := range s.watches {
		if req.Matches(l.Name) {
			select {
			case ch <- raftlease.Event{Type: typ, Lease: l.Clone(), Revision: s.rev}:
			default:
			}
		}
	}
}

func (s *fakeStore) expireLocked(now time.Time) {
	for name, d := range s.dl {
		if !now.Before(d) {
			l := *s.leases[name]
			delete(s.leases, name)
			delete(s.dl, name)
			s.publishLocked(raftlease.EventExpired, l)
		}
	}
}

func (s *fakeStore) view(name string, now time.Time) raftlease.Lease {
	l := s.leases[name].Clone()
	l.Remaining = s.dl[name].Sub(now)
	l.Deadline = s.dl[name].Sub(s.origin)
	return l
}

func (s *fakeStore) Acquire(ctx context.Context, req raftlease.AcquireRequest) (raftlease.Lease, error) {
	if err := req.Validate(); err != nil {
		return raftlease.Lease{}, err
	}
	if err := ctx.Err(); err != nil {
		return raftlease.Lease{}, &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return raftlease.Lease{}, raftlease.ErrClosed
	}
	now := s.clock.Now()
	s.expireLocked(now)
	if l, ok := s.leases[req.Name]; ok {
		if l.Holder != req.Holder {
			return raftlease.Lease{}, &raftlease.HeldError{Current: s.view(req.Name, now)}
		}
		l.TTL, l.Metadata = req.TTL, maps.Clone(req.Metadata)
		s.dl[req.Name] = now.Add(req.TTL)
		s.publishLocked(raftlease.EventRenewed, s.view(req.Name, now))
		s.poke()
		return s.view(req.Name, now), nil
	}
	tok := max(s.tokens[req.Name], req.TokenFloor) + 1
	s.tokens[req.Name] = tok
	s.leases[req.Name] = &raftlease.Lease{Name: req.Name, Holder: req.Holder, Token: tok, TTL: req.TTL, Metadata: maps.Clone(req.Metadata), AcquiredAt: now}
	s.dl[req.Name] = now.Add(req.TTL)
	s.publishLocked(raftlease.EventAcquired, s.view(req.Name, now))
	s.poke()
	return s.view(req.Name, now), nil
}

func (s *fakeStore) Renew(ctx context.Context, req raftlease.RenewRequest) (raftlease.Lease, error) {
	if err := req.Validate(); err != nil {
		return raftlease.Lease{}, err
	}
	if err := ctx.Err(); err != nil {
		return raftlease.Lease{}, &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return raftlease.Lease{}, raftlease.ErrClosed
	}
	now := s.clock.Now()
	s.expireLocked(now)
	l, ok := s.leases[req.Name]
	if !ok || l.Holder != req.Holder || l.Token != req.Token {
		return raftlease.Lease{}, raftlease.ErrNotHolder
	}
	if req.TTL != 0 {
		l.TTL = req.TTL
	}
	if req.Metadata != nil {
		l.Metadata = maps.Clone(req.Metadata)
	}
	s.dl[req.Name] = now.Add(l.TTL)
	s.publishLocked(raftlease.EventRenewed, s.view(req.Name, now))
	s.poke()
	return s.view(req.Name, now), nil
}

func (s *fakeStore) Release(ctx context.Context, req raftlease.ReleaseRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return raftlease.ErrClosed
	}
	now := s.clock.Now()
	s.expireLocked(now)
	l, ok := s.leases[req.Name]
	if !ok || l.Holder != req.Holder || l.Token != req.Token {
		return raftlease.ErrNotHolder
	}
	v := s.view(req.Name, now)
	delete(s.leases, req.Name)
	delete(s.dl, req.Name)
	s.publishLocked(raftlease.EventReleased, v)
	return nil
}

func (s *fakeStore) Get(ctx context.Context, name string, _ raftlease.ReadOptions) (raftlease.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return raftlease.Lease{}, raftlease.ErrClosed
	}
	now := s.clock.Now()
	if d, ok := s.dl[name]; !ok || !now.Before(d) {
		return raftlease.Lease{}, raftlease.ErrNotFound
	}
	return s.view(name, now), nil
}

func (s *fakeStore) List(ctx context.Context, prefix string, _ raftlease.ReadOptions) (raftlease.LeaseList, error) {
	return raftlease.LeaseList{}, nil
}

func (s *fakeStore) Watch(ctx context.Context, req raftlease.WatchRequest) (<-chan raftlease.Event, error) {
	ch := make(chan raftlease.Event, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, raftlease.ErrClosed
	}
	s.watches[ch] = req
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		s.mu.Lock()
		delete(s.watches, ch)
		close(ch)
		s.mu.Unlock()
	}()
	return ch, nil
}

func (s *fakeStore) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *fakeStore) expiry() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		now := s.clock.Now()
		s.expireLocked(now)
		var next time.Duration = -1
		for _, d := range s.dl {
			if w := d.Sub(now); next < 0 || w < next {
				next = w
			}
		}
		s.mu.Unlock()
		var c <-chan time.Time
		var timer raftlease.Timer
		if next >= 0 {
			timer = s.clock.NewTimer(next)
			c = timer.C()
		}
		select {
		case <-s.done:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-s.wake:
		case <-c:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}
