package main_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/transport"
)

// TestMutualTLS: agents started with --tls-cert, --tls-key and --tls-ca
// speak mutual TLS on Raft and on HTTP: the second node joins over HTTPS
// and replicates over TLS; a client without a certificate is refused; the
// CLI works with the TLS flags.
func TestMutualTLS(t *testing.T) {
	files, clientTLS := testutil.NewLeasenodeTLS(t)
	c := testutil.StartLeasenodes(t, 2, testutil.LeasenodeOptions{TLS: files, ClientTLS: clientTLS})
	ctx := ctxTimeout(t, 30*time.Second)
	leader := c.WaitForLeader(ctx)
	follower := 1 - leader

	// Through the follower: forwarded to the leader over the TLS Raft port.
	var l transport.LeaseJSON
	code, body := api(t, c, follower, http.MethodPost, leasePath("tls/job")+"/acquire", acquireBody("a", "30s"), &l)
	require.Equal(t, http.StatusOK, code, "%s", body)

	// No client certificate: refused in the handshake. Plain HTTP: refused.
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: clientTLS.RootCAs}}}
	resp, err := noCert.Get(c.URL(follower) + "/healthz")
	if err == nil {
		resp.Body.Close()
	}
	assert.Error(t, err, "a client without a certificate is refused")
	plain := &http.Client{Timeout: 5 * time.Second}
	resp, err = plain.Get("http://" + c.HTTPAddr(follower) + "/healthz")
	if err == nil {
		assert.NotEqual(t, http.StatusOK, resp.StatusCode)
		resp.Body.Close()
	}

	// The CLI with the TLS flags (bare host:port means https).
	env := []string{"LEASENODE_ADDR=" + c.HTTPAddr(follower), "LEASENODE_TLS_CA=" + files.CA}
	r := runCLI(t, c.Binary(), env, "get", "tls/job", "--tls-cert", files.Cert, "--tls-key", files.Key, "-o", "json")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Contains(t, r.stdout, `"holder":"a"`)
	r = runCLI(t, c.Binary(), env, "get", "tls/job", "--timeout", "3s")
	assert.NotEqual(t, 0, r.status, "no client certificate")

	// Restart the node that joined: it comes back over TLS from its data
	// dir, without joining again.
	c.Kill(1)
	c.Restart(1)
	c.WaitForLeader(ctx)
	st, err := c.Status(context.Background(), c.WaitForLeader(ctx))
	require.NoError(t, err)
	c.WaitApplied(ctx, st.CommitIndex)
	out, err := os.ReadFile(c.LogPath(1))
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(out), "joined the cluster"), "joined once, at the first start")
	assert.Contains(t, string(out), "restarting from it, not joining")
}
