package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/transport"
)

var (
	_ raftlease.Store   = (*Client)(nil)
	_ transport.Backend = (*Client)(nil)
)

// Client is a raftlease.Store and a transport.Backend backed by a
// leasenode cluster's HTTP API. It is safe for concurrent use. Close it
// to end its watches and release its connections.
type Client struct {
	opts      Options
	log       hclog.Logger
	http      *http.Client
	transport *http.Transport // ours, closed by Close; nil with Options.HTTPClient
	endpoints []*url.URL

	pref atomic.Int64 // index of the endpoint to try first

	mu        sync.Mutex
	raftToAPI map[string]int // member raft address or id -> endpoint index, from Status

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup // watch goroutines
}

// New returns a client for the cluster at opts.Endpoints. It does not
// connect: the first call does.
func New(opts Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("client: options: %w", err)
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.OperationTimeout == 0 {
		opts.OperationTimeout = DefaultOperationTimeout
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	c := &Client{opts: opts, log: opts.Logger.Named("client"), raftToAPI: map[string]int{}}
	for _, ep := range opts.Endpoints {
		u, _ := parseEndpoint(ep, opts.TLS != nil) // validated
		c.endpoints = append(c.endpoints, u)
	}
	c.http = opts.HTTPClient
	if c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if opts.TLS != nil {
			t.TLSClientConfig = opts.TLS.Clone()
		}
		t.MaxIdleConnsPerHost = 64
		c.transport = t
		c.http = &http.Client{Transport: t}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close ends every watch (their channels close), waits for their
// goroutines, and releases idle connections. Calls made after Close fail
// with raftlease.ErrClosed; calls in flight are cancelled. Close is
// idempotent and always returns nil.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
		if c.transport != nil {
			c.transport.CloseIdleConnections()
		}
	})
	return nil
}

func (c *Client) closed() bool { return c.ctx.Err() != nil }

// opContext bounds ctx by OperationTimeout when it has no deadline, and
// ends it when the client closes.
func (c *Client) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); ok {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, c.opts.OperationTimeout)
	}
	stop := context.AfterFunc(c.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// --- Endpoint preference ---

func (c *Client) preferred() int { return int(c.pref.Load()) % len(c.endpoints) }

func (c *Client) prefer(i int) { c.pref.Store(int64(i)) }

// rotate moves the preference off endpoint i, unless another call already
// moved it.
func (c *Client) rotate(i int) {
	c.pref.CompareAndSwap(int64(i), int64((i+1)%len(c.endpoints)))
}

// endpointOf returns the index of the endpoint with the given API address
// (host:port or URL), or -1.
func (c *Client) endpointOf(addr string) int {
	if addr == "" {
		return -1
	}
	if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
	}
	for i, ep := range c.endpoints {
		if ep.Host == addr {
			return i
		}
	}
	return -1
}

// learn records the members' API addresses from a status answer and
// prefers the leader's endpoint when it is one of ours: any node serves
// any request, but the leader does without a forwarding hop.
func (c *Client) learn(st transport.StatusJSON) {
	c.mu.Lock()
	for _, m := range st.Members {
		if i := c.endpointOf(m.HTTPAddr); i >= 0 {
			c.raftToAPI[m.ID] = i
			c.raftToAPI[m.RaftAddr] = i
		}
	}
	c.mu.Unlock()
	if st.Leader != nil {
		if i := c.endpointOf(st.Leader.HTTPAddr); i >= 0 {
			c.prefer(i)
		}
	}
}

// followHint prefers the leader named by a not_leader answer, when a
// status answer told us its API address.
func (c *Client) followHint(err error) {
	var nl *raftlease.NotLeaderError
	if !errors.As(err, &nl) || (nl.LeaderID == "" && nl.LeaderAddr == "") {
		return
	}
	c.mu.Lock()
	i, ok := c.raftToAPI[nl.LeaderID]
	if !ok {
		i, ok = c.raftToAPI[nl.LeaderAddr]
	}
	c.mu.Unlock()
	if ok {
		c.prefer(i)
	}
}

// --- Paths ---

