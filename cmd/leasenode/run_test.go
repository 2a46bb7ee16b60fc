package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/elector"
	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/transport"
)

// runTTL and runGrace are the `leasenode run` settings of these tests:
// short, so that a lost lease shows within seconds.
const (
	runTTL   = 3 * time.Second
	runGrace = 500 * time.Millisecond
)

// runProc is one `leasenode run` process whose child is the test binary.
type runProc struct {
	cmd      *exec.Cmd
	dir      string // the child's files
	done     chan struct{}
	status   int
	stderr   bytes.Buffer
	exitedAt time.Time
}

func startRun(t *testing.T, c *testutil.Leasenodes, node int, name, holder, childMode string) *runProc {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	p := &runProc{dir: t.TempDir(), done: make(chan struct{})}
	p.cmd = exec.Command(c.Binary(), "run", name, "--holder", holder,
		"--ttl", runTTL.String(), "--grace", runGrace.String(), "--log-level", "info",
		"--addr", c.HTTPAddr(node), "--", self, "-test.run=^$")
	p.cmd.Env = append(cleanEnv(), childModeEnv+"="+childMode, childDirEnv+"="+p.dir)
	p.cmd.Stderr = &p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		err := p.cmd.Wait()
		p.exitedAt = time.Now()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.status = ee.ExitCode()
		} else if err != nil {
			p.status = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("leasenode run stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

// wait waits for run to exit and returns its status.
func (p *runProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.status
	case <-time.After(d):
		t.Fatalf("leasenode run did not exit within %v", d)
		return 0
	}
}

func (p *runProc) childStarted() (childInfo, bool) { return readChildInfo(p.dir) }

func (p *runProc) waitChild(t *testing.T) childInfo {
	t.Helper()
	var info childInfo
	waitFor(t, 30*time.Second, "the child to start", func() bool {
		var ok bool
		info, ok = p.childStarted()
		return ok
	})
	return info
}

// refusedAcquires reads from node i's metrics how many acquires were
// refused because the lease was held.
func refusedAcquires(t *testing.T, c *testutil.Leasenodes, i int) int {
	t.Helper()
	code, body := api(t, c, i, http.MethodGet, "/metrics", nil, nil)
	require.Equal(t, http.StatusOK, code)
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "raftlease_http_requests_total{") && strings.Contains(line, `code="lease_held"`) && strings.Contains(line, `op="acquire"`) {
			f := strings.Fields(line)
			n, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return int(n)
		}
	}
	return 0
}

func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// TestRunHoldsLeaseWhileCommandRuns: the child starts only once the lease
// is free and acquired, gets the fencing token and lease name in its
// environment; signals to run reach it; when it exits by itself, run
// releases the lease and exits with the child's status.
func TestRunHoldsLeaseWhileCommandRuns(t *testing.T) {
	c := testutil.StartLeasenodes(t, 1, testutil.LeasenodeOptions{})
	ctx := ctxTimeout(t, 60*time.Second)
	c.WaitForLeader(ctx)

	t.Run("waits for the lease; SIGTERM is forwarded", func(t *testing.T) {
		var other transport.LeaseJSON
		code, body := api(t, c, 0, http.MethodPost, leasePath("jobs/run")+"/acquire", acquireBody("someone-else", "30s"), &other)
		require.Equal(t, http.StatusOK, code, "%s", body)

		refusedBefore := refusedAcquires(t, c, 0)
		p := startRun(t, c, 0, "jobs/run", "runner-1", "cooperative")
		// run tried and was refused...
		waitFor(t, 20*time.Second, "run's acquire to be refused", func() bool { return refusedAcquires(t, c, 0) > refusedBefore })
		// ...so its child has not started.
		_, started := p.childStarted()
		require.False(t, started, "the child started while someone else held the lease")

		releaseSent := time.Now()
		code, body = api(t, c, 0, http.MethodPost, leasePath("jobs/run")+"/release", map[string]any{"holder": "someone-else", "token": other.Token}, nil)
		require.Equal(t, http.StatusOK, code, "%s", body)
		info := p.waitChild(t)
		assert.Equal(t, "jobs/run", info.Lease)
		assert.Equal(t, "runner-1", info.Holder)
		token, err := strconv.ParseUint(info.Token, 10, 64)
		require.NoError(t, err, "LEASENODE_TOKEN %q", info.Token)
		assert.Greater(t, token, other.Token)
		firstBeat := lastHeartbeat(t, p.dir)
		assert.True(t, firstBeat.After(releaseSent), "the child ran before the lease was released")

		var held transport.LeaseJSON
		code, body = api(t, c, 0, http.MethodGet, leasePath("jobs/run"), nil, &held)
		require.Equal(t, http.StatusOK, code, "%s", body)
		assert.Equal(t, "runner-1", held.Holder)
		assert.Equal(t, token, held.Token, "the child's token is the lease's")

		// Renewals keep the lease (and the child) going past the TTL.
		waitFor(t, 20*time.Second, "a renewal", func() bool {
			var l transport.LeaseJSON
			code, _ := api(t, c, 0, http.MethodGet, leasePath("jobs/run"), nil, &l)
			return code == http.StatusOK && l.Revision > held.Revision && l.Token == token
		})

		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		assert.Equal(t, 0, p.wait(t, 20*time.Second), "the child's status: it exited 0 on SIGTERM")
		_, err = os.Stat(filepath.Join(p.dir, "terminated"))
		assert.NoError(t, err, "SIGTERM reached the child")
		code, _ = api(t, c, 0, http.MethodGet, leasePath("jobs/run"), nil, nil)
		assert.Equal(t, http.StatusNotFound, code, "run released the lease")
	})

	t.Run("child exits by itself", func(t *testing.T) {
		p := startRun(t, c, 0, "jobs/run", "runner-2", "cooperative")
		info := p.waitChild(t)
		require.NoError(t, os.WriteFile(filepath.Join(p.dir, childExitFile), []byte("7"), 0o600))
		assert.Equal(t, 7, p.wait(t, 20*time.Second), "run exits with the child's status")
		assert.True(t, processGone(info.Pid))
		code, body := api(t, c, 0, http.MethodGet, leasePath("jobs/run"), nil, nil)
		assert.Equal(t, http.StatusNotFound, code, "run released the lease: %s", body)
	})
}

