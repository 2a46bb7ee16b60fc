package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease/cluster"
)

// This file wires the UNSAFE test hooks of the jepsen harness into the
// agent. They are off unless --unsafe-test-hooks ADDR is given; then the
// agent serves a control endpoint on ADDR (its own listener, never the
// client API) through which the harness skews the leader clock, cuts this
// node's side of links, arms crash points and fails log writes. Nothing here
// runs, and no port is opened, without the flag.

// hooksBodyLimit bounds a control request.
const hooksBodyLimit = 1 << 20

// unsafeHooks is the agent's side of the hooks: the cluster hooks and the
// control endpoint serving them. A nil *unsafeHooks is off.
type unsafeHooks struct {
	hooks  *cluster.TestHooks
	logger hclog.Logger
	ln     net.Listener

	mu   sync.Mutex
	node *cluster.Node
	srv  *http.Server
	done chan struct{}
}

// newUnsafeHooks builds the hooks when cfg asks for them, plugs them into
// opts (test hooks, clock, link faults) and binds the control address. It
// returns nil, changing nothing, without --unsafe-test-hooks.
func newUnsafeHooks(cfg agentConfig, opts *cluster.Options, logger hclog.Logger) (*unsafeHooks, error) {
	if cfg.UnsafeTestHooks == "" {
		return nil, nil
	}
	h := cluster.NewTestHooks()
	h.SetStaleReads(cfg.UnsafeStaleReads)
	opts.TestHooks, opts.Clock, opts.Faults = h, h.Clock(), h.Faults()
	ln, err := net.Listen("tcp", cfg.UnsafeTestHooks)
	if err != nil {
		return nil, fmt.Errorf("--unsafe-test-hooks: %w", err)
	}
	logger = logger.Named("unsafe-test-hooks")
	logger.Warn("UNSAFE TEST HOOKS ENABLED: this node can be made to break its guarantees on request; never run it in production",
		"control_addr", ln.Addr().String(), "unsafe_stale_reads", cfg.UnsafeStaleReads)
	return &unsafeHooks{hooks: h, logger: logger, ln: ln}, nil
}

// serve starts the control endpoint for node.
func (u *unsafeHooks) serve(node *cluster.Node) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.node = node
	u.srv = &http.Server{Handler: u.handler(), ReadHeaderTimeout: 5 * time.Second}
	u.done = make(chan struct{})
	srv, ln, done := u.srv, u.ln, u.done
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
}

// close stops the control endpoint (or only its listener, before serve).
func (u *unsafeHooks) close() {
	if u == nil {
		return
	}
	u.mu.Lock()
	srv, done := u.srv, u.done
	u.mu.Unlock()
	if srv == nil {
		u.ln.Close()
		return
	}
	_ = srv.Close()
	<-done
}

// Control requests and answers (JSON).
type (
	hooksStatusJSON struct {
		cluster.LocalStatus
		StateHash  string            `json:"state_hash"`
		StateIndex uint64            `json:"state_index"`
		Hooks      cluster.HookState `json:"hooks"`
	}
	hooksClockJSON struct {
		Rate         float64 `json:"rate"`
		WallOffsetMs int64   `json:"wall_offset_ms"`
	}
	hooksLinkJSON struct {
		From    string  `json:"from"`
		To      string  `json:"to"`
		DelayMs int64   `json:"delay_ms,omitempty"`
		Rate    float64 `json:"rate,omitempty"`
	}
	// hooksLinksJSON replaces every link fault of this node: the links
	// listed are cut, delayed or dropping; all others are healed. Peers
	// maps node ids to their Raft addresses, so that dials can be matched
	// to links.
	hooksLinksJSON struct {
		Peers map[string][]string `json:"peers,omitempty"`
		Cut   []hooksLinkJSON     `json:"cut,omitempty"`
		Delay []hooksLinkJSON     `json:"delay,omitempty"`
		Drop  []hooksLinkJSON     `json:"drop,omitempty"`
	}
	hooksCrashJSON struct {
		Point string `json:"point"`
		After int    `json:"after"`
	}
	hooksLogStoreJSON struct {
		DelayMs   int64   `json:"delay_ms"`
		ErrorRate float64 `json:"error_rate"`
	}
	hooksStaleJSON struct {
		Enabled bool `json:"enabled"`
	}
)

func (u *unsafeHooks) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/test/status", func(w http.ResponseWriter, r *http.Request) {
		st := hooksStatusJSON{LocalStatus: u.node.LocalStatus(), Hooks: u.hooks.State()}
		hash, index := u.node.StateHash()
		st.StateHash, st.StateIndex = fmt.Sprintf("%08x", hash), index
		writeHooksJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /v1/test/clock", hooksPost(u, func(req hooksClockJSON) error {
		u.hooks.SetClockRate(req.Rate)
		u.hooks.SetWallOffset(time.Duration(req.WallOffsetMs) * time.Millisecond)
		return nil
	}))
	mux.HandleFunc("POST /v1/test/links", hooksPost(u, func(req hooksLinksJSON) error {
		f := u.hooks.Faults()
		for id, addrs := range req.Peers {
			f.RegisterNode(id, addrs...)
		}
		f.Heal()
		for _, l := range req.Cut {
			f.Cut(l.From, l.To)
		}
		for _, l := range req.Delay {
			f.SetDelay(l.From, l.To, time.Duration(l.DelayMs)*time.Millisecond)
		}
		for _, l := range req.Drop {
			f.SetDropRate(l.From, l.To, l.Rate)
		}
		return nil
	}))
	mux.HandleFunc("POST /v1/test/crash", hooksPost(u, func(req hooksCrashJSON) error {
		return u.hooks.ArmCrash(cluster.CrashPoint(req.Point), req.After)
	}))
	mux.HandleFunc("POST /v1/test/logstore", hooksPost(u, func(req hooksLogStoreJSON) error {
		if req.ErrorRate < 0 || req.ErrorRate > 1 || req.DelayMs < 0 {
			return errors.New("delay_ms must be ≥ 0 and error_rate in [0, 1]")
		}
		u.hooks.SetLogStoreFaults(time.Duration(req.DelayMs)*time.Millisecond, req.ErrorRate)
		return nil
	}))
	mux.HandleFunc("POST /v1/test/stale-reads", hooksPost(u, func(req hooksStaleJSON) error {
		u.hooks.SetStaleReads(req.Enabled)
		return nil
	}))
	mux.HandleFunc("POST /v1/test/snapshot", func(w http.ResponseWriter, r *http.Request) {
		if err := u.node.Snapshot(); err != nil {
			writeHooksJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeHooksJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	return mux
}

// hooksPost decodes a control request into T, applies it, logs it and
// answers with the hooks' state.
func hooksPost[T any](u *unsafeHooks, apply func(T) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req T
		body, err := io.ReadAll(io.LimitReader(r.Body, hooksBodyLimit))
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err == nil {
			err = apply(req)
		}
		if err != nil {
			writeHooksJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		u.logger.Info("fault injected", "path", r.URL.Path, "request", string(body))
		writeHooksJSON(w, http.StatusOK, u.hooks.State())
	}
}

func writeHooksJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
