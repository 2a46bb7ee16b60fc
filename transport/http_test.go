package transport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/memstore"
	"github.com/raftlease/raftlease/transport"
)

// fakeBackend is a transport.Backend on the in-process store, with canned
// cluster answers and injectable failures.
type fakeBackend struct {
	*memstore.Store

	mu       sync.Mutex
	fail     map[string]error // op -> error returned instead of the store's
	readyErr error
	members  map[string]transport.MemberJSON
	snapshot []byte
	restored []byte
}

func newFakeBackend(t *testing.T, opts memstore.Options) *fakeBackend {
	t.Helper()
	s, err := memstore.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return &fakeBackend{Store: s, fail: map[string]error{}, members: map[string]transport.MemberJSON{
		"n0": {ID: "n0", RaftAddr: "127.0.0.1:7000", HTTPAddr: "127.0.0.1:8000", Voter: true},
	}, snapshot: []byte("raftlease snapshot bytes")}
}

func (f *fakeBackend) setFail(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, op)
	} else {
		f.fail[op] = err
	}
}

func (f *fakeBackend) failure(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail[op]
}

func (f *fakeBackend) Acquire(ctx context.Context, req raftlease.AcquireRequest) (raftlease.Lease, error) {
	if err := f.failure("acquire"); err != nil {
		return raftlease.Lease{}, err
	}
	return f.Store.Acquire(ctx, req)
}

func (f *fakeBackend) Get(ctx context.Context, name string, opts raftlease.ReadOptions) (raftlease.Lease, error) {
	if err := f.failure("get"); err != nil {
		return raftlease.Lease{}, err
	}
	return f.Store.Get(ctx, name, opts)
}

func (f *fakeBackend) List(ctx context.Context, prefix string, opts raftlease.ReadOptions) (raftlease.LeaseList, error) {
	if err := f.failure("list"); err != nil {
		return raftlease.LeaseList{}, err
	}
	return f.Store.List(ctx, prefix, opts)
}

func (f *fakeBackend) Status(ctx context.Context) (transport.StatusJSON, error) {
	if err := f.failure("status"); err != nil {
		return transport.StatusJSON{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := transport.StatusJSON{ID: "n0", State: "Leader", Serving: true, Leader: &transport.LeaderJSON{ID: "n0", HTTPAddr: "127.0.0.1:8000"},
		Term: 3, CommitIndex: 42, AppliedIndex: 41, LastIndex: 43, Leases: 2, LastToken: 7, Epochs: 3, Expirations: 5, WorstCaseFailoverDelayMs: 650}
	for _, m := range f.members {
		st.Members = append(st.Members, m)
	}
	return st, nil
}

func (f *fakeBackend) Ready(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readyErr
}

func (f *fakeBackend) AddMember(ctx context.Context, m transport.MemberJSON) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[m.ID] = m
	return nil
}

func (f *fakeBackend) RemoveMember(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.members[id]; !ok {
		return fmt.Errorf("%w: no member %q", raftlease.ErrNotFound, id)
	}
	delete(f.members, id)
	return nil
}

func (f *fakeBackend) SaveSnapshot(ctx context.Context, w io.Writer) (int64, error) {
	if err := f.failure("save_snapshot"); err != nil {
		return 0, err
	}
	f.mu.Lock()
	data := f.snapshot
	f.mu.Unlock()
	n, err := w.Write(data)
	if err := f.failure("save_snapshot_late"); err != nil {
		return int64(n), err
	}
	return int64(n), err
}

func (f *fakeBackend) RestoreSnapshot(ctx context.Context, r io.Reader) (transport.RestoreReportJSON, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return transport.RestoreReportJSON{}, fmt.Errorf("%w: snapshot: %v", raftlease.ErrInvalidArgument, err)
	}
	f.mu.Lock()
	f.restored = data
	f.mu.Unlock()
	return transport.RestoreReportJSON{Imported: 1, TokenFloor: 9, Skipped: []transport.SkippedJSON{{Name: "x", Reason: "held"}}}, nil
}

var _ transport.Backend = (*fakeBackend)(nil)

// --- HTTP helpers ---

