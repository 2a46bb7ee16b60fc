package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/raftlease/raftlease/jepsen/history"
)

// node is one leasenode agent: a fixed identity (id, addresses, data dir)
// and the process currently running it.
type node struct {
	id        string
	ip        string
	raftAddr  string
	httpAddr  string
	hooksAddr string
	dataDir   string
	proc      *Proc
	// joined: the node has been started once and is (or was) a member;
	// false for a spare never started.
	joined bool
	// removed: taken out of the membership for good.
	removed bool
}

// hookStatus is GET /v1/test/status of a node's unsafe test hooks.
type hookStatus struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastIndex    uint64 `json:"last_index"`
	Serving      bool   `json:"serving"`
	Leases       int    `json:"leases"`
	LastToken    uint64 `json:"last_token"`
	StateHash    string `json:"state_hash"`
	StateIndex   uint64 `json:"state_index"`
}

// hooksClient talks to the nodes' hook endpoints.
type hooksClient struct{ http *http.Client }

func newHooksClient() *hooksClient {
	return &hooksClient{http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
}

func (c *hooksClient) status(ctx context.Context, n *node) (hookStatus, error) {
	var st hookStatus
	err := c.do(ctx, n, http.MethodGet, "/v1/test/status", nil, &st)
	return st, err
}

func (c *hooksClient) post(ctx context.Context, n *node, path string, body any) error {
	return c.do(ctx, n, http.MethodPost, path, body, nil)
}

func (c *hooksClient) do(ctx context.Context, n *node, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.hooksAddr+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", n.id, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", n.id, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", n.id, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Hook requests (the agent's agent_hooks.go).
type (
	linkJSON struct {
		From    string  `json:"from"`
		To      string  `json:"to"`
		DelayMs int64   `json:"delay_ms,omitempty"`
		Rate    float64 `json:"rate,omitempty"`
	}
	linksJSON struct {
		Peers map[string][]string `json:"peers,omitempty"`
		Cut   []linkJSON          `json:"cut,omitempty"`
		Delay []linkJSON          `json:"delay,omitempty"`
		Drop  []linkJSON          `json:"drop,omitempty"`
	}
	clockJSON struct {
		Rate         float64 `json:"rate"`
		WallOffsetMs int64   `json:"wall_offset_ms"`
	}
	crashJSON struct {
		Point string `json:"point"`
		After int    `json:"after"`
	}
	logStoreJSON struct {
		DelayMs   int64   `json:"delay_ms"`
		ErrorRate float64 `json:"error_rate"`
	}
)

// toStatus turns a hook status into a history sample.
func (st hookStatus) sample(id string, t int64) history.NodeStatus {
	return history.NodeStatus{Node: id, Time: t, State: lower(st.State), Term: st.Term, Leader: st.LeaderID,
		AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// waitFor polls cond every 50 ms until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) bool {
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}
