package jepsen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/jepsen/history"
	"github.com/raftlease/raftlease/memstore"
)

// chaosStore wraps a correct store and makes some calls fail the way a
// cluster under faults does: refused before sending (not_applied),
// applied but unanswered (ambiguous), or lost before applying (ambiguous
// timeout). A history through it stays linearizable.
type chaosStore struct {
	raftlease.Store
	mu sync.Mutex
	r  *rand.Rand
	// heavy makes a quarter of the calls fail, as under a partition.
	heavy bool
}

type fate int

const (
	fateNormal fate = iota
	fateNotApplied
	fateAppliedUnknown
	fateLostTimeout
)

func (c *chaosStore) roll() fate {
	c.mu.Lock()
	defer c.mu.Unlock()
	x := c.r.IntN(100)
	if c.heavy {
		x /= 3
	}
	switch {
	case x < 4:
		return fateNotApplied
	case x < 7:
		return fateAppliedUnknown
	case x < 9:
		return fateLostTimeout
	}
	return fateNormal
}

var (
	errNotApplied = &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: raftlease.ErrNoQuorum}
	errUnknown    = &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: raftlease.ErrNoQuorum}
)

func (c *chaosStore) Acquire(ctx context.Context, req raftlease.AcquireRequest) (raftlease.Lease, error) {
	switch c.roll() {
	case fateNotApplied:
		return raftlease.Lease{}, errNotApplied
	case fateAppliedUnknown:
		c.Store.Acquire(ctx, req)
		return raftlease.Lease{}, errUnknown
	case fateLostTimeout:
		return raftlease.Lease{}, context.DeadlineExceeded
	}
	return c.Store.Acquire(ctx, req)
}

func (c *chaosStore) Renew(ctx context.Context, req raftlease.RenewRequest) (raftlease.Lease, error) {
	switch c.roll() {
	case fateNotApplied:
		return raftlease.Lease{}, errNotApplied
	case fateAppliedUnknown:
		c.Store.Renew(ctx, req)
		return raftlease.Lease{}, errUnknown
	}
	return c.Store.Renew(ctx, req)
}

func (c *chaosStore) Release(ctx context.Context, req raftlease.ReleaseRequest) error {
	switch c.roll() {
	case fateNotApplied:
		return errNotApplied
	case fateAppliedUnknown:
		c.Store.Release(ctx, req)
		return errUnknown
	case fateLostTimeout:
		return context.DeadlineExceeded
	}
	return c.Store.Release(ctx, req)
}

// staleStore answers every Get with what the first Get of that name saw:
// the bug of a follower serving reads it never refreshes.
type staleStore struct {
	raftlease.Store
	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	l   raftlease.Lease
	err error
}

func (s *staleStore) Get(ctx context.Context, name string, opts raftlease.ReadOptions) (raftlease.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[name]; ok {
		return c.l, c.err
	}
	l, err := s.Store.Get(ctx, name, opts)
	s.cache[name] = cached{l, err}
	return l, err
}

// runRegister drives the lease-register workload against store through
// RecordingStores: clients × ops random operations on a few names.
func runRegister(t *testing.T, rec *history.Recorder, store raftlease.Store, seed uint64, clients, ops int) {
	t.Helper()
	names := []string{"reg-0", "reg-1", "reg-2"}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(c)))
			holder := fmt.Sprintf("c%d", c)
			s := &history.RecordingStore{Store: store, Rec: rec, Process: holder, Workload: history.WorkloadRegister}
			tokens := map[string]uint64{}
			ctx := context.Background()
			for range ops {
				name := names[r.IntN(len(names))]
				switch x := r.IntN(100); {
				case x < 35:
					l, err := s.Acquire(ctx, raftlease.AcquireRequest{Name: name, Holder: holder, TTL: time.Hour})
					if err == nil {
						tokens[name] = l.Token
					}
				case x < 55:
					if l, err := s.Renew(ctx, raftlease.RenewRequest{Name: name, Holder: holder, Token: tokens[name] + uint64(r.IntN(2))}); err == nil {
						tokens[name] = l.Token
					}
				case x < 75:
					s.Release(ctx, raftlease.ReleaseRequest{Name: name, Holder: holder, Token: max(tokens[name], 1)})
				default:
					s.Get(ctx, name, raftlease.ReadOptions{})
				}
			}
		}()
	}
	wg.Wait()
}

func newMemstore(t *testing.T) raftlease.Store {
	t.Helper()
	ms, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	return ms
}