type api struct {
	t      *testing.T
	base   string
	token  string
	client *http.Client
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// serve starts an httptest server for b with opts.
func serve(t *testing.T, b transport.Backend, opts transport.HandlerOptions) *api {
	t.Helper()
	h, err := transport.NewHandler(b, opts)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return &api{t: t, base: srv.URL, client: srv.Client()}
}

// do sends a request; body is a string (sent as is), []byte, or a value
// encoded as JSON.
func (a *api) do(method, path string, body any) response {
	a.t.Helper()
	return a.doCtx(context.Background(), method, path, body)
}

func (a *api) doCtx(ctx context.Context, method, path string, body any) response {
	a.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(a.t, err)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	require.NoError(a.t, err)
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.client.Do(req)
	require.NoError(a.t, err, "%s %s", method, path)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	for k, v := range resp.Trailer {
		resp.Header[k] = v
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body %s", r.body)
}

func (r response) lease(t *testing.T) transport.LeaseJSON {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var l transport.LeaseJSON
	r.decode(t, &l)
	return l
}

func (r response) errorBody(t *testing.T, status int, code string) transport.ErrorBody {
	t.Helper()
	require.Equal(t, status, r.status, "body %s", r.body)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	var e transport.ErrorJSON
	r.decode(t, &e)
	require.Equal(t, code, e.Error.Code, "body %s", r.body)
	require.NotEmpty(t, e.Error.Message)
	return e.Error
}

func (r response) index(t *testing.T) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(r.header.Get(transport.IndexHeader), 10, 64)
	require.NoError(t, err, "%s header %q", transport.IndexHeader, r.header.Get(transport.IndexHeader))
	return v
}

func acquireBody(holder, ttl string) map[string]any {
	return map[string]any{"holder": holder, "ttl": ttl}
}

func leaseURL(name, action string) string {
	p := "/v1/leases/" + url.PathEscape(name)
	if action != "" {
		p += "/" + action
	}
	return p
}

// --- Tests ---

func TestHTTPLeaseLifecycle(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{})
	a := serve(t, b, transport.HandlerOptions{})

	r := a.do("POST", leaseURL("jobs/leader", "acquire"), map[string]any{"holder": "worker-1", "ttl": "7.5s", "metadata": map[string]string{"addr": "10.0.0.1:80"}})
	l := r.lease(t)
	assert.Equal(t, "jobs/leader", l.Name)
	assert.Equal(t, "worker-1", l.Holder)
	assert.GreaterOrEqual(t, l.Token, uint64(1))
	assert.Equal(t, int64(7500), l.TTLMs)
	assert.Equal(t, (7500 * time.Millisecond).Nanoseconds(), l.TTLNs)
	assert.Positive(t, l.RemainingMs)
	assert.False(t, l.AcquiredAt.IsZero())
	assert.Equal(t, map[string]string{"addr": "10.0.0.1:80"}, l.Metadata)
	assert.Equal(t, l.Revision, r.index(t))
	// The raw fields exist with their documented names.
	var raw map[string]any
	r.decode(t, &raw)
	for _, k := range []string{"name", "holder", "token", "ttl_ms", "remaining_ms", "acquired_at", "revision", "metadata", "ttl_ns", "remaining_ns", "deadline_ns"} {
		assert.Contains(t, raw, k)
	}

	// Unescaped slashes in the name reach the same lease.
	got := a.do("GET", "/v1/leases/jobs/leader", nil).lease(t)
	assert.Equal(t, l.Token, got.Token)
	assert.Equal(t, l.Revision, got.Revision)
	got = a.do("GET", leaseURL("jobs/leader", "")+"?stale=true", nil).lease(t)
	assert.Equal(t, l.Token, got.Token)

	// Re-acquire by the holder is idempotent: same token.
	again := a.do("POST", "/v1/leases/jobs/leader/acquire", acquireBody("worker-1", "7.5s")).lease(t)
	assert.Equal(t, l.Token, again.Token)
	assert.Greater(t, again.Revision, l.Revision)

	renewed := a.do("POST", leaseURL("jobs/leader", "renew"), map[string]any{"holder": "worker-1", "token": l.Token, "ttl": "20s", "metadata": map[string]string{"v": "2"}}).lease(t)
	assert.Equal(t, l.Token, renewed.Token)
	assert.Equal(t, int64(20000), renewed.TTLMs)
	assert.Equal(t, map[string]string{"v": "2"}, renewed.Metadata)
	// No ttl and no metadata keep both.
	kept := a.do("POST", leaseURL("jobs/leader", "renew"), map[string]any{"holder": "worker-1", "token": l.Token}).lease(t)
	assert.Equal(t, int64(20000), kept.TTLMs)
	assert.Equal(t, map[string]string{"v": "2"}, kept.Metadata)

	a.do("POST", leaseURL("jobs/other", "acquire"), acquireBody("worker-2", "5s")).lease(t)
	a.do("POST", leaseURL("zzz", "acquire"), acquireBody("worker-2", "5s")).lease(t)
	r = a.do("GET", "/v1/leases?prefix=jobs/", nil)
	require.Equal(t, http.StatusOK, r.status)
	var list transport.LeaseListJSON
	r.decode(t, &list)
	require.Len(t, list.Leases, 2)
	assert.Equal(t, "jobs/leader", list.Leases[0].Name)
	assert.Equal(t, "jobs/other", list.Leases[1].Name)
	assert.Equal(t, list.Revision, r.index(t))
	assert.GreaterOrEqual(t, list.Revision, list.Leases[1].Revision)
	r = a.do("GET", "/v1/leases", nil)
	r.decode(t, &list)
	assert.Len(t, list.Leases, 3)
	r = a.do("GET", "/v1/leases?prefix=nothing-here", nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), `"leases":[]`)

	r = a.do("POST", leaseURL("jobs/leader", "release"), map[string]any{"holder": "worker-1", "token": l.Token})
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.JSONEq(t, `{"released":true}`, string(r.body))
	r = a.do("GET", leaseURL("jobs/leader", ""), nil)
	r.errorBody(t, http.StatusNotFound, "not_found")
	assert.GreaterOrEqual(t, r.index(t), kept.Revision, "a 404 carries the store revision it reflects")

	// The next holder gets a larger token.
	next := a.do("POST", leaseURL("jobs/leader", "acquire"), acquireBody("worker-3", "5s")).lease(t)
	assert.Greater(t, next.Token, l.Token)
}

