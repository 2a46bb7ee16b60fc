package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
	"github.com/raftlease/raftlease/internal/watch"
	"github.com/raftlease/raftlease/transport"
)

// Node is one member of a raftlease Raft group. It implements
// raftlease.Store: any node accepts any operation and forwards what only the
// leader may do.
type Node struct {
	opts   Options
	logger hclog.Logger
	clock  raftlease.Clock
	origin time.Time // zero of this process's leader clock readings

	mux       *transport.Mux
	raftTrans *raft.NetworkTransport
	logStore  *raftboltdb.BoltStore
	raft      *raft.Raft
	sm        *stateMachine
	hub       *watch.Hub
	rpcServer *transport.Server
	rpcClient *transport.Client
	verifier  *verifier

	notifyCh chan bool

	apiMu    sync.Mutex
	apiAddrs map[string]string // member id -> client API address, learned

	mu      sync.Mutex
	leading *leaderState // non-nil while this node leads and its epoch is applied

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

var _ raftlease.Store = (*Node)(nil)

// New opens (or creates) the node's data directory, starts Raft and the
// node's goroutines, and bootstraps a new cluster when opts.Bootstrap is set
// and there is no existing state. Close or Shutdown it to stop.
func New(opts Options) (*Node, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("cluster: invalid options: %w", err)
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: data dir: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named("cluster").With("node", opts.ID)
	clock := raftlease.OrSystem(opts.Clock)
	n := &Node{
		opts:     opts,
		logger:   logger,
		clock:    clock,
		origin:   clock.Now(),
		hub:      watch.NewHub(watch.Options{Retain: opts.WatchRetain, Buffer: opts.WatchBuffer}),
		notifyCh: make(chan bool, 16),
		apiAddrs: map[string]string{},
		done:     make(chan struct{}),
	}
	n.sm = newStateMachine(n.hub, clock.Now, n.halt)
	n.sm.hooks = opts.TestHooks
	if err := n.start(); err != nil {
		n.release()
		return nil, err
	}
	n.logger.Info("node started", "raft_addr", n.mux.Addr(), "worst_case_failover_delay", opts.WorstCaseFailoverDelay())
	return n, nil
}

func (n *Node) start() error {
	var err error
	n.mux, err = transport.Listen(transport.Config{
		BindAddr: n.opts.BindAddr, AdvertiseAddr: n.opts.AdvertiseAddr, NodeID: n.opts.ID,
		TLS: n.opts.TLS, Faults: n.opts.Faults, Logger: n.logger,
	})
	if err != nil {
		return fmt.Errorf("cluster: listen: %w", err)
	}
	n.raftTrans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  streamLayer{n.mux.Layer(transport.KindRaft)},
		MaxPool: 4,
		Timeout: 5 * time.Second,
		Logger:  n.logger.Named("raft-net"),
	})
	n.logStore, err = raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(n.opts.DataDir, logStoreFile),
		NoSync:      n.opts.NoSync,
		BoltOptions: boltOptions(),
	})
	if err != nil {
		return logStoreOpenError(filepath.Join(n.opts.DataDir, logStoreFile), err)
	}
	if _, err := checkStoredState(n.opts.DataDir, n.logStore); err != nil {
		return err
	}
	logs, err := raft.NewLogCache(1024, n.opts.TestHooks.wrapLogStore(n.logStore))
	if err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.opts.DataDir, n.opts.SnapshotRetain, n.logger.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("cluster: open snapshot store: %w", err)
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(n.opts.ID)
	cfg.HeartbeatTimeout = n.opts.HeartbeatTimeout
	cfg.ElectionTimeout = n.opts.ElectionTimeout
	cfg.LeaderLeaseTimeout = n.opts.LeaderLeaseTimeout
	cfg.CommitTimeout = n.opts.CommitTimeout
	cfg.SnapshotThreshold = n.opts.SnapshotThreshold
	cfg.SnapshotInterval = n.opts.SnapshotInterval
	cfg.TrailingLogs = n.opts.TrailingLogs
	cfg.MaxAppendEntries = 256
	cfg.BatchApplyCh = true
	cfg.NotifyCh = n.notifyCh
	cfg.NoLegacyTelemetry = true
	cfg.Logger = n.logger.Named("raft")
	if err := raft.ValidateConfig(cfg); err != nil {
		return fmt.Errorf("cluster: raft config: %w", err)
	}
	existing, err := raft.HasExistingState(logs, n.logStore, snaps)
	if err != nil {
		return fmt.Errorf("cluster: read state: %w", err)
	}
	n.raft, err = raft.NewRaft(cfg, n.sm, logs, n.logStore, snaps, n.raftTrans)
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	if n.opts.Bootstrap && !existing {
		f := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: raft.ServerID(n.opts.ID), Address: raft.ServerAddress(n.mux.Addr()),
		}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("cluster: bootstrap: %w", err)
		}
	}
	n.verifier = newVerifier(n.raft)
	n.rpcClient = transport.NewClient(n.mux.Layer(transport.KindForward), transport.ClientOptions{DialTimeout: time.Second})
	n.rpcServer = transport.Serve(n.mux.Layer(transport.KindForward), n.handleRPC, n.logger.Named("rpc"))
	n.wg.Add(1)
	go n.monitorLeadership()
	return nil
}

