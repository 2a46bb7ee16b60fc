package client_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/client"
	"github.com/raftlease/raftlease/cluster"
	"github.com/raftlease/raftlease/memstore"
	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/testutil/storetest"
	"github.com/raftlease/raftlease/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// hashicorp/raft's NetworkTransport does not close the connections
		// it accepted when it shuts down (see cluster/cluster_test.go).
		goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*NetworkTransport).handleConn"),
	)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, opts client.Options) *client.Client {
	t.Helper()
	c, err := client.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// TestConformance runs the Store conformance suite through the HTTP API of
// a 3-node cluster: once with the client pointed at a follower only (every
// write is forwarded), once with every endpoint listed.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster and runs on real time")
	}
	// The suite checks deadlines against real time, and a leader change
	// pauses consensus time: LAN timings (500 ms heartbeats) keep a loaded
	// test machine from holding spurious elections.
	base := cluster.DefaultOptions()
	hc := testutil.NewHTTPCluster(t, 3, testutil.ClusterOptions{Base: &base})
	t.Run("ThroughFollower", func(t *testing.T) {
		endpoint := hc.URL(hc.Cluster().Follower())
		storetest.Run(t, func(t *testing.T) storetest.Subject {
			return storetest.Subject{Store: newClient(t, client.Options{Endpoints: []string{endpoint}})}
		})
	})
	t.Run("AllEndpoints", func(t *testing.T) {
		var endpoints []string
		for i := range hc.Size() {
			endpoints = append(endpoints, hc.Addr(i)) // the host:port form
		}
		storetest.Run(t, func(t *testing.T) storetest.Subject {
			return storetest.Subject{Store: newClient(t, client.Options{Endpoints: endpoints})}
		})
	})
	hc.Cluster().WaitConverged()
}

// TestFailover: the endpoint the client uses goes away (its HTTP server
// closes, then the node behind the next one is killed) and the client
// carries on through the others, keeping its lease and its watch.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	hc := testutil.NewHTTPCluster(t, 3, testutil.ClusterOptions{})
	ctx := ctxTimeout(t, 2*time.Minute)
	c := hc.Cluster()
	leader := c.Leader()
	// The first endpoint is a follower, then the other follower, then the
	// leader; the client starts with the first.
	var order []int
	for i := range 3 {
		if i != leader {
			order = append(order, i)
		}
	}
	order = append(order, leader)
	cl := newClient(t, client.Options{Endpoints: []string{hc.URL(order[0]), hc.URL(order[1]), hc.URL(order[2])}, RequestTimeout: 2 * time.Second})

	l, err := cl.Acquire(ctx, raftlease.AcquireRequest{Name: "fo/leader", Holder: "h1", TTL: time.Minute})
	require.NoError(t, err)
	events, err := cl.Watch(ctx, raftlease.WatchRequest{Prefix: "fo/", FromRevision: l.Revision})
	require.NoError(t, err)
	next := expectEvent(t, events, raftlease.EventAcquired, "fo/leader")
	assert.Equal(t, l.Revision, next.Revision)

	// 1. The first endpoint's server goes away: connections refused.
	hc.CloseServer(order[0])
	r1, err := cl.Renew(ctx, raftlease.RenewRequest{Name: "fo/leader", Holder: "h1", Token: l.Token})
	require.NoError(t, err, "renew through another endpoint")
	assert.Equal(t, l.Token, r1.Token)
	assert.Equal(t, raftlease.EventRenewed, expectEvent(t, events, raftlease.EventRenewed, "fo/leader").Type)

	// 2. The node behind the endpoint now in use dies (its server answers
	// 503 not_applied): the client moves on to the leader's endpoint.
	hc.Kill(order[1])
	for k := range 5 {
		_, err := cl.Acquire(ctx, raftlease.AcquireRequest{Name: fmt.Sprintf("fo/k%d", k), Holder: "h2", TTL: time.Minute})
		require.NoError(t, err)
	}
	r2, err := cl.Renew(ctx, raftlease.RenewRequest{Name: "fo/leader", Holder: "h1", Token: l.Token})
	require.NoError(t, err)
	// The watch resumed from where it was: every event, in order, once.
	for k := range 5 {
		expectEvent(t, events, raftlease.EventAcquired, fmt.Sprintf("fo/k%d", k))
	}
	ev := expectEvent(t, events, raftlease.EventRenewed, "fo/leader")
	assert.Equal(t, r2.Revision, ev.Revision)

	// 3. The node comes back; its server serves it again.
	hc.Restart(order[1])
	only := newClient(t, client.Options{Endpoints: []string{hc.URL(order[1])}})
	require.Eventually(t, func() bool {
		got, err := only.Get(ctx, "fo/leader", raftlease.ReadOptions{})
		return err == nil && got.Token == l.Token
	}, 20*time.Second, 20*time.Millisecond, "the restarted node serves through its endpoint")
	c.WaitConverged()
}