func TestHTTPConflicts(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{})
	a := serve(t, b, transport.HandlerOptions{})
	l := a.do("POST", leaseURL("db", "acquire"), map[string]any{"holder": "a", "ttl": "30s", "metadata": map[string]string{"addr": "one"}}).lease(t)

	r := a.do("POST", leaseURL("db", "acquire"), acquireBody("b", "30s"))
	e := r.errorBody(t, http.StatusConflict, "lease_held")
	require.NotNil(t, e.Lease, "lease_held carries the current lease")
	assert.Equal(t, "a", e.Lease.Holder)
	assert.Equal(t, l.Token, e.Lease.Token)
	assert.Equal(t, l.Revision, e.Lease.Revision)
	assert.Equal(t, map[string]string{"addr": "one"}, e.Lease.Metadata)
	var ej transport.ErrorJSON
	r.decode(t, &ej)
	var held *raftlease.HeldError
	require.ErrorAs(t, ej.Err(), &held)
	assert.Equal(t, l.Token, held.Current.Token)

	for _, body := range []map[string]any{
		{"holder": "a", "token": l.Token + 1},
		{"holder": "b", "token": l.Token},
	} {
		r = a.do("POST", leaseURL("db", "renew"), body)
		r.errorBody(t, http.StatusConflict, "not_holder")
		r = a.do("POST", leaseURL("db", "release"), body)
		r.errorBody(t, http.StatusConflict, "not_holder")
	}
	r = a.do("POST", leaseURL("free", "renew"), map[string]any{"holder": "a", "token": 1})
	r.errorBody(t, http.StatusConflict, "not_holder")
	r = a.do("POST", leaseURL("free", "release"), map[string]any{"holder": "a", "token": 1})
	r.errorBody(t, http.StatusConflict, "not_holder")

	// The lease is untouched.
	got := a.do("GET", leaseURL("db", ""), nil).lease(t)
	assert.Equal(t, l.Token, got.Token)
	assert.Equal(t, l.Revision, got.Revision)
}

func TestHTTPUnavailableCarriesOutcome(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{})
	a := serve(t, b, transport.HandlerOptions{})
	cases := []struct {
		err     error
		code    string
		outcome string
	}{
		{&raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: fmt.Errorf("%w: no leader known", raftlease.ErrNoQuorum)}, "no_quorum", "not_applied"},
		{&raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: errors.New("apply timed out")}, "unavailable", "unknown"},
		{raftlease.ErrNoQuorum, "no_quorum", "unknown"},
		{&raftlease.NotLeaderError{LeaderID: "n1", LeaderAddr: "127.0.0.1:7001"}, "not_leader", "unknown"},
		{raftlease.ErrClosed, "closed", "unknown"},
		{fmt.Errorf("cluster: %w", context.DeadlineExceeded), "unavailable", "unknown"},
	}
	for _, c := range cases {
		t.Run(c.code+"_"+c.outcome, func(t *testing.T) {
			b.setFail("acquire", c.err)
			defer b.setFail("acquire", nil)
			r := a.do("POST", leaseURL("x", "acquire"), acquireBody("h", "5s"))
			e := r.errorBody(t, http.StatusServiceUnavailable, c.code)
			assert.Equal(t, c.outcome, e.Outcome)
			var ej transport.ErrorJSON
			r.decode(t, &ej)
			err := ej.Err()
			assert.True(t, raftlease.IsRetryable(err))
			assert.Equal(t, c.outcome, raftlease.OutcomeOf(err).String())
		})
	}
	b.setFail("get", errors.New("disk on fire"))
	r := a.do("GET", leaseURL("x", ""), nil)
	r.errorBody(t, http.StatusInternalServerError, "internal")
}

