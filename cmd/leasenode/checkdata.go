package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease/cluster"
)

// cmdCheckData runs `leasenode check-data --data-dir DIR`: it verifies a
// stopped node's data dir (cluster.CheckDataDir) and prints what it found.
func cmdCheckData(g *globalFlags, args []string) error {
	fs := newFlagSet("check-data")
	dir := fs.String("data-dir", "", "data dir of a stopped node (required; also the first argument)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 1 && *dir == "":
		*dir = pos[0]
	case len(pos) > 0:
		return usagef("check-data: want one data dir, got %q", pos)
	case *dir == "":
		return usagef("check-data: --data-dir is required")
	}
	rep, err := cluster.CheckDataDir(*dir)
	if err != nil {
		return err
	}
	newest := "none"
	if len(rep.Snapshots) > 0 {
		s := rep.Snapshots[0]
		newest = fmt.Sprintf("%s (index %d, %d bytes, checksum verified)", s.ID, s.Index, s.Size)
	}
	fmt.Fprintf(g.stdout, "ok: log entries %d..%d, %d snapshot(s), newest %s\n", rep.FirstIndex, rep.LastIndex, len(rep.Snapshots), newest)
	return nil
}

// dataCheckTimeout bounds the agent's pre-start check of its data dir.
const dataCheckTimeout = 5 * time.Minute

// checkDataDirInChild runs `leasenode check-data` on dir in a child
// process before the agent opens it: bbolt panics, in a goroutine nobody
// can recover, on some kinds of damaged pages, and the agent should
// refuse to start with a clear error instead. A dir without Raft state
// is not checked; when the child cannot be started the check is skipped
// with a warning (the node's own checks still run).
func checkDataDirInChild(dir string, logger hclog.Logger) error {
	if !hasRaftState(dir) {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		logger.Warn("cannot find this executable: skipping the data dir check", "error", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), dataCheckTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "check-data", "--data-dir", dir)
	cmd.Env = os.Environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	begin := time.Now()
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		logger.Info("data dir checked", "took", time.Since(begin).Round(time.Millisecond), "result", strings.TrimSpace(out.String()))
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("agent: the check of data dir %s did not finish within %v (skip it with --skip-data-check)", dir, dataCheckTimeout)
	case !errors.As(err, &exit):
		logger.Warn("cannot run the data dir check: skipping it", "error", err)
		return nil
	}
	return fmt.Errorf("agent: data dir %s failed its check (leasenode check-data): %s", dir, checkFailure(out.String()))
}

// checkFailure picks the message out of a failed check's output: the
// panic line of a bbolt crash, else the last line.
func checkFailure(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "panic: ") {
			return "raft.db is damaged (bolt crashed reading it: " + strings.TrimPrefix(l, "panic: ") +
				"); refusing to start: restore the data dir from a backup, or remove this member and add a fresh node under a new id"
		}
	}
	msg := strings.TrimSpace(lines[len(lines)-1])
	msg = strings.TrimPrefix(msg, "leasenode: ")
	msg = strings.TrimPrefix(msg, "leasenode check-data: ")
	return msg
}
