package main_test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/transport"
)

// TestAuth: with --auth-token-file, every /v1/ request needs one of the
// tokens (401 unauthorized otherwise, and nothing changes); /healthz,
// /readyz and /metrics need none. The second node joins with the token.
func TestAuth(t *testing.T) {
	c := testutil.StartLeasenodes(t, 2, testutil.LeasenodeOptions{AuthTokens: []string{"alpha-token", "beta-token"}})
	ctx := ctxTimeout(t, 30*time.Second)
	c.WaitForLeader(ctx)

	for i := range c.Size() {
		for _, token := range []string{"", "wrong", "alpha-token-but-longer", "Bearer alpha-token"} {
			code, body, err := c.DoToken(ctx, i, http.MethodGet, "/v1/status", nil, token)
			require.NoError(t, err)
			assert.Equal(t, http.StatusUnauthorized, code, "token %q", token)
			assert.Equal(t, transport.CodeUnauthorized, errorCode(t, body))
			code, body, err = c.DoToken(ctx, i, http.MethodPost, leasePath("guarded")+"/acquire", []byte(`{"holder":"a","ttl":"10s"}`), token)
			require.NoError(t, err)
			assert.Equal(t, http.StatusUnauthorized, code, "%s", body)
		}
		c.WaitReady(ctx, i)
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			code, body, err := c.DoToken(ctx, i, http.MethodGet, path, nil, "")
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, code, "%s without a token: %s", path, body)
		}
		for _, token := range []string{"alpha-token", "beta-token"} {
			code, body, err := c.DoToken(ctx, i, http.MethodGet, "/v1/status", nil, token)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, code, "%s", body)
		}
	}
	// The refused acquires changed nothing: the first one with a token
	// gets token 1.
	var l transport.LeaseJSON
	code, body := api(t, c, 1, http.MethodPost, leasePath("guarded")+"/acquire", `{"holder":"a","ttl":"10s"}`, &l)
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.Equal(t, uint64(1), l.Token)

	// The CLI: no token is exit status 4; LEASENODE_AUTH_TOKEN, --auth-token
	// and --auth-token-file work; LEASENODE_TOKEN (run's fencing token) is
	// not an auth token.
	bin := c.Binary()
	addr := "LEASENODE_ADDR=" + c.HTTPAddr(0)
	r := runCLI(t, bin, []string{addr}, "get", "guarded")
	assert.Equal(t, 4, r.status)
	r = runCLI(t, bin, []string{addr, "LEASENODE_TOKEN=alpha-token"}, "get", "guarded")
	assert.Equal(t, 4, r.status)
	r = runCLI(t, bin, []string{addr, "LEASENODE_AUTH_TOKEN=beta-token"}, "get", "guarded")
	assert.Equal(t, 0, r.status, r.stderr)
	r = runCLI(t, bin, []string{addr}, "get", "guarded", "--auth-token", "alpha-token")
	assert.Equal(t, 0, r.status, r.stderr)
	r = runCLI(t, bin, []string{addr}, "get", "guarded", "--token", "alpha-token")
	assert.Equal(t, 0, r.status, "--token is the auth token where there is no fencing token: %s", r.stderr)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("alpha-token\n"), 0o600))
	r = runCLI(t, bin, []string{addr}, "--auth-token-file", tokenFile, "status")
	assert.Equal(t, 0, r.status, r.stderr)
	r = runCLI(t, bin, []string{addr}, "campaign", "guarded2", "--holder", "x")
	assert.Equal(t, 4, r.status, "campaign fails at once on a bad token")
}