func TestHTTPBadInput(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{})
	a := serve(t, b, transport.HandlerOptions{MaxBodyBytes: 8 << 10})
	held := a.do("POST", leaseURL("held", "acquire"), map[string]any{"holder": "h", "ttl": "30s", "metadata": map[string]string{"k": "v"}}).lease(t)
	before := a.do("GET", "/v1/leases", nil)
	var listBefore transport.LeaseListJSON
	before.decode(t, &listBefore)

	bigMeta := map[string]string{}
	for i := range raftlease.MaxMetadataKeys + 1 {
		bigMeta[fmt.Sprintf("k%d", i)] = "v"
	}
	hugeValue := map[string]string{"k": strings.Repeat("x", raftlease.MaxMetadataValueLen+1)}
	longName := strings.Repeat("n", raftlease.MaxNameLen+1)
	renew := func(extra string) string {
		return fmt.Sprintf(`{"holder":"h","token":%d%s}`, held.Token, extra)
	}
	cases := []struct {
		name, method, path string
		body               any
		field              string // the field the detail names, when one
	}{
		{"malformed json", "POST", leaseURL("new", "acquire"), `{"holder":"h","ttl":`, "body"},
		{"not json", "POST", leaseURL("new", "acquire"), `holder=h`, "body"},
		{"empty body", "POST", leaseURL("new", "acquire"), ``, "body"},
		{"unknown field", "POST", leaseURL("new", "acquire"), `{"holder":"h","ttl":"5s","owner":"x"}`, "body"},
		{"wrong type", "POST", leaseURL("new", "acquire"), `{"holder":"h","ttl":5}`, "body"},
		{"trailing data", "POST", leaseURL("new", "acquire"), `{"holder":"h","ttl":"5s"} {}`, "body"},
		{"array", "POST", leaseURL("new", "acquire"), `[{"holder":"h","ttl":"5s"}]`, "body"},
		{"oversized body", "POST", leaseURL("new", "acquire"), `{"holder":"h","ttl":"5s","metadata":{"k":"` + strings.Repeat("x", 9<<10) + `"}}`, "body"},
		{"bad name", "POST", leaseURL("bad name", "acquire"), acquireBody("h", "5s"), "name"},
		{"name too long", "POST", leaseURL(longName, "acquire"), acquireBody("h", "5s"), "name"},
		{"empty holder", "POST", leaseURL("new", "acquire"), acquireBody("", "5s"), "holder"},
		{"holder with space", "POST", leaseURL("new", "acquire"), acquireBody("a b", "5s"), "holder"},
		{"no ttl", "POST", leaseURL("new", "acquire"), `{"holder":"h"}`, "ttl"},
		{"ttl not a duration", "POST", leaseURL("new", "acquire"), acquireBody("h", "five"), "ttl"},
		{"ttl too short", "POST", leaseURL("new", "acquire"), acquireBody("h", "99ms"), "ttl"},
		{"ttl too long", "POST", leaseURL("new", "acquire"), acquireBody("h", "24h0m1s"), "ttl"},
		{"negative ttl", "POST", leaseURL("new", "acquire"), acquireBody("h", "-5s"), "ttl"},
		{"too many metadata keys", "POST", leaseURL("new", "acquire"), map[string]any{"holder": "h", "ttl": "5s", "metadata": bigMeta}, "metadata"},
		{"metadata value too long", "POST", leaseURL("new", "acquire"), map[string]any{"holder": "h", "ttl": "5s", "metadata": hugeValue}, "metadata[k]"},
		{"acquire held with bad ttl", "POST", leaseURL("held", "acquire"), acquireBody("h", "1ms"), "ttl"},
		{"renew token zero", "POST", leaseURL("held", "renew"), `{"holder":"h","token":0}`, "token"},
		{"renew negative token", "POST", leaseURL("held", "renew"), `{"holder":"h","token":-1}`, "body"},
		{"renew bad ttl", "POST", leaseURL("held", "renew"), renew(`,"ttl":"50ms"`), "ttl"},
		{"renew negative ttl", "POST", leaseURL("held", "renew"), renew(`,"ttl":"-1s"`), "ttl"},
		{"renew huge metadata", "POST", leaseURL("held", "renew"), map[string]any{"holder": "h", "token": held.Token, "metadata": bigMeta}, "metadata"},
		{"renew unknown field", "POST", leaseURL("held", "renew"), renew(`,"extra":1`), "body"},
		{"release no token", "POST", leaseURL("held", "release"), `{"holder":"h"}`, "token"},
		{"release wrong type", "POST", leaseURL("held", "release"), `{"holder":"h","token":"1"}`, "body"},
		{"get bad name", "GET", "/v1/leases/bad%20name", nil, "name"},
		{"get bad index", "GET", leaseURL("held", "") + "?index=x", nil, "index"},
		{"get negative index", "GET", leaseURL("held", "") + "?index=-1", nil, "index"},
		{"get bad wait", "GET", leaseURL("held", "") + "?index=1&wait=soon", nil, "wait"},
		{"get negative wait", "GET", leaseURL("held", "") + "?index=1&wait=-1s", nil, "wait"},
		{"get bad stale", "GET", leaseURL("held", "") + "?stale=maybe", nil, "stale"},
		{"get bad timeout", "GET", leaseURL("held", "") + "?timeout=x", nil, "timeout"},
		{"list bad prefix", "GET", "/v1/leases?prefix=a%20b", nil, "prefix"},
		{"events name and prefix", "GET", "/v1/events?name=a&prefix=b&wait=0s", nil, "watch"},
		{"events bad name", "GET", "/v1/events?name=a%20b&wait=0s", nil, "name"},
		{"events bad index", "GET", "/v1/events?index=1.5", nil, "index"},
		{"events bad wait", "GET", "/v1/events?index=1&wait=-2s", nil, "wait"},
		{"events index and from", "GET", "/v1/events?index=1&from=2&wait=0s", nil, "from"},
		{"events from zero", "GET", "/v1/events?from=0&wait=0s", nil, "from"},
		{"member bad json", "POST", "/v1/members", `{"id":"n9",`, "body"},
		{"member unknown field", "POST", "/v1/members", `{"id":"n9","raft_addr":"127.0.0.1:1","admin":true}`, "body"},
		{"member no raft_addr", "POST", "/v1/members", `{"id":"n9"}`, "raft_addr"},
		{"member bad id", "POST", "/v1/members", `{"id":"","raft_addr":"127.0.0.1:1"}`, "id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := a.do(c.method, c.path, c.body)
			e := r.errorBody(t, http.StatusBadRequest, "invalid_argument")
			assert.Equal(t, c.field, e.Field, "message %s", e.Message)
			var ej transport.ErrorJSON
			r.decode(t, &ej)
			assert.ErrorIs(t, ej.Err(), raftlease.ErrInvalidArgument)
		})
	}
	// Nothing changed: the same leases at the same revision.
	after := a.do("GET", "/v1/leases", nil)
	var listAfter transport.LeaseListJSON
	after.decode(t, &listAfter)
	assert.Equal(t, listBefore.Revision, listAfter.Revision, "bad input used no revision")
	require.Len(t, listAfter.Leases, 1)
	assert.Equal(t, held.Token, listAfter.Leases[0].Token)
	assert.Equal(t, held.Revision, listAfter.Leases[0].Revision)
	b.mu.Lock()
	assert.Len(t, b.members, 1, "no member was added")
	b.mu.Unlock()
}

