package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The etcd side of `leasenode bench`: etcd's v3 JSON gateway (grpc-gateway,
// served on the client port) over plain net/http, so that the module needs
// no etcd client. The workloads mean what they mean on raftlease:
//
//   - each caller first grants itself an etcd lease (as an etcd session
//     does) and revokes it at the end;
//   - acquire = txn "create_revision(key) == 0" then put key=holder with
//     that lease; release = txn "value(key) == holder" then delete: two
//     Raft writes, like ours;
//   - renew = POST /v3/lease/keepalive of the caller's lease, which the
//     etcd leader answers from memory: not a Raft write, not fsynced.
//
// Requests go to the etcd leader (found with /v3/maintenance/status), as
// the raftlease client sends them to the Raft leader.

// etcdKeyPrefix starts every key the benchmark writes.
const etcdKeyPrefix = "/raftlease-bench/"

type etcdBench struct {
	http *http.Client
	base string // the leader's gateway, http://host:port
}

func newEtcdBench(ctx context.Context, endpoints []string, callers int, timeout time.Duration) (*etcdBench, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = callers + 8
	t.MaxIdleConns = 0
	b := &etcdBench{http: &http.Client{Transport: t, Timeout: timeout}, base: endpoints[0]}
	var errs []error
	type status struct {
		Header struct {
			MemberID etcdID `json:"member_id"`
		} `json:"header"`
		Leader etcdID `json:"leader"`
	}
	for _, ep := range endpoints {
		var st status
		if err := b.call(ctx, ep, "/v3/maintenance/status", struct{}{}, &st); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ep, err))
			continue
		}
		if st.Leader != 0 && st.Leader == st.Header.MemberID {
			b.base = ep
			return b, nil
		}
	}
	if len(errs) == len(endpoints) {
		t.CloseIdleConnections()
		return nil, errors.Join(errs...)
	}
	return b, nil // the leader is not among the endpoints: followers forward
}

func (b *etcdBench) Close() error {
	b.http.CloseIdleConnections()
	return nil
}

func (b *etcdBench) about(workload string) (int, bool, string) {
	if workload == workloadRenew {
		return 1, false, "etcd lease keepalive: answered by the leader from memory, not replicated through Raft, not fsynced"
	}
	return 2, true, "two etcd txns (put if absent with a lease, delete if holder), each committed by Raft, fsynced"
}

// etcdInt is an int64 as grpc-gateway writes it: a JSON string (or a
// number).
type etcdInt int64

func (v *etcdInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*v = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("etcd: %s is not an integer", b)
	}
	*v = etcdInt(n)
	return nil
}

// etcdID is a member or lease id: a uint64 (member ids use all 64 bits),
// written as a JSON string.
type etcdID uint64

func (v *etcdID) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*v = 0
		return nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("etcd: %s is not an id", b)
	}
	*v = etcdID(n)
	return nil
}

func (v etcdID) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatUint(uint64(v), 10) + `"`), nil
}

// etcdError is the gateway's error body.
type etcdError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Code    int    `json:"code"`
}