// expectEvent returns the next event, which must be of type typ for name.
func expectEvent(t *testing.T, ch <-chan raftlease.Event, typ raftlease.EventType, name string) raftlease.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "watch channel closed; want %s of %s", typ, name)
		require.Equal(t, typ, ev.Type, "event %+v", ev)
		require.Equal(t, name, ev.Lease.Name, "event %+v", ev)
		return ev
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s event for %s within 20s", typ, name)
	}
	panic("unreachable")
}

// TestWatchResumesWithoutGaps: while writers run, the endpoint serving a
// watch fails twice; the watch still delivers every change once, in order.
func TestWatchResumesWithoutGaps(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	hc := testutil.NewHTTPCluster(t, 3, testutil.ClusterOptions{})
	ctx := ctxTimeout(t, 2*time.Minute)
	c := hc.Cluster()
	leader := c.Leader()
	var followers []int
	for i := range 3 {
		if i != leader {
			followers = append(followers, i)
		}
	}
	// The watch starts on a follower's endpoint, fails over to the other
	// follower's, then to the leader's. The writes go to the leader only,
	// which stays up: a write whose answer a failure cut off would be
	// retried, and a retried acquire adds a renewed event (idempotent for
	// the holder, but a change all the same).
	logs := &syncBuffer{}
	watcher := newClient(t, client.Options{Endpoints: []string{hc.URL(followers[0]), hc.URL(followers[1]), hc.URL(leader)}, RequestTimeout: 2 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Warn})})
	writer := newClient(t, client.Options{Endpoints: []string{hc.URL(leader)}})

	events, err := watcher.Watch(ctx, raftlease.WatchRequest{Prefix: "gap/"})
	require.NoError(t, err)
	const writers, rounds = 3, 12
	var (
		mu    sync.Mutex
		wrote []raftlease.Lease // acquisitions and renewals, as returned
	)
	var wg sync.WaitGroup
	var progress atomic.Int64
	for w := range writers {
		wg.Go(func() {
			name := fmt.Sprintf("gap/w%d", w)
			for range rounds {
				a, err := writer.Acquire(ctx, raftlease.AcquireRequest{Name: name, Holder: "h", TTL: time.Minute})
				if !assert.NoError(t, err) {
					return
				}
				r, err := writer.Renew(ctx, raftlease.RenewRequest{Name: name, Holder: "h", Token: a.Token})
				if !assert.NoError(t, err) {
					return
				}
				if !assert.NoError(t, writer.Release(ctx, raftlease.ReleaseRequest{Name: name, Holder: "h", Token: a.Token})) {
					return
				}
				mu.Lock()
				wrote = append(wrote, a, r)
				mu.Unlock()
				progress.Add(1)
			}
		})
	}
	total := writers * rounds * 3
	var got []raftlease.Event
	failed := 0
	for len(got) < total {
		select {
		case ev, ok := <-events:
			require.True(t, ok, "watch closed after %d events", len(got))
			require.NotEqual(t, raftlease.EventCompacted, ev.Type)
			got = append(got, ev)
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of %d events within 30s", len(got), total)
		}
		// Break the endpoints the watch uses, one after the other, while it
		// runs: first a server, then a node.
		switch {
		case failed == 0 && len(got) >= total/3:
			hc.CloseServer(followers[0])
			failed++
		case failed == 1 && len(got) >= 2*total/3:
			hc.Kill(followers[1])
			failed++
		}
	}
	wg.Wait()
	// Group commit puts concurrent writes in one revision: a change is its
	// revision and lease name.
	var prev uint64
	seen := map[string]int{}
	released := 0
	for _, ev := range got {
		require.GreaterOrEqual(t, ev.Revision, prev, "in revision order")
		prev = ev.Revision
		if ev.Type == raftlease.EventReleased {
			released++
			continue
		}
		seen[fmt.Sprintf("%d %s", ev.Revision, ev.Lease.Name)]++
	}
	for _, l := range wrote {
		assert.Equal(t, 1, seen[fmt.Sprintf("%d %s", l.Revision, l.Name)], "the change at revision %d (%s token %d) delivered once", l.Revision, l.Name, l.Token)
	}
	assert.Len(t, seen, len(wrote), "nothing but the writes")
	assert.Equal(t, writers*rounds, released)
	assert.GreaterOrEqual(t, strings.Count(logs.String(), "watch query failed"), 2, "the watch failed over twice:\n%s", logs)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAuthToken: a cluster requiring a token refuses a client without it