func TestHTTPAuth(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{})
	reg := prometheus.NewRegistry()
	a := serve(t, b, transport.HandlerOptions{AuthTokens: []string{"s3cret", "other-token"}, Registry: reg})

	paths := []struct{ method, path string }{
		{"POST", leaseURL("x", "acquire")}, {"POST", leaseURL("x", "renew")}, {"POST", leaseURL("x", "release")},
		{"GET", leaseURL("x", "")}, {"GET", "/v1/leases"}, {"GET", "/v1/events?wait=0s"}, {"GET", "/v1/status"},
		{"POST", "/v1/members"}, {"DELETE", "/v1/members/n0"}, {"GET", "/v1/snapshot"}, {"POST", "/v1/snapshot"},
	}
	for _, tok := range []string{"", "wrong", "s3cret2", "s3cre"} {
		a.token = tok
		for _, p := range paths {
			r := a.do(p.method, p.path, acquireBody("h", "5s"))
			r.errorBody(t, http.StatusUnauthorized, "unauthorized")
			assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
		}
	}
	// Other schemes are refused too.
	req, _ := http.NewRequest("GET", a.base+"/v1/status", nil)
	req.SetBasicAuth("s3cret", "s3cret")
	resp, err := a.client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	b.mu.Lock()
	assert.Len(t, b.members, 1, "no refused request reached the backend")
	b.mu.Unlock()
	a.token = ""
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		assert.Equal(t, http.StatusOK, a.do("GET", p, nil).status, p)
	}

	for _, tok := range []string{"s3cret", "other-token"} {
		a.token = tok
		a.do("POST", leaseURL("x", "acquire"), acquireBody("h-"+tok, "5s"))
		assert.Equal(t, http.StatusOK, a.do("GET", "/v1/status", nil).status)
	}
	a.token = ""
	metrics := string(a.do("GET", "/metrics", nil).body)
	assert.Contains(t, metrics, `raftlease_http_requests_total{code="unauthorized",op="status"}`)

	// Auth off: no header needed.
	open := serve(t, b, transport.HandlerOptions{})
	assert.Equal(t, http.StatusOK, open.do("GET", "/v1/status", nil).status)
}

func TestHTTPBlockingGet(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{})
	a := serve(t, b, transport.HandlerOptions{})
	l := a.do("POST", leaseURL("job", "acquire"), acquireBody("h1", "30s")).lease(t)

	// The wait ends without a change: the same lease, same index.
	start := time.Now()
	r := a.do("GET", leaseURL("job", "")+fmt.Sprintf("?index=%d&wait=150ms", l.Revision), nil)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "it waited")
	got := r.lease(t)
	assert.Equal(t, l.Revision, got.Revision)
	assert.Equal(t, l.Revision, r.index(t))

	// A change unblocks it. The change may land before the query starts
	// waiting: the watch from index+1 replays it.
	done := make(chan response, 1)
	go func() { done <- a.do("GET", leaseURL("job", "")+fmt.Sprintf("?index=%d&wait=30s", l.Revision), nil) }()
	renewed := a.do("POST", leaseURL("job", "renew"), map[string]any{"holder": "h1", "token": l.Token}).lease(t)
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the blocking query did not return on a change")
	}
	got = r.lease(t)
	assert.Equal(t, renewed.Revision, got.Revision)
	assert.Equal(t, renewed.Revision, r.index(t))

	// An index below the lease's revision answers at once.
	start = time.Now()
	a.do("GET", leaseURL("job", "")+fmt.Sprintf("?index=%d&wait=30s", l.Revision), nil).lease(t)
	assert.Less(t, time.Since(start), 10*time.Second)

	// Release unblocks with 404, whose index then waits for the next grant.
	go func() {
		done <- a.do("GET", leaseURL("job", "")+fmt.Sprintf("?index=%d&wait=30s", renewed.Revision), nil)
	}()
	require.Equal(t, http.StatusOK, a.do("POST", leaseURL("job", "release"), map[string]any{"holder": "h1", "token": l.Token}).status)
	r = <-done
	r.errorBody(t, http.StatusNotFound, "not_found")
	freeAt := r.index(t)
	assert.Greater(t, freeAt, renewed.Revision)
	go func() { done <- a.do("GET", leaseURL("job", "")+fmt.Sprintf("?index=%d&wait=30s", freeAt), nil) }()
	next := a.do("POST", leaseURL("job", "acquire"), acquireBody("h2", "30s")).lease(t)
	r = <-done
	assert.Equal(t, next.Token, r.lease(t).Token)

	// The wait is capped by MaxWait.
	capped := serve(t, b, transport.HandlerOptions{MaxWait: 100 * time.Millisecond})
	start = time.Now()
	capped.do("GET", leaseURL("job", "")+fmt.Sprintf("?index=%d&wait=1h", next.Revision), nil).lease(t)
	assert.Less(t, time.Since(start), 10*time.Second)
}

// events fetches one answer of the events endpoint.
func (a *api) events(query string) (transport.EventsJSON, response) {
	a.t.Helper()
	r := a.do("GET", "/v1/events?"+query, nil)
	require.Equal(a.t, http.StatusOK, r.status, "body %s", r.body)
	var ev transport.EventsJSON
	r.decode(a.t, &ev)
	require.NotNil(a.t, ev.Events, "events is [] rather than null")
	require.Equal(a.t, ev.Index, r.index(a.t))
	return ev, r
}

