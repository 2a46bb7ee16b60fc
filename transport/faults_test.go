package transport_test

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/transport"
)

// cluster3 starts nodes a, b and c sharing one Faults.
func cluster3(t *testing.T) (*transport.Faults, *node, *node, *node) {
	f := transport.NewFaults()
	return f, newNode(t, "a", f, nil, nil), newNode(t, "b", f, nil, nil), newNode(t, "c", f, nil, nil)
}

// healthy reports whether every ordered pair of nodes can call each other.
func healthy(nodes ...*node) bool {
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y && call(x, y, 2*time.Second) != nil {
				return false
			}
		}
	}
	return true
}

func TestFaultsCutBlocksOnlyThatDirection(t *testing.T) {
	f, a, b, c := cluster3(t)
	require.True(t, healthy(a, b, c)) // pools hold open conns both ways
	require.Equal(t, 1, a.cli.IdleConns(b.mux.Addr()))

	f.Cut("a", "b")
	assert.True(t, f.Blocked("a", "b"))
	assert.False(t, f.Blocked("b", "a"))

	// a's calls to b are refused at the dial: never sent.
	before := b.calls.Load()
	err := call(a, b, 2*time.Second)
	assert.ErrorIs(t, err, raftlease.ErrUnavailable)
	assert.ErrorIs(t, err, transport.ErrLinkCut)
	assert.Equal(t, raftlease.OutcomeNotApplied, raftlease.OutcomeOf(err))
	assert.Equal(t, before, b.calls.Load())
	assert.NotZero(t, f.Stats("a", "b").Refused)

	// b's calls to a arrive (b→a flows) but a's answers vanish.
	before = a.calls.Load()
	err = call(b, a, 200*time.Millisecond)
	assert.ErrorIs(t, err, raftlease.ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, raftlease.OutcomeUnknown, raftlease.OutcomeOf(err))
	assert.Equal(t, before+1, a.calls.Load(), "the request got through")
	assert.NotZero(t, f.Stats("a", "b").BlackHoled)

	// Other links are untouched.
	assert.True(t, healthy(a, c))
	assert.True(t, healthy(b, c))

	f.Heal()
	require.Eventually(t, func() bool { return healthy(a, b, c) }, 10*time.Second, time.Millisecond)
}

func TestFaultsCutClosesOpenConnsAndBlackHolesLaterOnes(t *testing.T) {
	f := transport.NewFaults()
	a := listen(t, transport.Config{NodeID: "a", Faults: f})
	b := listen(t, transport.Config{NodeID: "b", Faults: f})

	// An open connection a→b is closed by Cut("a","b"), on both ends.
	out, err := a.Layer(transport.KindRaft).Dial(b.Addr(), 2*time.Second)
	require.NoError(t, err)
	defer out.Close()
	in, err := b.Layer(transport.KindRaft).Accept()
	require.NoError(t, err)
	defer in.Close()
	f.Cut("a", "b")
	assert.True(t, readClosed(t, in, 10*time.Second))
	assert.True(t, readClosed(t, out, 10*time.Second))

	_, err = a.Layer(transport.KindRaft).Dial(b.Addr(), 2*time.Second)
	assert.ErrorIs(t, err, transport.ErrLinkCut)

	// b may still dial a; what b writes arrives, what a writes is lost.
	bOut, err := b.Layer(transport.KindRaft).Dial(a.Addr(), 2*time.Second)
	require.NoError(t, err)
	defer bOut.Close()
	aIn, err := a.Layer(transport.KindRaft).Accept()
	require.NoError(t, err)
	defer aIn.Close()
	assert.Equal(t, "b", transport.PeerID(aIn))
	_, err = bOut.Write([]byte("ping"))
	require.NoError(t, err)
	got := make([]byte, 4)
	_, err = io.ReadFull(aIn, got)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(got))

	n, err := aIn.Write([]byte("pong"))
	require.NoError(t, err, "a black-holed write reports success")
	assert.Equal(t, 4, n)
	assert.Equal(t, uint64(1), f.Stats("a", "b").BlackHoled)
	bOut.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = bOut.Read(got)
	var ne net.Error
	require.ErrorAs(t, err, &ne, "nothing arrives")
	require.True(t, ne.Timeout())

	// Heal closes the black hole instead of letting the stream resume with
	// a gap; new connections are clean.
	f.Heal()
	assert.True(t, readClosed(t, bOut, 10*time.Second))
	out2, err := a.Layer(transport.KindRaft).Dial(b.Addr(), 2*time.Second)
	require.NoError(t, err)
	out2.Close()
}