// leasePath is /v1/leases/{name}[/action], the name escaped as one path
// segment ('/' as %2F), so that every valid name survives the server's
// router.
func leasePath(name, action string) string {
	p := "/v1/leases/" + url.PathEscape(name)
	if action != "" {
		p += "/" + action
	}
	return p
}

func readQuery(opts raftlease.ReadOptions) url.Values {
	q := url.Values{}
	if opts.Stale {
		q.Set("stale", "true")
	}
	return q
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("client: encode %T: %v", v, err)) // our wire types always encode
	}
	return b
}

// --- raftlease.Store ---

// Acquire implements raftlease.Store. A retried acquire (after a failure
// with outcome unknown) is safe: for the same holder it is idempotent.
func (c *Client) Acquire(ctx context.Context, req raftlease.AcquireRequest) (raftlease.Lease, error) {
	if err := req.Validate(); err != nil {
		return raftlease.Lease{}, err
	}
	var out transport.LeaseJSON
	err := c.do(ctx, &request{op: "acquire", method: http.MethodPost, path: leasePath(req.Name, "acquire"),
		body: mustJSON(transport.FromAcquireRequest(req)), out: &out})
	if err != nil {
		return raftlease.Lease{}, err
	}
	return out.ToLease(), nil
}

// Renew implements raftlease.Store. Retries are safe.
func (c *Client) Renew(ctx context.Context, req raftlease.RenewRequest) (raftlease.Lease, error) {
	if err := req.Validate(); err != nil {
		return raftlease.Lease{}, err
	}
	var out transport.LeaseJSON
	err := c.do(ctx, &request{op: "renew", method: http.MethodPost, path: leasePath(req.Name, "renew"),
		body: mustJSON(transport.FromRenewRequest(req)), out: &out})
	if err != nil {
		return raftlease.Lease{}, err
	}
	return out.ToLease(), nil
}

// Release implements raftlease.Store. The client retries a release whose
// outcome is unknown; when the first attempt had in fact applied, the
// retry finds the lease free and reports raftlease.ErrNotHolder, as the
// Store contract allows.
func (c *Client) Release(ctx context.Context, req raftlease.ReleaseRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	return c.do(ctx, &request{op: "release", method: http.MethodPost, path: leasePath(req.Name, "release"),
		body: mustJSON(transport.FromReleaseRequest(req))})
}

// Get implements raftlease.Store.
func (c *Client) Get(ctx context.Context, name string, opts raftlease.ReadOptions) (raftlease.Lease, error) {
	if err := raftlease.ValidateName(name); err != nil {
		return raftlease.Lease{}, err
	}
	var out transport.LeaseJSON
	err := c.do(ctx, &request{op: "get", method: http.MethodGet, path: leasePath(name, ""), query: readQuery(opts), out: &out})
	if err != nil {
		return raftlease.Lease{}, err
	}
	return out.ToLease(), nil
}

// List implements raftlease.Store.
func (c *Client) List(ctx context.Context, prefix string, opts raftlease.ReadOptions) (raftlease.LeaseList, error) {
	if err := raftlease.ValidatePrefix(prefix); err != nil {
		return raftlease.LeaseList{}, err
	}
	q := readQuery(opts)
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	var out transport.LeaseListJSON
	if err := c.do(ctx, &request{op: "list", method: http.MethodGet, path: "/v1/leases", query: q, out: &out}); err != nil {
		return raftlease.LeaseList{}, err
	}
	return out.ToLeaseList(), nil
}

// --- transport.Backend ---

// Status implements transport.Backend: the status of whichever node
// answers (the preferred endpoint first). When it names a leader whose API
// address is one of the endpoints, the client prefers that endpoint from
// then on.
func (c *Client) Status(ctx context.Context) (transport.StatusJSON, error) {
	var out transport.StatusJSON
	if err := c.do(ctx, &request{op: "status", method: http.MethodGet, path: "/v1/status", out: &out}); err != nil {
		return transport.StatusJSON{}, err
	}
	c.learn(out)
	return out, nil
}