// collectEvents loops the blocking query from index until it has n
// events.
func (a *api) collectEvents(sel string, index uint64, n int) ([]transport.EventJSON, uint64) {
	a.t.Helper()
	var out []transport.EventJSON
	deadline := time.Now().Add(30 * time.Second)
	for len(out) < n {
		require.True(a.t, time.Now().Before(deadline), "only %d of %d events within 30s", len(out), n)
		ans, _ := a.events(fmt.Sprintf("%s&index=%d&wait=5s", sel, index))
		for _, e := range ans.Events {
			require.Greater(a.t, e.Revision, index, "an event at or below the index asked")
		}
		out = append(out, ans.Events...)
		require.GreaterOrEqual(a.t, ans.Index, index)
		index = ans.Index
	}
	return out, index
}

func TestHTTPEvents(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{})
	a := serve(t, b, transport.HandlerOptions{})
	a.do("POST", leaseURL("other", "acquire"), acquireBody("h", "30s")).lease(t)

	// index=0: from now, at the current revision.
	now, _ := a.events("prefix=jobs/&index=0&wait=0s")
	assert.Empty(t, now.Events)
	assert.Equal(t, b.Revision(), now.Index)

	l := a.do("POST", leaseURL("jobs/a", "acquire"), acquireBody("h1", "30s")).lease(t)
	a.do("POST", leaseURL("elsewhere", "acquire"), acquireBody("h1", "30s")).lease(t)
	rn := a.do("POST", leaseURL("jobs/a", "renew"), map[string]any{"holder": "h1", "token": l.Token}).lease(t)
	require.Equal(t, http.StatusOK, a.do("POST", leaseURL("jobs/a", "release"), map[string]any{"holder": "h1", "token": l.Token}).status)
	b2 := a.do("POST", leaseURL("jobs/b", "acquire"), acquireBody("h2", "30s")).lease(t)

	got, last := a.collectEvents("prefix=jobs/", now.Index, 4)
	require.Len(t, got, 4)
	types := []string{got[0].Type, got[1].Type, got[2].Type, got[3].Type}
	assert.Equal(t, []string{"acquired", "renewed", "released", "acquired"}, types)
	assert.Equal(t, l.Revision, got[0].Revision)
	assert.Equal(t, rn.Revision, got[1].Revision)
	assert.Equal(t, b2.Revision, got[3].Revision)
	assert.Equal(t, "jobs/b", got[3].Lease.Name)
	assert.Equal(t, b2.Revision, last)

	byName, _ := a.collectEvents("name=jobs/a", now.Index, 3)
	assert.Len(t, byName, 3)
	// from=F includes revision F.
	from, _ := a.events(fmt.Sprintf("name=jobs/a&from=%d&wait=0s", rn.Revision))
	require.NotEmpty(t, from.Events)
	assert.Equal(t, rn.Revision, from.Events[0].Revision)

	// Nothing new: the wait ends with no events, at the index reached.
	start := time.Now()
	empty, _ := a.events(fmt.Sprintf("prefix=jobs/&index=%d&wait=100ms", last))
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	assert.Empty(t, empty.Events)
	assert.Equal(t, last, empty.Index)
	// Changes the selection does not match still move the index on.
	other := a.do("POST", leaseURL("unrelated", "acquire"), acquireBody("h", "30s")).lease(t)
	moved, _ := a.events(fmt.Sprintf("prefix=jobs/&index=%d&wait=100ms", last))
	assert.Empty(t, moved.Events)
	assert.Equal(t, other.Revision, moved.Index)

	// A blocked query returns on the next change.
	done := make(chan transport.EventsJSON, 1)
	go func() { ans, _ := a.events(fmt.Sprintf("name=jobs/b&index=%d&wait=30s", moved.Index)); done <- ans }()
	rb := a.do("POST", leaseURL("jobs/b", "renew"), map[string]any{"holder": "h2", "token": b2.Token}).lease(t)
	select {
	case ans := <-done:
		require.Len(t, ans.Events, 1)
		assert.Equal(t, "renewed", ans.Events[0].Type)
		assert.Equal(t, rb.Revision, ans.Index)
	case <-time.After(20 * time.Second):
		t.Fatal("the events query did not return on a change")
	}
}

func TestHTTPEventsCompacted(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{WatchRetain: 4})
	a := serve(t, b, transport.HandlerOptions{})
	for i := range 10 {
		a.do("POST", leaseURL(fmt.Sprintf("k%d", i), "acquire"), acquireBody("h", "30s")).lease(t)
	}
	r := a.do("GET", "/v1/events?index=1&wait=0s", nil)
	e := r.errorBody(t, http.StatusGone, "compacted")
	var ej transport.ErrorJSON
	r.decode(t, &ej)
	assert.ErrorIs(t, ej.Err(), raftlease.ErrCompacted)
	r = a.do("GET", "/v1/events?from=1&wait=0s", nil)
	r.errorBody(t, http.StatusGone, "compacted")
	_ = e
	// A retained index still works.
	ans, _ := a.events(fmt.Sprintf("index=%d&wait=0s", b.Revision()-2))
	assert.Len(t, ans.Events, 2)
	// A blocking GET of a lease with a compacted index answers at once.
	a.do("GET", leaseURL("k0", "")+"?index=1&wait=30s", nil).lease(t)
}

// TestHTTPEventsWithoutGaps: a reader looping the blocking query sees
// every write, in order, exactly once, while writers run concurrently.
func TestHTTPEventsWithoutGaps(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{})
	a := serve(t, b, transport.HandlerOptions{})
	checkEventsWithoutGaps(t, a, 4, 40)
}

