package elector_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/elector"
	"github.com/raftlease/raftlease/memstore"
)

// closingStore is a store the test must close.
type closingStore interface {
	raftlease.Store
	Close() error
}

// newStore returns the in-process store on clock (nil: system clock, which
// is fake time inside a synctest bubble), closed at cleanup.
func newStore(t *testing.T, clock raftlease.Clock) closingStore {
	t.Helper()
	s, err := memstore.New(memstore.Options{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// hangMode says how a hangStore treats a holder's writes.
type hangMode int

const (
	serve      hangMode = iota
	hangCtx             // block until the call's ctx ends
	hangAlways          // block, ignoring ctx, until unblock
)

// hangStore wraps a store: the writes of chosen holders hang. It records
// when each holder's last acquire or renewal succeeded.
type hangStore struct {
	raftlease.Store
	mu      sync.Mutex
	modes   map[string]hangMode
	lastOK  map[string]time.Time
	unblock chan struct{}
	once    sync.Once
}

func newHangStore(inner raftlease.Store) *hangStore {
	return &hangStore{Store: inner, modes: map[string]hangMode{}, lastOK: map[string]time.Time{}, unblock: make(chan struct{})}
}

func (h *hangStore) set(holder string, m hangMode) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.modes[holder] = m
}

// release unblocks every hangAlways call, for good.
func (h *hangStore) release() { h.once.Do(func() { close(h.unblock) }) }

func (h *hangStore) last(holder string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastOK[holder]
}

// hang blocks as holder's mode says and reports whether the call must fail.
func (h *hangStore) hang(ctx context.Context, holder string) error {
	h.mu.Lock()
	m := h.modes[holder]
	h.mu.Unlock()
	switch m {
	case hangCtx:
		<-ctx.Done()
		return &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: ctx.Err()}
	case hangAlways:
		<-h.unblock
		return &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: fmt.Errorf("hung")}
	}
	return nil
}

func (h *hangStore) ok(holder string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastOK[holder] = time.Now()
}

func (h *hangStore) Acquire(ctx context.Context, req raftlease.AcquireRequest) (raftlease.Lease, error) {
	if err := h.hang(ctx, req.Holder); err != nil {
		return raftlease.Lease{}, err
	}
	l, err := h.Store.Acquire(ctx, req)
	if err == nil {
		h.ok(req.Holder)
	}
	return l, err
}

func (h *hangStore) Renew(ctx context.Context, req raftlease.RenewRequest) (raftlease.Lease, error) {
	if err := h.hang(ctx, req.Holder); err != nil {
		return raftlease.Lease{}, err
	}
	l, err := h.Store.Renew(ctx, req)
	if err == nil {
		h.ok(req.Holder)
	}
	return l, err
}

func (h *hangStore) Release(ctx context.Context, req raftlease.ReleaseRequest) error {
	if err := h.hang(ctx, req.Holder); err != nil {
		return err
	}
	return h.Store.Release(ctx, req)
}

// termRecord is one term of leadership as OnElected saw it.
type termRecord struct {
	holder     string
	token      uint64
	start, end time.Time
}

// recorder collects the terms of a group of electors, in start order.
type recorder struct {
	mu    sync.Mutex
	terms []*termRecord
}

// onElected returns an OnElected that records the term and works until
// its ctx ends.
func (r *recorder) onElected(holder string) func(ctx context.Context) {
	return func(ctx context.Context) {
		token, _ := elector.TokenFromContext(ctx)
		rec := &termRecord{holder: holder, token: token, start: time.Now()}
		r.mu.Lock()
		r.terms = append(r.terms, rec)
		r.mu.Unlock()
		<-ctx.Done()
		r.mu.Lock()
		rec.end = time.Now()
		r.mu.Unlock()
	}
}

func (r *recorder) all() []termRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]termRecord, len(r.terms))
	for i, t := range r.terms {
		out[i] = *t
	}
	return out
}

// group is a set of electors on one store.
type group struct {
	t        *testing.T
	store    raftlease.Store
	rec      *recorder
	electors []*elector.Elector
}

// options returns the Balanced profile for holder on lease "svc", with the
// group's recorder as OnElected.
func (g *group) options(holder string) elector.Options {
	o := elector.Balanced()
	o.Name = "svc"
	o.Holder = holder
	o.OnElected = g.rec.onElected(holder)
	o.Logger = testLogger(holder)
	return o
}

// testLogger logs to stderr when RAFTLEASE_TEST_LOG names a level, and
// otherwise formats every line at trace level and discards it.
func testLogger(name string) hclog.Logger {
	if level := os.Getenv("RAFTLEASE_TEST_LOG"); level != "" {
		return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.LevelFromString(level), Output: os.Stderr})
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Trace, Output: io.Discard})
}

// newGroup starts n electors ("e0", "e1", …) on store, stopped at cleanup.
func newGroup(t *testing.T, store raftlease.Store, n int, edit func(i int, o *elector.Options)) *group {
	t.Helper()
	g := &group{t: t, store: store, rec: &recorder{}}
	for i := range n {
		g.add(fmt.Sprintf("e%d", i), func(o *elector.Options) {
			if edit != nil {
				edit(i, o)
			}
		})
	}
	return g
}

// add starts one more elector.
func (g *group) add(holder string, edit func(o *elector.Options)) *elector.Elector {
	g.t.Helper()
	o := g.options(holder)
	if edit != nil {
		edit(&o)
	}
	e, err := elector.New(g.store, o)
	require.NoError(g.t, err)
	require.NoError(g.t, e.Start())
	g.t.Cleanup(func() { require.NoError(g.t, e.Close()) })
	g.electors = append(g.electors, e)
	return e
}

// leaders returns the electors that lead now.
func (g *group) leaders() []*elector.Elector {
	var out []*elector.Elector
	for _, e := range g.electors {
		if e.IsLeader() {
			out = append(out, e)
		}
	}
	return out
}

// leader returns the single leader, failing the test if there is not
// exactly one.
func (g *group) leader() *elector.Elector {
	g.t.Helper()
	ls := g.leaders()
	require.Len(g.t, ls, 1, "leaders")
	return ls[0]
}

// holder returns an elector's holder id.
func holder(e *elector.Elector) string { return e.Options().Holder }
