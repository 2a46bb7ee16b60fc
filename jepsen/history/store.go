package history

import (
	"context"

	"github.com/raftlease/raftlease"
)

// RecordingStore wraps a raftlease.Store and records every Acquire, Renew,
// Release and Get as an operation of Process in Rec. Elector participants
// wrap their client with it so the checkers see each renewal's send time
// (no early takeover) and each acknowledged write (no lost acks). List and
// Watch pass through unrecorded.
type RecordingStore struct {
	Store    raftlease.Store
	Rec      *Recorder
	Process  string
	Workload string
	// Node names the node the store talks to, when fixed.
	Node string
}

var _ raftlease.Store = (*RecordingStore)(nil)

func (s *RecordingStore) invoke(op Op) *Invocation {
	op.Process, op.Workload, op.Node = s.Process, s.Workload, s.Node
	return s.Rec.Invoke(op)
}

// Acquire records and forwards an acquire.
func (s *RecordingStore) Acquire(ctx context.Context, req raftlease.AcquireRequest) (raftlease.Lease, error) {
	inv := s.invoke(Op{Kind: Acquire, Name: req.Name, Holder: req.Holder, TTLNs: int64(req.TTL)})
	l, err := s.Store.Acquire(ctx, req)
	inv.Complete(ResultOf(l, err))
	return l, err
}

// Renew records and forwards a renew.
func (s *RecordingStore) Renew(ctx context.Context, req raftlease.RenewRequest) (raftlease.Lease, error) {
	inv := s.invoke(Op{Kind: Renew, Name: req.Name, Holder: req.Holder, Token: req.Token, TTLNs: int64(req.TTL)})
	l, err := s.Store.Renew(ctx, req)
	inv.Complete(ResultOf(l, err))
	return l, err
}

// Release records and forwards a release.
func (s *RecordingStore) Release(ctx context.Context, req raftlease.ReleaseRequest) error {
	inv := s.invoke(Op{Kind: Release, Name: req.Name, Holder: req.Holder, Token: req.Token})
	err := s.Store.Release(ctx, req)
	inv.Complete(ResultOf(raftlease.Lease{}, err))
	return err
}

// Get records and forwards a read.
func (s *RecordingStore) Get(ctx context.Context, name string, opts raftlease.ReadOptions) (raftlease.Lease, error) {
	inv := s.invoke(Op{Kind: Get, Name: name, Stale: opts.Stale})
	l, err := s.Store.Get(ctx, name, opts)
	inv.Complete(ResultOf(l, err))
	return l, err
}

// List forwards unrecorded.
func (s *RecordingStore) List(ctx context.Context, prefix string, opts raftlease.ReadOptions) (raftlease.LeaseList, error) {
	return s.Store.List(ctx, prefix, opts)
}

// Watch forwards unrecorded.
func (s *RecordingStore) Watch(ctx context.Context, req raftlease.WatchRequest) (<-chan raftlease.Event, error) {
	return s.Store.Watch(ctx, req)
}