// (not retryable) and serves one with it.
func TestAuthToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	hc := testutil.NewHTTPClusterWith(t, 1, testutil.ClusterOptions{}, testutil.HTTPOptions{Handler: transport.HandlerOptions{AuthTokens: []string{"t0ken"}}})
	ctx := ctxTimeout(t, time.Minute)
	for _, tok := range []string{"", "wrong"} {
		bad := newClient(t, client.Options{Endpoints: hc.URLs(), Token: tok})
		start := time.Now()
		_, err := bad.Acquire(ctx, raftlease.AcquireRequest{Name: "auth", Holder: "h", TTL: time.Second})
		require.ErrorIs(t, err, transport.ErrUnauthorized)
		assert.False(t, raftlease.IsRetryable(err))
		assert.Less(t, time.Since(start), 5*time.Second, "not retried")
		_, err = bad.Watch(ctx, raftlease.WatchRequest{Name: "auth"})
		require.ErrorIs(t, err, transport.ErrUnauthorized)
	}
	good := newClient(t, client.Options{Endpoints: hc.URLs(), Token: "t0ken"})
	l, err := good.Acquire(ctx, raftlease.AcquireRequest{Name: "auth", Holder: "h", TTL: time.Second})
	require.NoError(t, err)
	st, err := good.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, "n0", st.ID)
	require.NoError(t, good.Ready(ctx), "readyz needs no token")
	require.NoError(t, good.Release(ctx, raftlease.ReleaseRequest{Name: "auth", Holder: "h", Token: l.Token}))
}

// TestClusterAdmin: status, readiness, membership and snapshots through
// the client.
func TestClusterAdmin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	hc := testutil.NewHTTPCluster(t, 3, testutil.ClusterOptions{})
	ctx := ctxTimeout(t, time.Minute)
	c := hc.Cluster()
	follower := c.Follower()
	cl := newClient(t, client.Options{Endpoints: []string{hc.URL(follower), hc.URL(c.Leader())}})

	st, err := cl.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, c.ID(follower), st.ID)
	require.NotNil(t, st.Leader)
	assert.Equal(t, hc.Addr(c.Leader()), st.Leader.HTTPAddr)
	assert.Equal(t, hc.URL(c.Leader()), cl.Endpoints()[0], "the client follows the leader once status names it")
	require.NoError(t, cl.Ready(ctx))

	require.NoError(t, cl.AddMember(ctx, transport.MemberJSON{ID: "extra", RaftAddr: "127.0.0.1:1", Voter: false}))
	require.NoError(t, cl.AddMember(ctx, transport.MemberJSON{ID: "extra", RaftAddr: "127.0.0.1:1", Voter: false}), "idempotent")
	require.NoError(t, cl.RemoveMember(ctx, "extra"))
	require.ErrorIs(t, cl.RemoveMember(ctx, "extra"), raftlease.ErrNotFound)
	err = cl.AddMember(ctx, transport.MemberJSON{ID: "bad", RaftAddr: "no-port", Voter: true})
	var fe *raftlease.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "raft_addr", fe.Field)

	l, err := cl.Acquire(ctx, raftlease.AcquireRequest{Name: "snap", Holder: "h", TTL: time.Minute})
	require.NoError(t, err)
	var buf bytes.Buffer
	n, err := cl.SaveSnapshot(ctx, &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(buf.Len()), n)
	rep, err := cl.RestoreSnapshot(ctx, bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, rep.Imported, 1)
	got, err := cl.Get(ctx, "snap", raftlease.ReadOptions{})
	require.NoError(t, err)
	assert.Equal(t, l.Token, got.Token, "restore re-acquires for the same holder")
	_, err = cl.RestoreSnapshot(ctx, bytes.NewReader([]byte("garbage")))
	require.ErrorIs(t, err, raftlease.ErrInvalidArgument)
}