// checkEventsWithoutGaps runs writers goroutines, each acquiring, renewing
// and releasing its own lease rounds times, while the test reads the
// events of the whole prefix; every acknowledged write must appear once,
// in revision order.
func checkEventsWithoutGaps(t *testing.T, a *api, writers, rounds int) {
	t.Helper()
	start, _ := a.events("prefix=gap/&index=0&wait=0s")
	var mu sync.Mutex
	want := map[string]int{} // "type@revision name" -> count
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("gap/w%d", w)
			for range rounds {
				acq, err := postLease(a, leaseURL(name, "acquire"), acquireBody("h", "30s"))
				if err != nil {
					errs <- err
					return
				}
				ren, err := postLease(a, leaseURL(name, "renew"), map[string]any{"holder": "h", "token": acq.Token})
				if err != nil {
					errs <- err
					return
				}
				if _, err := post(a, leaseURL(name, "release"), map[string]any{"holder": "h", "token": acq.Token}); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want[fmt.Sprintf("acquired@%d %s", acq.Revision, name)]++
				want[fmt.Sprintf("renewed@%d %s", ren.Revision, name)]++
				mu.Unlock()
			}
		}()
	}
	total := writers * rounds * 3
	got, _ := a.collectEvents("prefix=gap/", start.Index, total)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, got, total, "exactly one event per write")
	var prev uint64
	seen := map[string]int{}
	released := map[string]int{}
	for _, e := range got {
		require.GreaterOrEqual(t, e.Revision, prev, "revisions in order")
		prev = e.Revision
		if e.Type == "released" {
			released[e.Lease.Name]++
			continue
		}
		seen[fmt.Sprintf("%s@%d %s", e.Type, e.Revision, e.Lease.Name)]++
	}
	assert.Equal(t, want, seen, "every acquire and renew, once")
	for w := range writers {
		assert.Equal(t, rounds, released[fmt.Sprintf("gap/w%d", w)], "every release")
	}
}

func post(a *api, path string, body any) ([]byte, error) {
	data, _ := json.Marshal(body)
	resp, err := a.client.Post(a.base+path, "application/json", bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, out)
	}
	return out, err
}

func postLease(a *api, path string, body any) (transport.LeaseJSON, error) {
	data, err := post(a, path, body)
	var l transport.LeaseJSON
	if err == nil {
		err = json.Unmarshal(data, &l)
	}
	return l, err
}

