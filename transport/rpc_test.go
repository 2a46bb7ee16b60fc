package transport_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/transport"
)

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func TestRPCRoundTripAndPooling(t *testing.T) {
	a := newNode(t, "a", nil, nil, nil)
	bm := listen(t, transport.Config{NodeID: "b"})
	ln := &countingListener{Listener: bm.Layer(transport.KindForward)}
	srv := transport.Serve(ln, func(ctx context.Context, method string, body []byte) ([]byte, error) {
		dl, ok := ctx.Deadline()
		if !ok || time.Until(dl) > 10*time.Second {
			return nil, errors.New("handler ctx lacks the caller's deadline")
		}
		return append([]byte(method+":"), body...), nil
	}, nil)
	defer srv.Close()

	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := a.cli.Call(ctx, bm.Addr(), "echo", []byte(fmt.Sprint(i)))
		cancel()
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("echo:%d", i), string(resp))
	}
	assert.Equal(t, int64(1), ln.n.Load(), "sequential calls reuse one pooled connection")
	assert.Equal(t, 1, a.cli.IdleConns(bm.Addr()))

	// Empty body and empty answer.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := a.cli.Call(ctx, bm.Addr(), "", nil)
	require.NoError(t, err)
	assert.Equal(t, ":", string(resp))

	// Concurrent calls each get their own connection, and the pool keeps at
	// most MaxIdlePerAddr (2 by default).
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := a.cli.Call(ctx, bm.Addr(), "c", []byte(fmt.Sprint(i)))
			assert.NoError(t, err)
			assert.Equal(t, fmt.Sprintf("c:%d", i), string(resp))
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, a.cli.IdleConns(bm.Addr()), 2)
}

func TestRPCContextEndsCall(t *testing.T) {
	started := make(chan struct{}, 10)
	handlerSawEnd := make(chan error, 10)
	b := newNode(t, "b", nil, nil, func(ctx context.Context, method string, body []byte) ([]byte, error) {
		if method == "block" {
			started <- struct{}{}
			<-ctx.Done()
			handlerSawEnd <- ctx.Err()
			return nil, ctx.Err()
		}
		return echo(ctx, method, body)
	})
	a := newNode(t, "a", nil, nil, nil)

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		begin := time.Now()
		_, err := a.cli.Call(ctx, b.mux.Addr(), "block", nil)
		assert.GreaterOrEqual(t, time.Since(begin), 100*time.Millisecond)
		assert.ErrorIs(t, err, raftlease.ErrUnavailable)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, raftlease.OutcomeUnknown, raftlease.OutcomeOf(err), "the handler ran")
		<-started
		assert.ErrorIs(t, <-handlerSawEnd, context.DeadlineExceeded, "the handler's ctx carries the caller's deadline")
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := a.cli.Call(ctx, b.mux.Addr(), "block", nil)
			errc <- err
		}()
		<-started
		cancel()
		err := <-errc
		assert.ErrorIs(t, err, raftlease.ErrUnavailable)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, raftlease.OutcomeUnknown, raftlease.OutcomeOf(err))
		// The server notices when it answers into the closed conn, or at
		// Close (cleanup) which cancels the handler.
	})
	t.Run("already done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := a.cli.Call(ctx, b.mux.Addr(), "echo", nil)
		assert.ErrorIs(t, err, raftlease.ErrUnavailable)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, raftlease.OutcomeNotApplied, raftlease.OutcomeOf(err))
	})
	// The node still serves.
	require.NoError(t, call(a, b, 5*time.Second))
}

func TestRPCDialFailureIsNotApplied(t *testing.T) {
	a := newNode(t, "a", nil, nil, nil)
	gone := listen(t, transport.Config{NodeID: "gone"})
	addr := gone.Addr()
	require.NoError(t, gone.Close())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.cli.Call(ctx, addr, "echo", nil)
	assert.ErrorIs(t, err, raftlease.ErrUnavailable)
	assert.Equal(t, raftlease.OutcomeNotApplied, raftlease.OutcomeOf(err))
	assert.True(t, raftlease.IsRetryable(err))
}