// boltOptions tunes the bolt log store for a write-ahead log. The
// freelist is not written on every commit (it is rebuilt from the pages
// when the file is opened), so a commit writes only the new log pages and
// the meta page; the hashmap freelist keeps allocation cheap as the file
// grows. Durability is unchanged: every commit is still fsynced.
func boltOptions() *bbolt.Options {
	return &bbolt.Options{
		Timeout:        time.Second,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	}
}

// ID returns the node's id.
func (n *Node) ID() string { return n.opts.ID }

// Addr returns the address other nodes reach this node at (Raft and
// forwarding share it).
func (n *Node) Addr() string { return n.mux.Addr() }

// Options returns the options the node runs with.
func (n *Node) Options() Options { return n.opts }

// halt stops a replica whose state machine met an entry it cannot apply.
func (n *Node) halt(err error) {
	n.logger.Error("halting replica", "error", err)
	_ = n.raft.Shutdown().Error()
}

// Shutdown leaves gracefully: a leader first hands leadership to another
// voter (bounded by ctx), then the node stops as Close does.
func (n *Node) Shutdown(ctx context.Context) error {
	if n.leader() != nil && len(n.voters()) > 1 {
		if err := n.TransferLeadership(ctx); err != nil {
			n.logger.Warn("leadership transfer before shutdown failed", "error", err)
		}
	}
	return n.Close()
}

// Close stops the node at once (no leadership transfer), waits for every
// goroutine and closes the data files. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.done)
		n.closeErr = n.raft.Shutdown().Error()
		n.wg.Wait()
		n.release()
	})
	return n.closeErr
}

// release closes what start opened, in reverse order.
func (n *Node) release() {
	if n.rpcServer != nil {
		n.rpcServer.Close()
	}
	if n.rpcClient != nil {
		n.rpcClient.Close()
	}
	if n.raftTrans != nil {
		n.raftTrans.Close()
	}
	if n.mux != nil {
		n.mux.Close()
	}
	if n.logStore != nil {
		n.logStore.Close()
	}
	n.hub.Close()
}

func (n *Node) closed() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

func (n *Node) voters() []raft.Server {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []raft.Server
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, s)
		}
	}
	return out
}

// streamLayer adapts the transport's layer to raft.StreamLayer.
type streamLayer struct{ l *transport.Layer }

func (s streamLayer) Accept() (net.Conn, error) { return s.l.Accept() }
func (s streamLayer) Close() error              { return s.l.Close() }
func (s streamLayer) Addr() net.Addr            { return s.l.Addr() }
func (s streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.l.Dial(string(addr), timeout)
}

// waitFuture waits for a raft future, giving up when ctx ends.
func waitFuture(ctx context.Context, f raft.Future) error {
	errCh := make(chan error, 1)
	go func() { errCh <- f.Error() }()
	select {
	case err := <-errCh:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TransferLeadership hands leadership to another voter. The leader first
// commits a tick, so consensus time is recorded up to the hand-over and the
// consensus clock pauses only for the election itself. It returns
// ErrNotLeader on a node that does not lead.
func (n *Node) TransferLeadership(ctx context.Context) error {
	ls := n.leader()
	if ls == nil {
		return notApplied(raftlease.ErrNotLeader)
	}
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	if _, err := n.submit(ctx, ls, fsm.Tick(fsm.Stamp{})); err != nil {
		return err
	}
	if err := waitFuture(ctx, n.raft.LeadershipTransfer()); err != nil {
		return applyError(err)
	}
	return nil
}
