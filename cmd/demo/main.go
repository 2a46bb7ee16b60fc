// Command demo runs raftlease as a dedicated cluster, end to end, with real
// processes: it builds leasenode, starts a 3-node cluster of `leasenode
// agent` processes on free local ports (data in a temp dir), and runs three
// `leasenode campaign` participants, each talking to a different node. It
// shows an election with its fencing token, then kills -9 the node the
// leader's participant talks to: that participant cannot renew, fences
// itself before its lease can expire, and another participant takes over
// with a larger token. Every process it started is stopped on the way out,
// also on error or Ctrl-C.
//
//	make demo    (or: go run ./cmd/demo)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const leaseName = "demo/scheduler"

func main() {
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(sigCtx)
	stop()
	switch {
	case err != nil && sigCtx.Err() != nil:
		say("interrupted; every process the demo started has been stopped")
		os.Exit(130)
	case err != nil:
		say("demo failed: %v", err)
		os.Exit(1)
	}
}

var start = time.Now()

func say(format string, args ...any) {
	fmt.Printf("[%6.2fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

// procs are the processes the demo started; stopAll ends them.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// start starts bin with args, its stderr (and stdout, unless stdout is
// set) going to logPath.
func (ps *procs) start(name, logPath string, stdout *os.File, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logf
	cmd.Stdout = logf
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = sysProcAttr()
	cmd.Env = os.Environ()
	err = cmd.Start()
	if stdout != nil {
		stdout.Close() // the child has its own copy
	}
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// stopAll sends SIGTERM to every process still running (participants
// release their lease, agents shut down), waits briefly, then SIGKILLs
// what is left, participants first.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := append([]*proc(nil), ps.list...)
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		_ = list[i].cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(5 * time.Second)
	for i := len(list) - 1; i >= 0; i-- {
		select {
		case <-list[i].done:
		case <-deadline:
			_ = list[i].cmd.Process.Kill()
			<-list[i].done
		}
	}
}

// node is one leasenode agent.
type node struct {
	id       string
	raftAddr string
	httpAddr string
	proc     *proc
}

// change is one line of `leasenode campaign -o json`.
type change struct {
	Time        time.Time `json:"time"`
	Event       string    `json:"event"`
	Holder      string    `json:"holder"`
	Token       uint64    `json:"token"`
	Leader      string    `json:"leader"`
	LeaderToken uint64    `json:"leader_token"`
	Reason      string    `json:"reason"`
}

func run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 55*time.Second)
	defer cancel()

	dir, err := os.MkdirTemp("", "raftlease-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ps := &procs{}
	defer ps.stopAll()

	say("building leasenode")
	bin := filepath.Join(dir, "leasenode")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/raftlease/raftlease/cmd/leasenode")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/leasenode: %w", err)
	}

	// Three agents on free local ports; n1 bootstraps, the others join it.
	var nodes []*node
	for i := 1; i <= 3; i++ {
		raftPort, err := freePort()
		if err != nil {
			return err
		}
		httpPort, err := freePort()
		if err != nil {
			return err
		}
		nodes = append(nodes, &node{id: fmt.Sprintf("n%d", i), raftAddr: fmt.Sprintf("127.0.0.1:%d", raftPort), httpAddr: fmt.Sprintf("127.0.0.1:%d", httpPort)})
	}
	say("starting a 3-node leasenode cluster (data and logs in %s)", dir)
	for i, n := range nodes {
		args := []string{"agent", "--id", n.id, "--data-dir", filepath.Join(dir, n.id),
			"--raft-addr", n.raftAddr, "--http-addr", n.httpAddr, "--profile", "local"}
		if i == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", nodes[0].httpAddr)
		}
		if n.proc, err = ps.start(n.id, filepath.Join(dir, n.id+".log"), nil, bin, args...); err != nil {
			return err
		}
		say("  %s: HTTP %s, Raft %s (pid %d)", n.id, n.httpAddr, n.raftAddr, n.proc.cmd.Process.Pid)
	}
	st, err := waitCluster(ctx, nodes, 3)
	if err != nil {
		return err
	}
	say("cluster formed: %d voters, Raft leader %s; one failover may pause lease expiry by up to %v",
		len(st.Members), st.Leader.ID, time.Duration(st.WorstCaseFailoverDelayMs)*time.Millisecond)

	// Three participants, each talking to its own node only.
	changes := make(chan change, 64)
	participantNode := map[string]*node{}
	for i, n := range nodes {
		holder := fmt.Sprintf("p%d", i+1)
		participantNode[holder] = n
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		go readChanges(pr, changes)
		_, err = ps.start(holder, filepath.Join(dir, holder+".log"), pw, bin,
			"campaign", leaseName, "--holder", holder, "--addr", n.httpAddr, "--profile", "fast", "-o", "json")
		if err != nil {
			return err
		}
	}
	say("3 participants p1, p2, p3 campaign for lease %q (2s TTL, renewed every 500ms); p1 talks to n1, p2 to n2, p3 to n3", leaseName)

	first, err := waitGained(ctx, changes, "")
	if err != nil {
		return err
	}
	leaderNode := participantNode[first.Holder]
	say("%s is leader with fencing token %d", first.Holder, first.Token)

	// Let a few renewals go by, then read the lease through another node.
	if err := pause(ctx, 1500*time.Millisecond, changes); err != nil {
		return err
	}
	other := nodes[0]
	if other == leaderNode {
		other = nodes[1]
	}
	if l, err := getLease(ctx, other); err == nil {
		say("lease as %s sees it: holder %s, token %d, ttl %dms, %dms left, revision %d (renewals keep the token)", other.id, l.Holder, l.Token, l.TTLMs, l.RemainingMs, l.Revision)
	}

	raftRole := "a Raft follower"
	if st, err := status(ctx, leaderNode); err == nil && st.Serving {
		raftRole = "the Raft leader"
	}
	say("kill -9 %s (pid %d), the node %s talks to (it is %s)", leaderNode.id, leaderNode.proc.cmd.Process.Pid, first.Holder, raftRole)
	killedAt := time.Now()
	_ = leaderNode.proc.cmd.Process.Kill()
	<-leaderNode.proc.done

	var lost, gained *change
	for lost == nil || gained == nil {
		select {
		case <-ctx.Done():
			return fmt.Errorf("no failover seen: %w", ctx.Err())
		case c := <-changes:
			switch {
			case c.Event == "lost" && c.Holder == first.Holder:
				lost = &c
				say("%s stops acting as leader %.2fs after the kill: %s (it cannot reach its node, so it fences itself)", c.Holder, time.Since(killedAt).Seconds(), c.Reason)
			case c.Event == "gained" && c.Holder != first.Holder:
				gained = &c
				say("%s is leader with fencing token %d, %.2fs after the kill", c.Holder, c.Token, time.Since(killedAt).Seconds())
			case c.Event == "vacant" && gained == nil:
				say("  %s sees the lease %s on the consensus clock, %.2fs after the kill", c.Holder, c.Reason, time.Since(killedAt).Seconds())
			}
		}
	}
	if !lost.Time.Before(gained.Time) {
		return errors.New("the old leader was still acting when the new one was elected")
	}
	if gained.Token <= first.Token {
		return fmt.Errorf("new token %d is not larger than the old %d", gained.Token, first.Token)
	}
	say("fencing: token %d > %d, so a downstream system that remembers the highest token refuses any late write from %s", gained.Token, first.Token, first.Holder)
	survivor := participantNode[gained.Holder]
	if st, err := waitCluster(ctx, []*node{survivor}, 3); err == nil && st.Leader != nil {
		say("the cluster carries on with 2 of 3 nodes; Raft leader now %s", st.Leader.ID)
	}
	if l, err := getLease(ctx, survivor); err == nil {
		say("lease now: holder %s, token %d, revision %d", l.Holder, l.Token, l.Revision)
	}
	say("stopping every process the demo started")
	ps.stopAll()
	say("done")
	return nil
}