// TestRunStopsCommandWhenLeaseLost: the cluster goes away (kill -9 of its
// only node), so renewals fail; run must have its child gone before the
// holder-side deadline passes, and exit with status 75. The deadline is
// bounded from the test's side: the last renewal was sent before the
// test saw it committed (t_seen), so safe-until ≤ t_seen + SafeWindow.
func TestRunStopsCommandWhenLeaseLost(t *testing.T) {
	opts := elector.Balanced()
	scale := float64(runTTL) / float64(opts.LeaseDuration) // as `run --ttl` scales the profile
	window := time.Duration(float64(runTTL)*(1-opts.MaxClockDrift)) - time.Duration(float64(opts.SafetyMargin)*scale)

	for _, mode := range []string{"cooperative", "stubborn"} {
		t.Run(mode, func(t *testing.T) {
			c := testutil.StartLeasenodes(t, 1, testutil.LeasenodeOptions{})
			ctx := ctxTimeout(t, 60*time.Second)
			c.WaitForLeader(ctx)
			p := startRun(t, c, 0, "jobs/lost", "runner", mode)
			info := p.waitChild(t)

			// Wait for a renewal to commit, then kill the cluster at once:
			// no later renewal can succeed.
			var first transport.LeaseJSON
			code, body := api(t, c, 0, http.MethodGet, leasePath("jobs/lost"), nil, &first)
			require.Equal(t, http.StatusOK, code, "%s", body)
			var seen time.Time
			for {
				var l transport.LeaseJSON
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				code, body, err := c.Do(rctx, 0, http.MethodGet, leasePath("jobs/lost"), nil)
				cancel()
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, code, "%s", body)
				require.NoError(t, json.Unmarshal(body, &l))
				if l.Revision > first.Revision {
					seen = time.Now()
					break
				}
				select {
				case <-ctx.Done():
					t.Fatal("no renewal seen")
				case <-time.After(5 * time.Millisecond): // polling interval
				}
			}
			c.Kill(0)
			killed := time.Now()
			t.Logf("renewal seen committed; cluster killed %v later", killed.Sub(seen))

			assert.Equal(t, 75, p.wait(t, 30*time.Second), "lost-lease exit status")
			last := lastHeartbeat(t, p.dir)
			deadline := seen.Add(window)
			t.Logf("child's last heartbeat %v after the renewal was seen; holder-side deadline at most %v after it; run exited %v after it",
				last.Sub(seen).Round(time.Millisecond), window, p.exitedAt.Sub(seen).Round(time.Millisecond))
			assert.True(t, last.Before(deadline), "the child was alive %v past the holder-side deadline", last.Sub(deadline))
			assert.True(t, p.exitedAt.Before(deadline.Add(2*time.Second)), "run exited promptly (after a last release attempt)")
			assert.True(t, processGone(info.Pid), "the child is gone")
			// It was not stopped needlessly early: it ran on while the
			// lease was still safely held, after the cluster was gone.
			assert.True(t, last.After(killed.Add(window/3)), "stopped only %v after the kill", last.Sub(killed))
			_, err := os.Stat(filepath.Join(p.dir, "terminated"))
			if mode == "stubborn" {
				assert.Error(t, err, "a stubborn child ignores SIGTERM and is killed")
			} else {
				assert.NoError(t, err, "a cooperative child gets SIGTERM and exits")
			}
			assert.Contains(t, p.stderr.String(), "lost")
		})
	}
}
