package testutil

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/cluster"
	"github.com/raftlease/raftlease/transport"
)

// HTTPOptions tune the HTTP side of NewHTTPClusterWith.
type HTTPOptions struct {
	// Handler is every node's handler options. Registry and Gatherer are
	// replaced by a fresh prometheus.Registry per node (and per restart);
	// a nil Logger becomes the test logger (RAFTLEASE_TEST_LOG).
	Handler transport.HandlerOptions
}

// HTTPCluster is a Cluster whose every node also serves the HTTP API
// (transport.NewHandler) on its own httptest server, as `leasenode agent`
// does. Node i's cluster.Options.APIAddr is its server's host:port, so
// status reports every member's and the leader's http_addr.
//
// Each server keeps its address for the whole test and routes through an
// atomic pointer to node i's current handler: Kill leaves the server up
// answering 503 unavailable (outcome not_applied) until Restart installs a
// handler for the restarted node. Use HTTPCluster's Kill and Restart rather
// than the Cluster's, or the server keeps serving the closed node (503
// closed). CloseServer stops a server for good, so that clients see
// connections refused.
//
// Everything is closed at test cleanup: the nodes first (which ends the
// blocking queries they serve), then the servers.
type HTTPCluster struct {
	t          testing.TB
	c          *Cluster
	opts       HTTPOptions
	servers    []*httptest.Server
	handlers   []atomic.Pointer[transport.HTTPHandler]
	registries []atomic.Pointer[prometheus.Registry]
	closed     []bool
}

// NewHTTPCluster starts an n-node Cluster (see NewCluster) with one HTTP
// API server per node, without authentication.
func NewHTTPCluster(t testing.TB, n int, co ClusterOptions) *HTTPCluster {
	t.Helper()
	return NewHTTPClusterWith(t, n, co, HTTPOptions{})
}

// NewHTTPClusterWith is NewHTTPCluster with HTTP options (auth tokens,
// limits).
func NewHTTPClusterWith(t testing.TB, n int, co ClusterOptions, ho HTTPOptions) *HTTPCluster {
	t.Helper()
	hc := &HTTPCluster{
		t:          t,
		opts:       ho,
		servers:    make([]*httptest.Server, n),
		handlers:   make([]atomic.Pointer[transport.HTTPHandler], n),
		registries: make([]atomic.Pointer[prometheus.Registry], n),
		closed:     make([]bool, n),
	}
	// Registered before NewCluster registers its own cleanup, so it runs
	// after the nodes are closed.
	t.Cleanup(hc.closeServers)
	addrs := make([]string, n)
	for i := range n {
		srv := httptest.NewUnstartedServer(hc.dispatch(i))
		srv.Start()
		hc.servers[i] = srv
		addrs[i] = srv.Listener.Addr().String()
	}
	edit := co.Edit
	co.Edit = func(i int, o *cluster.Options) {
		o.APIAddr = addrs[i]
		if edit != nil {
			edit(i, o)
		}
	}
	hc.c = NewCluster(t, n, co)
	for i := range n {
		hc.install(i)
	}
	return hc
}

// dispatch routes server i's requests to node i's current handler.
func (hc *HTTPCluster) dispatch(i int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := hc.handlers[i].Load(); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		body, _ := transport.NewErrorJSON(&raftlease.UnavailableError{
			Outcome: raftlease.OutcomeNotApplied,
			Err:     fmt.Errorf("%w: node n%d is not running", raftlease.ErrUnavailable, i),
		})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(body)
	})
}

// install builds node i's handler on a fresh registry and routes to it.
func (hc *HTTPCluster) install(i int) {
	hc.t.Helper()
	node := hc.c.Node(i)
	if node == nil {
		hc.handlers[i].Store(nil)
		return
	}
	reg := prometheus.NewRegistry()
	opts := hc.opts.Handler
	opts.Registry, opts.Gatherer = reg, reg
	if opts.Logger == nil {
		opts.Logger = testLogger(hc.t, hc.c.ID(i))
	}
	h, err := transport.NewHandler(node, opts)
	if err != nil {
		hc.t.Fatalf("http handler for n%d: %v", i, err)
	}
	hc.registries[i].Store(reg)
	hc.handlers[i].Store(h)
}

// Cluster returns the underlying cluster.
func (hc *HTTPCluster) Cluster() *Cluster { return hc.c }

// Size returns the number of nodes.
func (hc *HTTPCluster) Size() int { return len(hc.servers) }

// URL returns node i's API base URL, "http://127.0.0.1:port".
func (hc *HTTPCluster) URL(i int) string { return hc.servers[i].URL }

// Addr returns node i's API address, host:port (its APIAddr).
func (hc *HTTPCluster) Addr(i int) string { return strings.TrimPrefix(hc.servers[i].URL, "http://") }

// URLs returns every node's API base URL, in node order.
func (hc *HTTPCluster) URLs() []string {
	out := make([]string, len(hc.servers))
	for i := range hc.servers {
		out[i] = hc.URL(i)
	}
	return out
}

// Gatherer returns the metrics registry of node i's current handler.
func (hc *HTTPCluster) Gatherer(i int) prometheus.Gatherer { return hc.registries[i].Load() }

// Kill stops node i abruptly; its server answers 503 until Restart.
func (hc *HTTPCluster) Kill(i int) {
	hc.t.Helper()
	hc.handlers[i].Store(nil)
	hc.c.Kill(i)
}

// Restart starts node i again from its data dir and routes its server to
// it.
func (hc *HTTPCluster) Restart(i int) {
	hc.t.Helper()
	hc.c.Restart(i)
	hc.install(i)
}

// CloseServer closes node i's HTTP server (its open connections too); the
// node keeps running. Later connections to its address are refused.
func (hc *HTTPCluster) CloseServer(i int) {
	hc.t.Helper()
	if hc.closed[i] {
		return
	}
	hc.closed[i] = true
	hc.servers[i].CloseClientConnections()
	hc.servers[i].Close()
}

func (hc *HTTPCluster) closeServers() {
	for i := range hc.servers {
		if hc.servers[i] != nil && !hc.closed[i] {
			hc.closed[i] = true
			hc.servers[i].CloseClientConnections()
			hc.servers[i].Close()
		}
	}
}