func TestHTTPStatusMembersSnapshot(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{})
	a := serve(t, b, transport.HandlerOptions{MaxSnapshotBytes: 1 << 10})

	r := a.do("GET", "/v1/status", nil)
	require.Equal(t, http.StatusOK, r.status)
	var st transport.StatusJSON
	r.decode(t, &st)
	assert.Equal(t, "n0", st.ID)
	assert.Equal(t, "127.0.0.1:8000", st.Leader.HTTPAddr)

	r = a.do("POST", "/v1/members", `{"id":"n1","raft_addr":"127.0.0.1:7001","http_addr":"127.0.0.1:8001"}`)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var m transport.MemberJSON
	r.decode(t, &m)
	assert.True(t, m.Voter, "voter defaults to true")
	r = a.do("POST", "/v1/members", `{"id":"n2","raft_addr":"127.0.0.1:7002","voter":false}`)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	b.mu.Lock()
	assert.True(t, b.members["n1"].Voter)
	assert.False(t, b.members["n2"].Voter)
	b.mu.Unlock()

	r = a.do("DELETE", "/v1/members/n2", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"removed":true}`, string(r.body))
	a.do("DELETE", "/v1/members/n2", nil).errorBody(t, http.StatusNotFound, "not_found")

	r = a.do("GET", "/v1/snapshot", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
	assert.Equal(t, "raftlease snapshot bytes", string(r.body))
	assert.Equal(t, strconv.Itoa(len(r.body)), r.header.Get(transport.SnapshotBytesTrailer))

	// A failure before the first byte is a JSON error; after it, the
	// response is cut short.
	b.setFail("save_snapshot", &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: raftlease.ErrNoQuorum})
	a.do("GET", "/v1/snapshot", nil).errorBody(t, http.StatusServiceUnavailable, "no_quorum")
	b.setFail("save_snapshot", nil)
	b.setFail("save_snapshot_late", errors.New("disk gone"))
	resp, err := a.client.Get(a.base + "/v1/snapshot")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			assert.Empty(t, resp.Trailer.Get(transport.SnapshotBytesTrailer), "a cut snapshot has no byte count")
		}
	}
	b.setFail("save_snapshot_late", nil)

	r = a.do("POST", "/v1/snapshot", []byte("snapshot to restore"))
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var rep transport.RestoreReportJSON
	r.decode(t, &rep)
	assert.Equal(t, transport.RestoreReportJSON{Imported: 1, TokenFloor: 9, Skipped: []transport.SkippedJSON{{Name: "x", Reason: "held"}}}, rep)
	b.mu.Lock()
	assert.Equal(t, "snapshot to restore", string(b.restored))
	b.mu.Unlock()
	a.do("POST", "/v1/snapshot", bytes.Repeat([]byte("x"), 2<<10)).errorBody(t, http.StatusBadRequest, "invalid_argument")
}

func TestHTTPHealth(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{})
	a := serve(t, b, transport.HandlerOptions{})
	r := a.do("GET", "/healthz", nil)
	assert.Equal(t, http.StatusOK, r.status)
	r = a.do("GET", "/readyz", nil)
	assert.Equal(t, http.StatusOK, r.status)

	b.mu.Lock()
	b.readyErr = &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: fmt.Errorf("%w: no leader known", raftlease.ErrNoQuorum)}
	b.mu.Unlock()
	e := a.do("GET", "/readyz", nil).errorBody(t, http.StatusServiceUnavailable, "no_quorum")
	assert.Equal(t, "not_applied", e.Outcome)
	assert.Contains(t, e.Message, "no leader known")
	b.mu.Lock()
	b.readyErr = errors.New("replica halted")
	b.mu.Unlock()
	e = a.do("GET", "/readyz", nil).errorBody(t, http.StatusServiceUnavailable, "internal")
	assert.Equal(t, "unknown", e.Outcome)
	assert.Equal(t, http.StatusOK, a.do("GET", "/healthz", nil).status, "alive while not ready")
}

func TestHTTPMetrics(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{})
	reg := prometheus.NewRegistry()
	a := serve(t, b, transport.HandlerOptions{Registry: reg})
	a.do("POST", leaseURL("m", "acquire"), acquireBody("h", "5s")).lease(t)
	a.do("POST", leaseURL("m", "acquire"), acquireBody("other", "5s"))
	a.do("GET", leaseURL("nope", ""), nil)

	r := a.do("GET", "/metrics", nil)
	require.Equal(t, http.StatusOK, r.status)
	text := string(r.body)
	for _, want := range []string{
		`raftlease_http_requests_total{code="ok",op="acquire"} 1`,
		`raftlease_http_requests_total{code="lease_held",op="acquire"} 1`,
		`raftlease_http_requests_total{code="not_found",op="get"} 1`,
		`raftlease_http_request_duration_seconds_bucket{op="acquire",le=`,
		`raftlease_raft_state{state="Leader"} 1`,
		`raftlease_raft_state{state="Follower"} 0`,
		`raftlease_raft_is_leader 1`,
		`raftlease_raft_term 3`,
		`raftlease_raft_commit_index 42`,
		`raftlease_raft_applied_index 41`,
		`raftlease_raft_last_index 43`,
		`raftlease_store_leases_held 2`,
		`raftlease_store_last_token 7`,
		`raftlease_store_epochs_total 3`,
		`raftlease_store_expirations_total 5`,
		`raftlease_store_worst_case_failover_delay_seconds 0.65`,
	} {
		assert.Contains(t, text, want)
	}
	// A failing Status drops its gauges, not the scrape.
	b.setFail("status", raftlease.ErrClosed)
	r = a.do("GET", "/metrics", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.NotContains(t, string(r.body), "raftlease_raft_term")
	assert.Contains(t, string(r.body), "raftlease_http_requests_total")

	// A second handler on the same registry is refused.
	_, err := transport.NewHandler(b, transport.HandlerOptions{Registry: reg})
	assert.Error(t, err)
	// Without a registry or gatherer there is no /metrics.
	none := serve(t, b, transport.HandlerOptions{})
	assert.Equal(t, http.StatusNotFound, none.do("GET", "/metrics", nil).status)
	// A separate gatherer is served as is.
	g := prometheus.NewRegistry()
	only := serve(t, b, transport.HandlerOptions{Gatherer: g})
	assert.Equal(t, http.StatusOK, only.do("GET", "/metrics", nil).status)
}

func TestHandlerOptionsValidate(t *testing.T) {
	require.NoError(t, transport.HandlerOptions{}.Validate())
	err := transport.HandlerOptions{AuthTokens: []string{"ok", "", "has space"}, MaxBodyBytes: -1, MaxSnapshotBytes: -1, MaxWait: -time.Second}.Validate()
	require.Error(t, err)
	assert.ErrorIs(t, err, raftlease.ErrInvalidArgument)
	for _, field := range []string{"AuthTokens[1]", "AuthTokens[2]", "MaxBodyBytes", "MaxSnapshotBytes", "MaxWait"} {
		assert.Contains(t, err.Error(), field)
	}
	assert.NotContains(t, err.Error(), "AuthTokens[0]")
	_, err = transport.NewHandler(nil, transport.HandlerOptions{})
	assert.ErrorContains(t, err, "Backend")
	_, err = transport.NewHandler(newFakeBackend(t, memstore.Options{}), transport.HandlerOptions{MaxWait: -1})
	assert.ErrorContains(t, err, "MaxWait")
}

func TestHTTPRequestTimeoutParam(t *testing.T) {
	b := newFakeBackend(t, memstore.Options{})
	a := serve(t, b, transport.HandlerOptions{})
	// A backend call that honours its ctx answers 503 with the cause when
	// ?timeout= passes.
	block := &blockingBackend{fakeBackend: b}
	slow := serve(t, block, transport.HandlerOptions{})
	r := slow.do("GET", leaseURL("x", "")+"?timeout=50ms", nil)
	e := r.errorBody(t, http.StatusServiceUnavailable, "unavailable")
	assert.Equal(t, "deadline_exceeded", e.Cause)
	assert.Equal(t, "unknown", e.Outcome)
	_ = a
}

// blockingBackend's Get waits for its ctx.
type blockingBackend struct{ *fakeBackend }

func (b *blockingBackend) Get(ctx context.Context, name string, opts raftlease.ReadOptions) (raftlease.Lease, error) {
	<-ctx.Done()
	return raftlease.Lease{}, ctx.Err()
}