// --- Tests on a single in-process store behind the HTTP handler ---

// memBackend serves the in-process store as a transport.Backend.
type memBackend struct{ *memstore.Store }

func (memBackend) Status(context.Context) (transport.StatusJSON, error) {
	return transport.StatusJSON{ID: "mem", State: "Leader", Serving: true}, nil
}
func (memBackend) Ready(context.Context) error                           { return nil }
func (memBackend) AddMember(context.Context, transport.MemberJSON) error { return nil }
func (memBackend) RemoveMember(context.Context, string) error            { return raftlease.ErrNotFound }
func (memBackend) SaveSnapshot(_ context.Context, w io.Writer) (int64, error) {
	n, err := w.Write([]byte("snapshot"))
	return int64(n), err
}
func (memBackend) RestoreSnapshot(context.Context, io.Reader) (transport.RestoreReportJSON, error) {
	return transport.RestoreReportJSON{}, nil
}

// memServer serves an in-process store; wrap, when set, sits in front of
// the API handler.
func memServer(t *testing.T, opts memstore.Options, wrap func(http.Handler) http.Handler) (*httptest.Server, *memstore.Store) {
	t.Helper()
	s, err := memstore.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	h, err := transport.NewHandler(memBackend{s}, transport.HandlerOptions{})
	require.NoError(t, err)
	var handler http.Handler = h
	if wrap != nil {
		handler = wrap(h)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv, s
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// TestErrorsKeepIdentity: the client's errors match the same root errors
// as the embedded store's.
func TestErrorsKeepIdentity(t *testing.T) {
	srv, _ := memServer(t, memstore.Options{}, nil)
	cl := newClient(t, client.Options{Endpoints: []string{srv.URL}})
	ctx := ctxTimeout(t, time.Minute)

	a, err := cl.Acquire(ctx, raftlease.AcquireRequest{Name: "jobs/x", Holder: "a", TTL: time.Minute, Metadata: map[string]string{"addr": "one"}})
	require.NoError(t, err)
	_, err = cl.Acquire(ctx, raftlease.AcquireRequest{Name: "jobs/x", Holder: "b", TTL: time.Minute})
	require.ErrorIs(t, err, raftlease.ErrLeaseHeld)
	var held *raftlease.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, a.Token, held.Current.Token)
	assert.Equal(t, a.Deadline, held.Current.Deadline, "exact, through the _ns fields")
	assert.Equal(t, a.Revision, held.Current.Revision)
	assert.Equal(t, a.Metadata, held.Current.Metadata)
	assert.True(t, a.AcquiredAt.Equal(held.Current.AcquiredAt))

	_, err = cl.Renew(ctx, raftlease.RenewRequest{Name: "jobs/x", Holder: "a", Token: a.Token + 1})
	require.ErrorIs(t, err, raftlease.ErrNotHolder)
	require.ErrorIs(t, cl.Release(ctx, raftlease.ReleaseRequest{Name: "jobs/x", Holder: "b", Token: a.Token}), raftlease.ErrNotHolder)
	_, err = cl.Get(ctx, "jobs/none", raftlease.ReadOptions{})
	require.ErrorIs(t, err, raftlease.ErrNotFound)
	assert.False(t, raftlease.IsRetryable(err))

	// Invalid input is refused locally, with the store's errors.
	_, err = cl.Acquire(ctx, raftlease.AcquireRequest{Name: "jobs/x", Holder: "a", TTL: time.Millisecond})
	var fe *raftlease.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "ttl", fe.Field)
	_, err = cl.Watch(ctx, raftlease.WatchRequest{Name: "a", Prefix: "b"})
	require.ErrorIs(t, err, raftlease.ErrInvalidArgument)

	// Names with every allowed byte, including those a router would clean.
	for _, name := range []string{"a//b", "a/./b", "a/../b", "trailing/", "x:y@z=w+v-u_t.s"} {
		l, err := cl.Acquire(ctx, raftlease.AcquireRequest{Name: name, Holder: "h", TTL: time.Minute})
		require.NoError(t, err, name)
		got, err := cl.Get(ctx, name, raftlease.ReadOptions{})
		require.NoError(t, err, name)
		assert.Equal(t, name, got.Name)
		require.NoError(t, cl.Release(ctx, raftlease.ReleaseRequest{Name: name, Holder: "h", Token: l.Token}), name)
	}
}

