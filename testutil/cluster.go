package testutil

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/cluster"
	"github.com/raftlease/raftlease/transport"
)

// ClusterOptions tune NewCluster.
type ClusterOptions struct {
	// Base is the node options every node starts from; zero means
	// cluster.LocalOptions().
	Base *cluster.Options
	// Edit, when set, adjusts node i's options after the defaults.
	Edit func(i int, o *cluster.Options)
	// Clock, when set, is every node's clock.
	Clock raftlease.Clock
}

// Cluster is an in-process raftlease cluster of real nodes: real Raft, real
// bolt log stores in temp dirs, real TCP on 127.0.0.1 through the fault
// layer. Nodes are indexed 0..n-1 with ids "n0", "n1", ….
type Cluster struct {
	t      testing.TB
	Faults *transport.Faults
	nodes  []*cluster.Node
	opts   []cluster.Options
}

// NewCluster starts n nodes, bootstraps node 0, joins the others, and waits
// for a serving leader. Everything is closed at test cleanup.
func NewCluster(t testing.TB, n int, co ClusterOptions) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Faults: transport.NewFaults(), nodes: make([]*cluster.Node, n), opts: make([]cluster.Options, n)}
	t.Cleanup(c.closeAll)
	base := cluster.LocalOptions()
	if co.Base != nil {
		base = *co.Base
	}
	for i := range n {
		o := base
		o.ID = fmt.Sprintf("n%d", i)
		o.DataDir = filepath.Join(t.TempDir(), o.ID)
		o.BindAddr = "127.0.0.1:0"
		o.Bootstrap = i == 0
		o.Faults = c.Faults
		o.Clock = co.Clock
		o.Logger = testLogger(t, o.ID)
		if co.Edit != nil {
			co.Edit(i, &o)
		}
		c.opts[i] = o
		c.start(i)
		if i == 0 {
			c.WaitForLeader()
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if err := c.nodes[0].AddMember(ctx, transport.MemberJSON{ID: o.ID, RaftAddr: c.nodes[i].Addr(), HTTPAddr: o.APIAddr, Voter: true}); err != nil {
				cancel()
				t.Fatalf("add %s: %v", o.ID, err)
			}
			cancel()
		}
	}
	c.WaitForLeader()
	return c
}

func testLogger(t testing.TB, id string) hclog.Logger {
	level := os.Getenv("RAFTLEASE_TEST_LOG")
	if level == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.LevelFromString(level), Output: os.Stderr})
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	node, err := cluster.New(c.opts[i])
	if err != nil {
		c.t.Fatalf("start n%d: %v", i, err)
	}
	c.nodes[i] = node
	// A restart must come back on the same address: it is in the Raft
	// configuration.
	c.opts[i].BindAddr = node.Addr()
}

func (c *Cluster) closeAll() {
	for i, n := range c.nodes {
		if n != nil {
			_ = n.Close()
			c.nodes[i] = nil
		}
	}
}

// Node returns node i, or nil while it is stopped.
func (c *Cluster) Node(i int) *cluster.Node { return c.nodes[i] }

// Size returns the number of nodes, running or not.
func (c *Cluster) Size() int { return len(c.nodes) }

// ID returns node i's id.
func (c *Cluster) ID(i int) string { return c.opts[i].ID }

// Running returns the running nodes.
func (c *Cluster) Running() []*cluster.Node {
	var out []*cluster.Node
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Leader returns the index of the serving leader, or -1.
func (c *Cluster) Leader() int {
	for i, n := range c.nodes {
		if n != nil && n.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitForLeader waits (up to 20 s) for exactly one serving leader among
// the running nodes and returns its index.
func (c *Cluster) WaitForLeader() int {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		leaders := 0
		idx := -1
		for i, n := range c.nodes {
			if n != nil && n.IsLeader() {
				leaders++
				idx = i
			}
		}
		if leaders == 1 {
			return idx
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no single serving leader within 20s")
	return -1
}

// WaitForNewLeader waits (up to 20 s) for a single serving leader other
// than node old and returns its index. After a leadership transfer the old
// leader may still report itself serving for a moment; this does not
// mistake it for the new one.
func (c *Cluster) WaitForNewLeader(old int) int {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		leaders, idx := 0, -1
		for i, n := range c.nodes {
			if n != nil && n.IsLeader() {
				leaders++
				idx = i
			}
		}
		if leaders == 1 && idx != old {
			return idx
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no new serving leader (other than n%d) within 20s", old)
	return -1
}

// Follower returns the index of some running node that is not the leader.
func (c *Cluster) Follower() int {
	l := c.Leader()
	for i, n := range c.nodes {
		if n != nil && i != l {
			return i
		}
	}
	return -1
}

// Kill stops node i abruptly (no leadership transfer).
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	if c.nodes[i] == nil {
		return
	}
	_ = c.nodes[i].Close()
	c.nodes[i] = nil
}

// Options returns node i's options as it was last started with (its
// bound address included).
func (c *Cluster) Options(i int) cluster.Options { return c.opts[i] }

// Restart starts node i again from its data dir.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.nodes[i] != nil {
		c.t.Fatalf("restart n%d: still running", i)
	}
	o := c.opts[i]
	o.Bootstrap = false
	c.opts[i] = o
	c.start(i)
}

// Isolate cuts node i off from every other node, both ways.
func (c *Cluster) Isolate(i int) { c.Faults.Isolate(c.opts[i].ID) }

// Heal restores every link.
func (c *Cluster) Heal() { c.Faults.Heal() }

// WaitConverged waits until every running node has applied the same index
// and holds a byte-identical state (hashicorp fuzzy's invariant), and
// returns that index.
func (c *Cluster) WaitConverged() uint64 {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var hash uint32
		var index uint64
		same := true
		for k, n := range c.Running() {
			h, idx := n.StateHash()
			if k == 0 {
				hash, index = h, idx
			} else if h != hash || idx != index {
				same = false
				last = fmt.Sprintf("%s at %d/%08x vs %d/%08x", n.ID(), idx, h, index, hash)
			}
		}
		if same {
			return index
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("replicas did not converge within 20s: %s", last)
	return 0
}
