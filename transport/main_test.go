package transport_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/raftlease/raftlease/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The HTTP API tests run real clusters (http_cluster_test.go):
		// hashicorp/raft's NetworkTransport does not close the connections
		// it accepted when it shuts down (see cluster/cluster_test.go).
		goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*NetworkTransport).handleConn"),
	)
}

// listen starts a Mux on a free loopback port, closed at cleanup.
func listen(t *testing.T, cfg transport.Config) *transport.Mux {
	t.Helper()
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1:0"
	}
	if level := os.Getenv("TRANSPORT_TEST_LOG"); level != "" && cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: cfg.NodeID, Level: hclog.LevelFromString(level), Output: os.Stderr})
	}
	m, err := transport.Listen(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// node is a Mux with a forwarding Server and Client, as cluster builds one.
type node struct {
	id    string
	mux   *transport.Mux
	srv   *transport.Server
	cli   *transport.Client
	calls atomic.Int64 // handler invocations
}

// newNode starts a node whose handler counts calls and then runs h (echo
// when nil).
func newNode(t *testing.T, id string, faults *transport.Faults, tlsCfg *tls.Config, h transport.Handler) *node {
	t.Helper()
	n := &node{id: id}
	n.mux = listen(t, transport.Config{NodeID: id, Faults: faults, TLS: tlsCfg})
	if h == nil {
		h = echo
	}
	n.srv = transport.Serve(n.mux.Layer(transport.KindForward), func(ctx context.Context, method string, body []byte) ([]byte, error) {
		n.calls.Add(1)
		return h(ctx, method, body)
	}, nil)
	t.Cleanup(func() { n.srv.Close() })
	n.cli = transport.NewClient(n.mux.Layer(transport.KindForward), transport.ClientOptions{DialTimeout: 2 * time.Second})
	t.Cleanup(func() { n.cli.Close() })
	return n
}

func echo(_ context.Context, method string, body []byte) ([]byte, error) {
	return append([]byte(method+":"), body...), nil
}

// call calls to's echo from `from`, bounded by d.
func call(from, to *node, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	resp, err := from.cli.Call(ctx, to.mux.Addr(), "echo", []byte(from.id))
	if err == nil && string(resp) != "echo:"+from.id {
		return errors.New("wrong answer " + string(resp))
	}
	return err
}

// readClosed reports whether reading c ends with an error (EOF, reset,
// TLS alert) rather than data; it fails the test if nothing happens within
// safety, a bound far beyond any expected wait.
func readClosed(t *testing.T, c net.Conn, safety time.Duration) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(safety))
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection neither closed nor answered within %v", safety)
	}
	return n == 0 && err != nil
}