func TestFaultsPartitionAndHeal(t *testing.T) {
	f, a, b, c := cluster3(t)
	require.True(t, healthy(a, b, c))

	f.Partition([]string{"a"}, []string{"b", "c"})
	for _, pair := range [][2]*node{{a, b}, {b, a}, {a, c}, {c, a}} {
		err := call(pair[0], pair[1], 200*time.Millisecond)
		assert.ErrorIs(t, err, raftlease.ErrUnavailable, "%s→%s", pair[0].id, pair[1].id)
	}
	assert.True(t, healthy(b, c), "the majority side still talks")

	f.Heal()
	require.Eventually(t, func() bool { return healthy(a, b, c) }, 10*time.Second, time.Millisecond)

	f.Isolate("b")
	assert.Error(t, call(a, b, 200*time.Millisecond))
	assert.Error(t, call(b, c, 200*time.Millisecond))
	assert.True(t, healthy(a, c))
	f.Heal()
	require.Eventually(t, func() bool { return healthy(a, b, c) }, 10*time.Second, time.Millisecond)
}

func TestFaultsDelay(t *testing.T) {
	f, a, b, _ := cluster3(t)
	require.NoError(t, call(a, b, 5*time.Second)) // dial outside the measurement

	const d = 30 * time.Millisecond
	f.SetDelay("a", "b", d)
	begin := time.Now()
	require.NoError(t, call(a, b, 5*time.Second))
	assert.GreaterOrEqual(t, time.Since(begin), d, "the request waits")
	assert.Equal(t, uint64(1), f.Stats("a", "b").Delayed)

	f.SetDelay("b", "a", d)
	begin = time.Now()
	require.NoError(t, call(a, b, 5*time.Second))
	assert.GreaterOrEqual(t, time.Since(begin), 2*d, "request and answer both wait")

	f.SetDelay("a", "b", 0)
	f.SetDelay("b", "a", 0)
	delayed := f.Stats("a", "b").Delayed
	require.NoError(t, call(a, b, 5*time.Second))
	assert.Equal(t, delayed, f.Stats("a", "b").Delayed, "delay removed")
}

func TestFaultsDropRate(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	f, a, b, _ := cluster3(t)
	f.Seed(seed)

	f.SetDropRate("a", "b", 1)
	err := call(a, b, 2*time.Second)
	assert.ErrorIs(t, err, raftlease.ErrUnavailable)
	assert.ErrorIs(t, err, transport.ErrDropped)
	assert.Equal(t, raftlease.OutcomeNotApplied, raftlease.OutcomeOf(err), "a dropped request was never sent")
	assert.Zero(t, b.calls.Load())

	// Each call writes one request frame, so with a fixed seed the same
	// calls fail; with p = 0.5 over 64 calls, both outcomes occur.
	f.SetDropRate("a", "b", 0.5)
	failed := 0
	for range 64 {
		if call(a, b, 2*time.Second) != nil {
			failed++
		}
	}
	t.Logf("%d of 64 calls dropped", failed)
	assert.Greater(t, failed, 0)
	assert.Less(t, failed, 64)
	assert.Equal(t, uint64(failed+1), f.Stats("a", "b").Dropped)

	f.SetDropRate("a", "b", 0)
	require.NoError(t, call(a, b, 2*time.Second))
}

func TestFaultsDropRateIsReproducible(t *testing.T) {
	run := func() []bool {
		f, a, b, _ := cluster3(t)
		f.Seed(7)
		f.SetDropRate("a", "b", 0.3)
		var outcomes []bool
		for range 32 {
			outcomes = append(outcomes, call(a, b, 2*time.Second) == nil)
		}
		return outcomes
	}
	assert.Equal(t, run(), run())
}

// TestFaultsConcurrentUse runs calls between three nodes while another
// goroutine keeps changing faults; run it with -race.
func TestFaultsConcurrentUse(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	f, a, b, c := cluster3(t)
	f.Seed(seed)
	nodes := []*node{a, b, c}

	var stop atomic.Bool
	var wg sync.WaitGroup
	var unexpected atomic.Value
	for i := range 12 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for !stop.Load() {
				from, to := nodes[rng.IntN(3)], nodes[rng.IntN(3)]
				if from == to {
					continue
				}
				if err := call(from, to, 100*time.Millisecond); err != nil && !raftlease.IsRetryable(err) {
					unexpected.Store(err)
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	ids := []string{"a", "b", "c"}
	for range 60 {
		switch rng.IntN(6) {
		case 0:
			f.Cut(ids[rng.IntN(3)], ids[rng.IntN(3)])
		case 1:
			f.Partition([]string{ids[rng.IntN(3)]}, []string{ids[rng.IntN(3)]})
		case 2:
			f.Isolate(ids[rng.IntN(3)])
		case 3:
			f.SetDelay(ids[rng.IntN(3)], ids[rng.IntN(3)], time.Duration(rng.IntN(3))*time.Millisecond)
		case 4:
			f.SetDropRate(ids[rng.IntN(3)], ids[rng.IntN(3)], rng.Float64()/4)
		case 5:
			f.Heal()
		}
		_ = f.Stats("a", "b")
		// Let some calls run under this fault before the next one.
		call(a, b, 20*time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if err := unexpected.Load(); err != nil {
		t.Fatalf("a call failed with a non-retryable error: %v", err)
	}
	f.Heal()
	require.Eventually(t, func() bool { return healthy(a, b, c) }, 10*time.Second, time.Millisecond)
}
