package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/testutil"
)

// TestUnsafeTestHooksAbsentWithoutFlag runs real agents: without
// --unsafe-test-hooks the client API has no /v1/test/ endpoint and the
// log never mentions the hooks; with it, the hooks answer on their own
// address only, and the agent warns loudly.
func TestUnsafeTestHooksAbsentWithoutFlag(t *testing.T) {
	plain := testutil.StartLeasenodes(t, 1, testutil.LeasenodeOptions{})
	ctx := ctxTimeout(t, 30*time.Second)
	for _, path := range []string{"/v1/test/status", "/v1/test/clock", "/v1/test/links"} {
		code, _, err := plain.Do(ctx, 0, http.MethodGet, path, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, code, path)
		code, _, err = plain.Do(ctx, 0, http.MethodPost, path, []byte(`{"rate":2}`))
		require.NoError(t, err)
		require.NotEqual(t, http.StatusOK, code, path)
	}
	log, err := os.ReadFile(plain.LogPath(0))
	require.NoError(t, err)
	require.NotContains(t, strings.ToLower(string(log)), "unsafe test hooks enabled")

	hooksAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	hooked := testutil.StartLeasenodes(t, 1, testutil.LeasenodeOptions{ExtraArgs: func(int) []string {
		return []string{"--unsafe-test-hooks", hooksAddr}
	}})
	code, _, err := hooked.Do(ctx, 0, http.MethodGet, "/v1/test/status", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, code, "the hooks must not be on the client API")
	resp, err := http.Get("http://" + hooksAddr + "/v1/test/status")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var st struct {
		ID        string `json:"id"`
		StateHash string `json:"state_hash"`
	}
	require.NoError(t, json.Unmarshal(body, &st))
	require.Equal(t, hooked.ID(0), st.ID)
	require.NotEmpty(t, st.StateHash)
	log, err = os.ReadFile(hooked.LogPath(0))
	require.NoError(t, err)
	require.Contains(t, string(log), "UNSAFE TEST HOOKS ENABLED")
}
