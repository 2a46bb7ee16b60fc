package cluster

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
	"github.com/raftlease/raftlease/internal/watch"
)

// stateMachine adapts fsm.FSM to raft.FSM. Raft calls Apply, Snapshot and
// Restore from its FSM goroutine; API goroutines read under the RWMutex.
type stateMachine struct {
	hub   *watch.Hub
	clock func() time.Time // local clock, to age stale reads on followers

	mu        sync.RWMutex
	fsm       *fsm.FSM
	appliedAt time.Time // local time of the last applied command
	fatal     error     // a committed entry could not be decoded
	onFatal   func(error)
	hooks     *TestHooks // nil unless the unsafe test hooks are on

	// Counters since this process started, for status and metrics.
	epochs      atomic.Uint64
	expirations atomic.Uint64
}

var _ raft.FSM = (*stateMachine)(nil)

func newStateMachine(hub *watch.Hub, clock func() time.Time, onFatal func(error)) *stateMachine {
	return &stateMachine{hub: hub, clock: clock, fsm: fsm.New(), onFatal: onFatal}
}

// applyResponse is what Apply returns through raft's ApplyFuture.Response.
type applyResponse struct {
	result fsm.Result
	err    error // fatal: the entry could not be decoded
}

// Apply applies one committed entry. An entry that cannot be decoded stops
// the state machine for good: applying later entries on top of a skipped
// one would let this replica diverge silently.
func (s *stateMachine) Apply(l *raft.Log) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fatal != nil {
		return applyResponse{err: s.fatal}
	}
	s.hooks.crash(CrashBeforeApply)
	cmd, err := fsm.Decode(l.Data)
	if err != nil {
		if fsm.Ignorable(l.Data) {
			s.hub.Publish(l.Index, nil)
			return applyResponse{}
		}
		s.fatal = fmt.Errorf("cluster: committed entry %d cannot be applied, replica halted: %w", l.Index, err)
		go s.onFatal(s.fatal)
		return applyResponse{err: s.fatal}
	}
	res := s.fsm.Apply(l.Index, cmd)
	s.appliedAt = s.clock()
	if cmd.Kind == fsm.KindEpoch {
		s.epochs.Add(1)
	}
	for _, e := range res.Events {
		if e.Type == raftlease.EventExpired {
			s.expirations.Add(1)
		}
	}
	s.hub.Publish(l.Index, res.Events)
	s.hooks.crash(CrashAfterApply)
	return applyResponse{result: res}
}

// Snapshot captures an immutable view; Persist streams it.
func (s *stateMachine) Snapshot() (raft.FSMSnapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fatal != nil {
		return nil, s.fatal
	}
	return &snapshot{snap: s.fsm.Snapshot(), hooks: s.hooks}, nil
}

// Restore replaces the whole state with a snapshot. The new state is built
// aside and swapped in only once it has been read and checked completely.
func (s *stateMachine) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	restored, err := fsm.Restore(s.hooks.midReader(rc, CrashSnapshotRestore))
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fsm = restored
	s.appliedAt = s.clock()
	s.hub.Reset(restored.Index())
	return nil
}

// read runs f with the state machine under the read lock.
func (s *stateMachine) read(f func(m *fsm.FSM) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fatal != nil {
		return s.fatal
	}
	return f(s.fsm)
}

// staleNow estimates consensus time on a replica that is not the leader:
// the consensus time of the last applied entry plus the local time since.
// Only stale reads use it.
func (s *stateMachine) staleNow() time.Duration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.fsm.Clock().Now
	if !s.appliedAt.IsZero() {
		now += s.clock().Sub(s.appliedAt)
	}
	return now
}

type snapshot struct {
	snap  *fsm.Snapshot
	hooks *TestHooks
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.snap.WriteTo(s.hooks.midWriter(sink, CrashSnapshotPersist)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