// TestConnectionErrors: a refused connection is not_applied and retried
// on the next endpoint; with no endpoint alive the call fails when its ctx
// ends, as unavailable.
func TestConnectionErrors(t *testing.T) {
	srv, _ := memServer(t, memstore.Options{}, nil)
	dead := deadAddr(t)
	cl := newClient(t, client.Options{Endpoints: []string{dead, srv.URL}})
	ctx := ctxTimeout(t, time.Minute)
	_, err := cl.Acquire(ctx, raftlease.AcquireRequest{Name: "c", Holder: "h", TTL: time.Minute})
	require.NoError(t, err, "the dead endpoint is skipped")
	assert.Equal(t, srv.URL, cl.Endpoints()[0], "the endpoint that answered is preferred")

	only := newClient(t, client.Options{Endpoints: []string{dead}})
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = only.Get(short, "c", raftlease.ReadOptions{})
	require.ErrorIs(t, err, raftlease.ErrUnavailable)
	assert.Equal(t, raftlease.OutcomeNotApplied, raftlease.OutcomeOf(err), "a refused dial never reached a server: %v", err)
}

// dropAnswer runs the real handler for the first n requests matching
// path, then cuts the connection instead of answering: the request
// applied, the client cannot know.
func dropAnswer(path string, n int) func(http.Handler) http.Handler {
	var dropped atomic.Int64
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != path || dropped.Add(1) > int64(n) {
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(httptest.NewRecorder(), r)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		})
	}
}

// TestRetryUnknownOutcome: writes whose answer was lost are retried, which
// is idempotent for acquire and renew, and reports not_holder for a
// release that had applied (as documented).
func TestRetryUnknownOutcome(t *testing.T) {
	ctx := ctxTimeout(t, time.Minute)
	t.Run("Acquire", func(t *testing.T) {
		srv, s := memServer(t, memstore.Options{}, dropAnswer("/v1/leases/k/acquire", 1))
		cl := newClient(t, client.Options{Endpoints: []string{srv.URL}})
		l, err := cl.Acquire(ctx, raftlease.AcquireRequest{Name: "k", Holder: "h", TTL: time.Minute})
		require.NoError(t, err)
		got, err := s.Get(ctx, "k", raftlease.ReadOptions{})
		require.NoError(t, err)
		assert.Equal(t, got.Token, l.Token, "the retry found the first grant: same token")
	})
	t.Run("Release", func(t *testing.T) {
		srv, s := memServer(t, memstore.Options{}, dropAnswer("/v1/leases/k/release", 1))
		cl := newClient(t, client.Options{Endpoints: []string{srv.URL}})
		l, err := cl.Acquire(ctx, raftlease.AcquireRequest{Name: "k", Holder: "h", TTL: time.Minute})
		require.NoError(t, err)
		err = cl.Release(ctx, raftlease.ReleaseRequest{Name: "k", Holder: "h", Token: l.Token})
		require.ErrorIs(t, err, raftlease.ErrNotHolder, "the retried release found the lease already free")
		_, err = s.Get(ctx, "k", raftlease.ReadOptions{})
		require.ErrorIs(t, err, raftlease.ErrNotFound, "released")
	})
	t.Run("OutcomeReported", func(t *testing.T) {
		srv, _ := memServer(t, memstore.Options{}, dropAnswer("/v1/leases/k/acquire", 1000))
		cl := newClient(t, client.Options{Endpoints: []string{srv.URL}})
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := cl.Acquire(short, raftlease.AcquireRequest{Name: "k", Holder: "h", TTL: time.Minute})
		require.ErrorIs(t, err, raftlease.ErrUnavailable)
		assert.Equal(t, raftlease.OutcomeUnknown, raftlease.OutcomeOf(err), "%v", err)
	})
}