// Ready implements transport.Backend: nil as soon as one endpoint's
// /readyz answers 200, trying each once; otherwise the last endpoint's
// error (matching raftlease.ErrUnavailable when a node answered 503).
func (c *Client) Ready(ctx context.Context) error {
	if c.closed() {
		return raftlease.ErrClosed
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	first := c.preferred()
	var err error
	for k := range c.endpoints {
		i := (first + k) % len(c.endpoints)
		err = c.once(ctx, i, &request{op: "ready", method: http.MethodGet, path: "/readyz"})
		if err == nil {
			c.prefer(i)
			return nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return err
}

// AddMember implements transport.Backend. Adding a member already present
// with the same addresses is a no-op, so retries are safe.
func (c *Client) AddMember(ctx context.Context, m transport.MemberJSON) error {
	voter := m.Voter
	body := transport.AddMemberJSON{ID: m.ID, RaftAddr: m.RaftAddr, HTTPAddr: m.HTTPAddr, Voter: &voter}
	return c.do(ctx, &request{op: "add_member", method: http.MethodPost, path: "/v1/members", body: mustJSON(body)})
}

// RemoveMember implements transport.Backend. Like Release, a retry of a
// removal that had applied reports raftlease.ErrNotFound.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	if err := raftlease.ValidateHolder(id); err != nil {
		return &raftlease.FieldError{Field: "id", Reason: err.Error()}
	}
	return c.do(ctx, &request{op: "remove_member", method: http.MethodDelete, path: "/v1/members/" + url.PathEscape(id)})
}

// SaveSnapshot implements transport.Backend: it streams GET /v1/snapshot
// into w and checks, through the response's trailer, that the snapshot
// arrived whole. It retries only until the first byte reached w.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	rq := &request{op: "save_snapshot", method: http.MethodGet, path: "/v1/snapshot"}
	rq.decode = func(resp *http.Response) error {
		cw := &countingWriter{w: w, onFirst: func() { rq.noRetry = true }}
		_, err := io.Copy(cw, resp.Body)
		n = cw.n
		if err != nil {
			return &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: fmt.Errorf("%w: client: snapshot cut short after %d bytes: %v", raftlease.ErrUnavailable, cw.n, err)}
		}
		want, perr := strconv.ParseInt(resp.Trailer.Get(transport.SnapshotBytesTrailer), 10, 64)
		if perr != nil || want != cw.n {
			return &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: fmt.Errorf("%w: client: snapshot incomplete: got %d bytes, server sent %q", raftlease.ErrUnavailable, cw.n, resp.Trailer.Get(transport.SnapshotBytesTrailer))}
		}
		return nil
	}
	err := c.do(ctx, rq)
	return n, err
}

type countingWriter struct {
	w       io.Writer
	n       int64
	onFirst func()
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	if cw.n == 0 && len(p) > 0 && cw.onFirst != nil {
		cw.onFirst()
	}
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	return n, err
}

// RestoreSnapshot implements transport.Backend: it posts the snapshot
// read from r. It is sent once, unless r is an io.Seeker (an *os.File, a
// *bytes.Reader), which lets the client send it again after a retryable
// failure; a restore applied twice imports the same leases for the same
// holders, which is idempotent.
func (c *Client) RestoreSnapshot(ctx context.Context, r io.Reader) (transport.RestoreReportJSON, error) {
	var out transport.RestoreReportJSON
	err := c.do(ctx, &request{op: "restore_snapshot", method: http.MethodPost, path: "/v1/snapshot", stream: r, out: &out})
	return out, err
}

// Endpoints returns the endpoints' base URLs, the preferred one first.
func (c *Client) Endpoints() []string {
	first := c.preferred()
	out := make([]string, 0, len(c.endpoints))
	for k := range c.endpoints {
		out = append(out, c.endpoints[(first+k)%len(c.endpoints)].String())
	}
	return out
}

// retryPause is the pause before the next attempt after attempt k (from
// 1) failed: capped exponential.
func retryPause(k int) time.Duration {
	d := minBackoff
	for range k - 1 {
		d = min(2*d, maxBackoff)
	}
	return d
}
