package main_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/testutil"
)

// TestDev: `leasenode dev` serves at once, prints its address and a curl
// example, and exits 0 on SIGINT.
func TestDev(t *testing.T) {
	bin := testutil.LeasenodeBinary(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	cmd := exec.Command(bin, "dev", "--http-addr", addr)
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	// The process writes stderr to a file, read only on failure.
	stderrPath := filepath.Join(t.TempDir(), "stderr")
	stderrFile, err := os.Create(stderrPath)
	require.NoError(t, err)
	defer stderrFile.Close()
	cmd.Stderr = stderrFile
	stderr := func() string { b, _ := os.ReadFile(stderrPath); return string(b) }
	started := time.Now()
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	sc := bufio.NewScanner(stdout)
	require.True(t, sc.Scan(), "dev prints its address: %s", stderr())
	assert.Contains(t, sc.Text(), "http://"+addr)
	t.Logf("dev ready after %v", time.Since(started))
	var rest strings.Builder
	for sc.Scan() {
		rest.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "leasenode --addr") {
			break
		}
	}
	assert.Contains(t, rest.String(), "curl")

	resp, err := http.Post("http://"+addr+"/v1/leases/my-job/acquire", "application/json", strings.NewReader(`{"holder":"me","ttl":"30s"}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Contains(t, string(body), `"token":1`)

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	_, _ = io.Copy(io.Discard, stdout) // until dev exits
	require.NoError(t, cmd.Wait(), "exit 0 on SIGINT: %s", stderr())
}