// readChanges forwards the JSON lines of one participant.
func readChanges(r io.ReadCloser, out chan<- change) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var c change
		if json.Unmarshal(sc.Bytes(), &c) == nil && c.Event != "" {
			out <- c
		}
	}
}

// waitGained returns the next gained change (by anyone but not).
func waitGained(ctx context.Context, changes <-chan change, not string) (change, error) {
	for {
		select {
		case <-ctx.Done():
			return change{}, fmt.Errorf("no leader elected: %w", ctx.Err())
		case c := <-changes:
			if c.Event == "gained" && c.Holder != not {
				return c, nil
			}
		}
	}
}

// pause waits d, narrating what the participants see meanwhile.
func pause(ctx context.Context, d time.Duration, changes <-chan change) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		case c := <-changes:
			narrate(c)
		}
	}
}

// narrate prints what a participant observed of another's leadership.
func narrate(c change) {
	switch c.Event {
	case "leader":
		say("  %s follows %s (token %d)", c.Holder, c.Leader, c.LeaderToken)
	case "vacant":
		say("  %s sees the lease vacant (%s)", c.Holder, c.Reason)
	case "gained":
		say("%s is leader with fencing token %d", c.Holder, c.Token)
	case "lost":
		say("%s stops acting as leader (token %d): %s", c.Holder, c.Token, c.Reason)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

type statusJSON struct {
	Serving bool `json:"serving"`
	Leader  *struct {
		ID string `json:"id"`
	} `json:"leader"`
	Members                  []json.RawMessage `json:"members"`
	WorstCaseFailoverDelayMs int64             `json:"worst_case_failover_delay_ms"`
}

type leaseJSON struct {
	Holder      string `json:"holder"`
	Token       uint64 `json:"token"`
	TTLMs       int64  `json:"ttl_ms"`
	RemainingMs int64  `json:"remaining_ms"`
	Revision    uint64 `json:"revision"`
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

func status(ctx context.Context, n *node) (statusJSON, error) {
	var st statusJSON
	err := getJSON(ctx, "http://"+n.httpAddr+"/v1/status", &st)
	return st, err
}

func getLease(ctx context.Context, n *node) (leaseJSON, error) {
	var l leaseJSON
	err := getJSON(ctx, "http://"+n.httpAddr+"/v1/leases/"+strings.ReplaceAll(leaseName, "/", "%2F"), &l)
	return l, err
}

// waitCluster polls the nodes until one reports want members and a leader.
func waitCluster(ctx context.Context, nodes []*node, want int) (statusJSON, error) {
	var last error
	for {
		for _, n := range nodes {
			st, err := status(ctx, n)
			if err == nil && len(st.Members) == want && st.Leader != nil {
				return st, nil
			}
			if err != nil {
				last = err
			} else {
				last = fmt.Errorf("%s sees %d members", n.id, len(st.Members))
			}
		}
		select {
		case <-ctx.Done():
			return statusJSON{}, fmt.Errorf("cluster not formed: %v (%w)", last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
