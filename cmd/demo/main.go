// Command demo runs raftlease's embedded default end to end, in one
// process: three service instances, each embedding a Raft node (real Raft,
// bolt log on disk in a temp dir, TCP on loopback) and an elector. It shows
// an election, the leader being cut off by a network partition, the leader
// fencing itself before anyone else is elected, a takeover with a larger
// fencing token, and the old leader's late write being refused downstream.
//
//	make demo    (or: go run ./cmd/demo)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/cluster"
	"github.com/raftlease/raftlease/elector"
	"github.com/raftlease/raftlease/transport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

var start = time.Now()

func say(format string, args ...any) {
	fmt.Printf("[%6.3fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

// instance is one service instance: a Raft node and an elector on it.
type instance struct {
	name     string
	node     *cluster.Node
	elector  *elector.Elector
	lastWork chan uint64 // tokens this instance used for downstream writes
}

func run() error {
	dir, err := os.MkdirTemp("", "raftlease-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	faults := transport.NewFaults()
	say("starting 3 service instances, each embedding a raftlease node (data in %s)", dir)
	var instances []*instance
	for i := range 3 {
		o := cluster.LocalOptions()
		o.ID = fmt.Sprintf("svc-%d", i)
		o.DataDir = fmt.Sprintf("%s/%s", dir, o.ID)
		o.Bootstrap = i == 0
		o.Faults = faults
		node, err := cluster.New(o)
		if err != nil {
			return err
		}
		defer node.Close()
		if i > 0 {
			if err := node.Join(ctx, instances[0].node.Addr(), false); err != nil {
				return fmt.Errorf("join %s: %w", o.ID, err)
			}
		}
		instances = append(instances, &instance{name: o.ID, node: node, lastWork: make(chan uint64, 1)})
	}
	say("raft group formed: %d voters; worst-case failover pause %v", 3, cluster.LocalOptions().WorstCaseFailoverDelay())

	// The downstream system: a row guarded by a fencing token.
	var fence elector.Fence
	var mu sync.Mutex
	rowValue := ""
	write := func(who string, token uint64, value string) error {
		mu.Lock()
		defer mu.Unlock()
		if err := fence.Check("config-row", token); err != nil {
			return err
		}
		rowValue = value
		return nil
	}

	leaders := make(chan string, 16)
	for _, in := range instances {
		opts := elector.FastFailover()
		opts.Name = "demo/scheduler"
		opts.Holder = in.name
		opts.ReleaseOnStop = true
		opts.Metadata = map[string]string{"addr": in.node.Addr()}
		opts.OnElected = func(ctx context.Context) {
			token, _ := elector.TokenFromContext(ctx)
			say("%s is leader with fencing token %d", in.name, token)
			leaders <- in.name
			select {
			case in.lastWork <- token:
			default:
			}
			if err := write(in.name, token, "written by "+in.name); err != nil {
				say("%s: downstream write refused: %v", in.name, err)
			}
			<-ctx.Done()
			say("%s stops acting as leader (its context ended)", in.name)
		}
		e, err := elector.New(in.node, opts)
		if err != nil {
			return err
		}
		in.elector = e
		if err := e.Start(); err != nil {
			return err
		}
		defer e.Stop(context.Background())
	}

	first := <-leaders
	var old *instance
	for _, in := range instances {
		if in.name == first {
			old = in
		}
	}
	oldToken, _ := old.elector.Token()
	say("downstream row now holds %q", rowValue)

	say("partition: %s is cut off from the other two instances", old.name)
	cutAt := time.Now()
	faults.Isolate(old.name)

	next := <-leaders
	say("%s took over %.2fs after the partition", next, time.Since(cutAt).Seconds())
	if old.elector.IsLeader() {
		return errors.New("old leader still believes it leads after the takeover")
	}

	say("%s wakes up and tries a late write with its old token %d", old.name, oldToken)
	if err := write(old.name, oldToken, "late write from "+old.name); errors.Is(err, raftlease.ErrStaleToken) {
		say("refused by the fence: %v", err)
	} else {
		return fmt.Errorf("stale write was not refused: %v", err)
	}
	say("downstream row still holds %q", rowValue)

	faults.Heal()
	say("partition healed; %s rejoins as a follower", old.name)
	lease, err := instances[0].node.Get(ctx, "demo/scheduler", raftlease.ReadOptions{})
	if err != nil {
		return err
	}
	say("lease demo/scheduler: holder %s, token %d, %v left, revision %d", lease.Holder, lease.Token, lease.Remaining.Round(time.Millisecond), lease.Revision)
	say("done")
	return nil
}
