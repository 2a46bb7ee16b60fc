package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/transport"
)

// The tests in this package run the real leasenode binary: agents as
// separate processes on 127.0.0.1 (testutil.Leasenodes), and CLI commands
// as processes too. The test binary doubles as the child of `leasenode
// run` (see childMain).

func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" {
		os.Exit(childMain(mode))
	}
	code := m.Run()
	testutil.RemoveLeasenodeBinary()
	os.Exit(code)
}

// The child of `leasenode run` in these tests: the test binary started with
// childModeEnv set. It records its pid and the fencing token it was given,
// then writes a heartbeat (the wall-clock time, in ns) every few
// milliseconds until it is told to exit or is killed.
const (
	childModeEnv  = "LEASENODE_TEST_CHILD"     // "cooperative" or "stubborn" (ignores SIGTERM)
	childDirEnv   = "LEASENODE_TEST_CHILD_DIR" // where it writes
	childExitFile = "exit"                     // when this file appears, the child exits with its content as status
)

// childInfo is what the child writes to start.json.
type childInfo struct {
	Pid    int    `json:"pid"`
	Token  string `json:"token"`
	Lease  string `json:"lease"`
	Holder string `json:"holder"`
}

func childMain(mode string) int {
	dir := os.Getenv(childDirEnv)
	sigs := make(chan os.Signal, 1)
	if mode == "stubborn" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(sigs, syscall.SIGTERM)
	}
	info := childInfo{Pid: os.Getpid(), Token: os.Getenv("LEASENODE_TOKEN"), Lease: os.Getenv("LEASENODE_LEASE"), Holder: os.Getenv("LEASENODE_HOLDER")}
	b, _ := json.Marshal(info)
	if err := writeAtomic(filepath.Join(dir, "start.json"), b); err != nil {
		return 99
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := writeAtomic(filepath.Join(dir, "heartbeat"), []byte(strconv.FormatInt(time.Now().UnixNano(), 10))); err != nil {
			return 98
		}
		if b, err := os.ReadFile(filepath.Join(dir, childExitFile)); err == nil {
			status, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return status
		}
		select {
		case <-sigs:
			_ = writeAtomic(filepath.Join(dir, "terminated"), []byte("SIGTERM"))
			return 0
		case <-tick.C:
		}
	}
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lastHeartbeat returns the child's last heartbeat.
func lastHeartbeat(t *testing.T, dir string) time.Time {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "heartbeat"))
	require.NoError(t, err)
	ns, err := strconv.ParseInt(string(b), 10, 64)
	require.NoError(t, err)
	return time.Unix(0, ns)
}

func readChildInfo(dir string) (childInfo, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "start.json"))
	if err != nil {
		return childInfo{}, false
	}
	var info childInfo
	if json.Unmarshal(b, &info) != nil {
		return childInfo{}, false
	}
	return info, true
}

// cli runs one leasenode CLI command against the cluster and returns its
// stdout, stderr and exit status.
type cliResult struct {
	stdout, stderr string
	status         int
}

func runCLI(t *testing.T, bin string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.status = ee.ExitCode()
	default:
		t.Fatalf("run leasenode %q: %v", args, err)
	}
	t.Logf("leasenode %s -> %d\n%s%s", strings.Join(args, " "), res.status, res.stdout, res.stderr)
	return res
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEASENODE_") {
			out = append(out, kv)
		}
	}
	return out
}

// api sends one HTTP request to node i and decodes a JSON answer into out
// (unless nil); it returns the status code and raw body.
func api(t *testing.T, c *testutil.Leasenodes, i int, method, path string, body any, out any) (int, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		b, err = json.Marshal(v)
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	code, resp, err := c.Do(ctx, i, method, path, b)
	require.NoError(t, err, "%s %s", method, path)
	if out != nil && code < 300 {
		require.NoError(t, json.Unmarshal(resp, out), "%s", resp)
	}
	return code, resp
}

// errorCode extracts the code of an error body.
func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e transport.ErrorJSON
	require.NoError(t, json.Unmarshal(body, &e), "error body %s", body)
	return e.Error.Code
}

func leasePath(name string) string { return "/v1/leases/" + strings.ReplaceAll(name, "/", "%2F") }

func acquireBody(holder, ttl string) map[string]any {
	return map[string]any{"holder": holder, "ttl": ttl}
}

// waitFor polls cond every 10 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
