package cluster

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/raftlease/raftlease"
)

// verifier coalesces leadership confirmations for linearizable reads. A
// read waits for a round of VerifyLeader that started after the read
// arrived; every read waiting when a round starts shares it. So concurrent
// reads cost one quorum round trip, not one each.
type verifier struct {
	raft *raft.Raft

	mu      sync.Mutex
	waiting []chan error
	running bool
}

func newVerifier(r *raft.Raft) *verifier { return &verifier{raft: r} }

func (v *verifier) verify(ctx context.Context) error {
	ch := make(chan error, 1)
	v.mu.Lock()
	v.waiting = append(v.waiting, ch)
	if !v.running {
		v.running = true
		go v.run()
	}
	v.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return notApplied(ctx.Err())
	}
}

// run performs rounds until nobody waits. Its goroutine ends when the
// queue is empty; VerifyLeader always resolves (on shutdown too).
func (v *verifier) run() {
	for {
		v.mu.Lock()
		batch := v.waiting
		v.waiting = nil
		if len(batch) == 0 {
			v.running = false
			v.mu.Unlock()
			return
		}
		v.mu.Unlock()
		err := v.raft.VerifyLeader().Error()
		if err != nil {
			// A read changes nothing, so it is always safe to retry elsewhere.
			err = notApplied(fmt.Errorf("%w: leadership not confirmed: %v", raftlease.ErrNoQuorum, err))
		}
		for _, ch := range batch {
			ch <- err
		}
	}
}
