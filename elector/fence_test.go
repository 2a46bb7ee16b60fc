package elector_test

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/elector"
)

func TestFence(t *testing.T) {
	var f elector.Fence // the zero value is ready
	assert.Equal(t, uint64(0), f.Highest("a"))
	require.NoError(t, f.Check("a", 3))
	require.NoError(t, f.Check("a", 3), "the same token again")
	require.NoError(t, f.Check("a", 5))
	err := f.Check("a", 4)
	require.ErrorIs(t, err, raftlease.ErrStaleToken)
	var stale *elector.StaleTokenError
	require.ErrorAs(t, err, &stale)
	assert.Equal(t, elector.StaleTokenError{Key: "a", Token: 4, Highest: 5}, *stale)
	assert.Equal(t, uint64(5), f.Highest("a"), "a refused token records nothing")
	require.NoError(t, f.Check("b", 1), "keys are independent")
	assert.ErrorIs(t, f.Check("b", 0), raftlease.ErrInvalidArgument)
}

func TestFenceConcurrent(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	var f elector.Fence
	keys := []string{"a", "b", "c"}
	const workers, writes = 8, 2000
	// Per key, the writes accepted in order: each worker checks and
	// appends under the resource's lock, as a guarded resource would.
	type resource struct {
		mu       sync.Mutex
		accepted []uint64
		maxTried uint64
	}
	res := map[string]*resource{}
	for _, k := range keys {
		res[k] = &resource{}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for range writes {
				k := keys[rng.IntN(len(keys))]
				token := 1 + rng.Uint64N(1000)
				r := res[k]
				r.mu.Lock()
				r.maxTried = max(r.maxTried, token)
				err := f.Check(k, token)
				if err == nil {
					r.accepted = append(r.accepted, token)
				} else {
					var stale *elector.StaleTokenError
					if assert.ErrorAs(t, err, &stale) {
						assert.Less(t, token, stale.Highest)
					}
				}
				r.mu.Unlock()
			}
		})
	}
	// Writers on key "free" hold no lock of their own: only the Fence's
	// atomic check-and-record keeps a lower token from overwriting a
	// higher one, which would leave Highest below the largest token tried.
	var freeMax [workers]uint64
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(workers+w)))
			for range writes {
				token := 1 + rng.Uint64N(1_000_000)
				freeMax[w] = max(freeMax[w], token)
				if err := f.Check("free", token); err != nil {
					assert.ErrorIs(t, err, raftlease.ErrStaleToken)
				}
				_ = f.Highest("a")
			}
		})
	}
	wg.Wait()
	var maxFree uint64
	for _, m := range freeMax {
		maxFree = max(maxFree, m)
	}
	assert.Equal(t, maxFree, f.Highest("free"))
	for _, k := range keys {
		r := res[k]
		assert.IsNonDecreasing(t, r.accepted, "key %s", k)
		assert.Equal(t, r.maxTried, f.Highest(k), "key %s", k)
	}
}