func TestRPCReconnectsAfterPeerRestart(t *testing.T) {
	a := newNode(t, "a", nil, nil, nil)
	bm, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0", NodeID: "b"})
	require.NoError(t, err)
	addr := bm.Addr()
	srv := transport.Serve(bm.Layer(transport.KindForward), echo, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = a.cli.Call(ctx, addr, "echo", nil)
	require.NoError(t, err)
	require.Equal(t, 1, a.cli.IdleConns(addr))

	srv.Close()
	bm.Close()
	require.Eventually(t, func() bool { return a.cli.IdleConns(addr) == 0 }, 10*time.Second, time.Millisecond,
		"the idle watcher notices the peer closed the pooled connection")

	b2 := listen(t, transport.Config{BindAddr: addr, NodeID: "b"})
	srv2 := transport.Serve(b2.Layer(transport.KindForward), echo, nil)
	defer srv2.Close()
	resp, err := a.cli.Call(ctx, addr, "echo", []byte("again"))
	require.NoError(t, err, "no stale pooled connection is reused")
	assert.Equal(t, "echo:again", string(resp))
}

func TestRPCFrameLimits(t *testing.T) {
	b := newNode(t, "b", nil, nil, func(ctx context.Context, method string, body []byte) ([]byte, error) {
		if method == "huge" {
			return make([]byte, transport.MaxFrameSize+1), nil
		}
		return echo(ctx, method, body)
	})
	a := newNode(t, "a", nil, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("request too large", func(t *testing.T) {
		_, err := a.cli.Call(ctx, b.mux.Addr(), "echo", make([]byte, transport.MaxFrameSize))
		assert.ErrorIs(t, err, raftlease.ErrInvalidArgument)
		assert.False(t, raftlease.IsRetryable(err))
		assert.Zero(t, b.calls.Load())
	})
	t.Run("response too large", func(t *testing.T) {
		_, err := a.cli.Call(ctx, b.mux.Addr(), "huge", nil)
		code, _ := transport.ErrorCode(err)
		assert.Equal(t, transport.CodeInternal, code)
		assert.Contains(t, err.Error(), "frame limit")
	})
	t.Run("announced oversized frame closes the conn", func(t *testing.T) {
		c, err := a.mux.Layer(transport.KindForward).Dial(b.mux.Addr(), 5*time.Second)
		require.NoError(t, err)
		defer c.Close()
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], transport.MaxFrameSize+1)
		_, err = c.Write(hdr[:])
		require.NoError(t, err)
		assert.True(t, readClosed(t, c, 10*time.Second))
	})
	t.Run("malformed request closes the conn", func(t *testing.T) {
		c, err := a.mux.Layer(transport.KindForward).Dial(b.mux.Addr(), 5*time.Second)
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Write([]byte{0, 0, 0, 2, 9, 9})
		require.NoError(t, err)
		assert.True(t, readClosed(t, c, 10*time.Second))
	})
	require.NoError(t, call(a, b, 5*time.Second), "the server keeps serving")
}

func TestRPCHandlerPanicIsInternal(t *testing.T) {
	b := newNode(t, "b", nil, nil, func(ctx context.Context, method string, body []byte) ([]byte, error) {
		if method == "panic" {
			panic("boom")
		}
		return echo(ctx, method, body)
	})
	a := newNode(t, "a", nil, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.cli.Call(ctx, b.mux.Addr(), "panic", nil)
	code, status := transport.ErrorCode(err)
	assert.Equal(t, transport.CodeInternal, code)
	assert.Equal(t, 500, status)
	assert.Contains(t, err.Error(), "boom")
	require.NoError(t, call(a, b, 5*time.Second))
}

// TestRPCHandlerErrorsRoundTrip sends every root error through the wire and
// checks the caller gets an error matching the same root errors.
func TestRPCHandlerErrorsRoundTrip(t *testing.T) {
	cases := errorCases()
	b := newNode(t, "b", nil, nil, func(_ context.Context, method string, _ []byte) ([]byte, error) {
		for _, c := range cases {
			if c.name == method {
				return nil, c.err
			}
		}
		return nil, errors.New("no such case")
	})
	a := newNode(t, "a", nil, nil, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, got := a.cli.Call(ctx, b.mux.Addr(), c.name, nil)
			require.Error(t, got)
			checkRoundTrip(t, c, got)
		})
	}
}

func TestClientClose(t *testing.T) {
	b := newNode(t, "b", nil, nil, nil)
	a := newNode(t, "a", nil, nil, nil)
	require.NoError(t, call(a, b, 5*time.Second))
	require.NoError(t, a.cli.Close())
	require.NoError(t, a.cli.Close(), "idempotent")
	err := call(a, b, 5*time.Second)
	assert.ErrorIs(t, err, raftlease.ErrClosed)
	assert.False(t, raftlease.IsRetryable(err))
	require.NoError(t, b.srv.Close())
	require.NoError(t, b.srv.Close(), "idempotent")
}

func TestClientCloseFailsCallsInFlight(t *testing.T) {
	started := make(chan struct{})
	b := newNode(t, "b", nil, nil, func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	a := newNode(t, "a", nil, nil, nil)
	errc := make(chan error, 1)
	go func() { errc <- call(a, b, time.Minute) }()
	<-started
	a.cli.Close()
	err := <-errc
	assert.ErrorIs(t, err, raftlease.ErrUnavailable)
	assert.Equal(t, raftlease.OutcomeUnknown, raftlease.OutcomeOf(err))
}

func TestServerCloseCancelsHandlers(t *testing.T) {
	started := make(chan struct{})
	b := newNode(t, "b", nil, nil, func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	a := newNode(t, "a", nil, nil, nil)
	errc := make(chan error, 1)
	go func() { errc <- call(a, b, time.Minute) }()
	<-started
	require.NoError(t, b.srv.Close(), "returns once the handler returned")
	err := <-errc
	assert.ErrorIs(t, err, raftlease.ErrUnavailable)
	assert.True(t, strings.Contains(err.Error(), "outcome unknown"), err.Error())
}