// call POSTs req as JSON to base+path and decodes the first JSON value of
// the answer into resp (a streaming answer, such as keepalive's, wraps it
// in {"result": …} or {"error": …}).
func (b *etcdBench) call(ctx context.Context, base, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := b.http.Do(hreq)
	if err != nil {
		return err
	}
	defer hresp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	if err != nil {
		return err
	}
	if hresp.StatusCode != http.StatusOK {
		var e etcdError
		if json.Unmarshal(raw, &e) == nil && (e.Message != "" || e.Error != "") {
			return fmt.Errorf("etcd %s: %d %s", path, hresp.StatusCode, firstNonEmpty(e.Message, e.Error))
		}
		return fmt.Errorf("etcd %s: %d %s", path, hresp.StatusCode, bytes.TrimSpace(raw))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(resp); err != nil {
		return fmt.Errorf("etcd %s: decode %q: %w", path, raw, err)
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func (b *etcdBench) grant(ctx context.Context, ttl time.Duration) (etcdID, error) {
	var resp struct {
		ID    etcdID  `json:"ID"`
		TTL   etcdInt `json:"TTL"`
		Error string  `json:"error"`
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	if err := b.call(ctx, b.base, "/v3/lease/grant", map[string]any{"TTL": strconv.FormatInt(secs, 10)}, &resp); err != nil {
		return 0, err
	}
	if resp.Error != "" || resp.ID == 0 {
		return 0, fmt.Errorf("etcd lease grant: %s", firstNonEmpty(resp.Error, "no lease id"))
	}
	return resp.ID, nil
}

func (b *etcdBench) revoke(ctx context.Context, id etcdID) error {
	var resp json.RawMessage
	return b.call(ctx, b.base, "/v3/lease/revoke", map[string]any{"ID": id}, &resp)
}

func (b *etcdBench) keepalive(ctx context.Context, id etcdID) error {
	var resp struct {
		Result *struct {
			ID  etcdID  `json:"ID"`
			TTL etcdInt `json:"TTL"`
		} `json:"result"`
		Error *etcdError `json:"error"`
	}
	if err := b.call(ctx, b.base, "/v3/lease/keepalive", map[string]any{"ID": id}, &resp); err != nil {
		return err
	}
	switch {
	case resp.Error != nil:
		return fmt.Errorf("etcd lease keepalive: %s", firstNonEmpty(resp.Error.Message, resp.Error.Error))
	case resp.Result == nil:
		return errors.New("etcd lease keepalive: empty answer")
	case resp.Result.TTL <= 0:
		return errors.New("etcd lease keepalive: lease not found (expired)")
	}
	return nil
}

// txn runs one compare-and-write transaction and reports whether the
// compare held.
func (b *etcdBench) txn(ctx context.Context, compare, success map[string]any) (bool, error) {
	var resp struct {
		Succeeded bool `json:"succeeded"`
	}
	req := map[string]any{"compare": []any{compare}, "success": []any{success}}
	if err := b.call(ctx, b.base, "/v3/kv/txn", req, &resp); err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

func (b *etcdBench) newCaller(ctx context.Context, name, holder, workload string, ttl time.Duration) (benchCaller, error) {
	id, err := b.grant(ctx, ttl)
	if err != nil {
		return nil, err
	}
	c := &etcdCaller{b: b, key: b64(etcdKeyPrefix + name), holder: b64(holder), lease: id, renew: workload == workloadRenew}
	if c.renew {
		if err := c.acquire(ctx); err != nil {
			_ = b.revoke(ctx, id)
			return nil, err
		}
	}
	return c, nil
}

type etcdCaller struct {
	b      *etcdBench
	key    string // base64
	holder string // base64
	lease  etcdID
	renew  bool
}

func (c *etcdCaller) acquire(ctx context.Context) error {
	ok, err := c.b.txn(ctx,
		map[string]any{"key": c.key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"},
		map[string]any{"request_put": map[string]any{"key": c.key, "value": c.holder, "lease": c.lease}})
	if err == nil && !ok {
		err = errEtcdHeld
	}
	return err
}

// errEtcdHeld: the caller's key exists (a release of ours failed).
var errEtcdHeld = errors.New("etcd: the key is held")

func (c *etcdCaller) release(ctx context.Context) error {
	ok, err := c.b.txn(ctx,
		map[string]any{"key": c.key, "target": "VALUE", "result": "EQUAL", "value": c.holder},
		map[string]any{"request_delete_range": map[string]any{"key": c.key}})
	if err == nil && !ok {
		err = errors.New("etcd: not the holder")
	}
	return err
}

func (c *etcdCaller) op(ctx context.Context) error {
	if c.renew {
		return c.b.keepalive(ctx, c.lease)
	}
	if err := c.acquire(ctx); err != nil {
		if errors.Is(err, errEtcdHeld) {
			_ = c.release(ctx) // the key is ours: clear it for the next op
		}
		return err
	}
	return c.release(ctx)
}

// close revokes the caller's lease, which deletes its key too.
func (c *etcdCaller) close(ctx context.Context) error { return c.b.revoke(ctx, c.lease) }