// failFirst answers the first n requests with a 503 whose outcome is
// not_applied, as a node without a leader does.
func failFirst(n int) func(http.Handler) http.Handler {
	var count atomic.Int64
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if count.Add(1) > int64(n) {
				next.ServeHTTP(w, r)
				return
			}
			body, status := transport.NewErrorJSON(&raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: fmt.Errorf("%w: no leader known", raftlease.ErrNoQuorum)})
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"code":%q,"message":%q,"outcome":%q}}`, body.Error.Code, body.Error.Message, body.Error.Outcome)
		})
	}
}

func TestRetriesUnavailable(t *testing.T) {
	ctx := ctxTimeout(t, time.Minute)
	srv, _ := memServer(t, memstore.Options{}, failFirst(3))
	cl := newClient(t, client.Options{Endpoints: []string{srv.URL}})
	_, err := cl.Acquire(ctx, raftlease.AcquireRequest{Name: "r", Holder: "h", TTL: time.Minute})
	require.NoError(t, err, "retried past three 503s")

	srv2, _ := memServer(t, memstore.Options{}, failFirst(1_000_000))
	cl2 := newClient(t, client.Options{Endpoints: []string{srv2.URL}})
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = cl2.Acquire(short, raftlease.AcquireRequest{Name: "r", Holder: "h", TTL: time.Minute})
	require.ErrorIs(t, err, raftlease.ErrNoQuorum)
	assert.Equal(t, raftlease.OutcomeNotApplied, raftlease.OutcomeOf(err))
}

// TestWatchCompacted: a watch from a revision the server no longer
// retains fails at once with ErrCompacted; a watch that falls behind gets
// EventCompacted, then its channel closes.
func TestWatchCompacted(t *testing.T) {
	srv, s := memServer(t, memstore.Options{WatchRetain: 8, WatchBuffer: 2}, nil)
	cl := newClient(t, client.Options{Endpoints: []string{srv.URL}})
	ctx := ctxTimeout(t, time.Minute)
	for i := range 20 {
		_, err := s.Acquire(ctx, raftlease.AcquireRequest{Name: fmt.Sprintf("c%02d", i), Holder: "h", TTL: time.Minute})
		require.NoError(t, err)
	}
	_, err := cl.Watch(ctx, raftlease.WatchRequest{FromRevision: 1})
	require.ErrorIs(t, err, raftlease.ErrCompacted)

	// A consumer that reads nothing while many changes happen.
	ch, err := cl.Watch(ctx, raftlease.WatchRequest{FromRevision: s.Revision() - 1})
	require.NoError(t, err)
	for i := range 2000 {
		_, err := s.Acquire(ctx, raftlease.AcquireRequest{Name: fmt.Sprintf("d%04d", i), Holder: "h", TTL: time.Minute})
		require.NoError(t, err)
	}
	var last raftlease.Event
	count := 0
	timeout := time.After(30 * time.Second)
	for done := false; !done; {
		select {
		case ev, ok := <-ch:
			if !ok {
				done = true
				break
			}
			last = ev
			count++
		case <-timeout:
			t.Fatal("the watch neither finished nor compacted")
		}
	}
	assert.Equal(t, raftlease.EventCompacted, last.Type, "after %d events", count)
}

// TestWatchFromRevisions: FromRevision 1 on a fresh store replays
// everything; a watch starting now sees only later changes.
func TestWatchFromRevisions(t *testing.T) {
	srv, s := memServer(t, memstore.Options{}, nil)
	cl := newClient(t, client.Options{Endpoints: []string{srv.URL}})
	ctx := ctxTimeout(t, time.Minute)
	all, err := cl.Watch(ctx, raftlease.WatchRequest{FromRevision: 1})
	require.NoError(t, err)
	a, err := s.Acquire(ctx, raftlease.AcquireRequest{Name: "w", Holder: "h", TTL: time.Minute})
	require.NoError(t, err)
	assert.Equal(t, a.Revision, expectEvent(t, all, raftlease.EventAcquired, "w").Revision)
	fromNow, err := cl.Watch(ctx, raftlease.WatchRequest{Name: "w"})
	require.NoError(t, err)
	replay, err := cl.Watch(ctx, raftlease.WatchRequest{Name: "w", FromRevision: 1})
	require.NoError(t, err)
	r, err := s.Renew(ctx, raftlease.RenewRequest{Name: "w", Holder: "h", Token: a.Token})
	require.NoError(t, err)
	assert.Equal(t, r.Revision, expectEvent(t, fromNow, raftlease.EventRenewed, "w").Revision, "nothing before the watch started")
	expectEvent(t, replay, raftlease.EventAcquired, "w")
	expectEvent(t, replay, raftlease.EventRenewed, "w")
}

// TestClose: Close ends watches, later calls fail with ErrClosed, and
// Close is idempotent.
func TestClose(t *testing.T) {
	srv, _ := memServer(t, memstore.Options{}, nil)
	cl, err := client.New(client.Options{Endpoints: []string{srv.URL}})
	require.NoError(t, err)
	ctx := ctxTimeout(t, time.Minute)
	ch, err := cl.Watch(ctx, raftlease.WatchRequest{Prefix: "x"})
	require.NoError(t, err)
	require.NoError(t, cl.Close())
	select {
	case _, ok := <-ch:
		assert.False(t, ok, "no event, just the close")
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the watch")
	}
	require.NoError(t, cl.Close(), "idempotent")
	_, err = cl.Acquire(ctx, raftlease.AcquireRequest{Name: "x", Holder: "h", TTL: time.Minute})
	require.ErrorIs(t, err, raftlease.ErrClosed)
	_, err = cl.Watch(ctx, raftlease.WatchRequest{})
	require.ErrorIs(t, err, raftlease.ErrClosed)
	require.ErrorIs(t, cl.Ready(ctx), raftlease.ErrClosed)
}

func TestOptionsValidate(t *testing.T) {
	require.NoError(t, client.Options{Endpoints: []string{"127.0.0.1:7070", "https://h:1", "http://[::1]:7070"}}.Validate())
	err := client.Options{}.Validate()
	require.ErrorIs(t, err, raftlease.ErrInvalidArgument)
	assert.ErrorContains(t, err, "Endpoints")
	err = client.Options{
		Endpoints:        []string{"", "no-port", "ftp://h:1", "http://h:1/path", "h:1", "http://h:1"},
		Token:            "has space",
		RequestTimeout:   -1,
		OperationTimeout: -1,
	}.Validate()
	require.Error(t, err)
	for _, field := range []string{"Endpoints[0]", "Endpoints[1]", "Endpoints[2]", "Endpoints[3]", "Endpoints[5]", "Token", "RequestTimeout", "OperationTimeout"} {
		assert.ErrorContains(t, err, field)
	}
	assert.NotContains(t, err.Error(), "Endpoints[4]")
	_, err = client.New(client.Options{})
	assert.ErrorIs(t, err, raftlease.ErrInvalidArgument)
	_, err = client.New(client.Options{Endpoints: []string{"h:1"}, HTTPClient: http.DefaultClient, TLS: nil})
	assert.NoError(t, err)
}

// TestTLS: with Options.TLS, host:port endpoints are https; a server the
// client cannot verify is unavailable with outcome not_applied (the
// request never left).
func TestTLS(t *testing.T) {
	s, err := memstore.New(memstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	h, err := transport.NewHandler(memBackend{s}, transport.HandlerOptions{})
	require.NoError(t, err)
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	ctx := ctxTimeout(t, time.Minute)

	trusted := srv.Client().Transport.(*http.Transport).TLSClientConfig
	cl := newClient(t, client.Options{Endpoints: []string{addr}, TLS: trusted})
	assert.Equal(t, "https://"+addr, cl.Endpoints()[0])
	_, err = cl.Acquire(ctx, raftlease.AcquireRequest{Name: "tls", Holder: "h", TTL: time.Minute})
	require.NoError(t, err)

	untrusted := newClient(t, client.Options{Endpoints: []string{"https://" + addr}})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = untrusted.Get(short, "tls", raftlease.ReadOptions{})
	require.ErrorIs(t, err, raftlease.ErrUnavailable)
	assert.Equal(t, raftlease.OutcomeNotApplied, raftlease.OutcomeOf(err), "%v", err)
}
