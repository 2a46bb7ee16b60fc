package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/elector"
)

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestParseAgentConfig(t *testing.T) {
	base := []string{"--id", "n1", "--data-dir", "/tmp/n1"}
	tests := []struct {
		name string
		args []string
		env  func(string) string
		// check the result; wantErr lists substrings of the error.
		check   func(t *testing.T, c agentConfig)
		wantErr []string
	}{
		{
			name: "defaults",
			args: base,
			check: func(t *testing.T, c agentConfig) {
				assert.Equal(t, "n1", c.ID)
				assert.Equal(t, defaultRaftAddr, c.RaftAddr)
				assert.Equal(t, defaultHTTPAddr, c.HTTPAddr)
				assert.Equal(t, defaultHTTPAddr, c.advertisedHTTP())
				assert.Equal(t, "lan", c.Profile)
				assert.False(t, c.Bootstrap)
				assert.Empty(t, c.Join)
				assert.Equal(t, 10*time.Second, c.ShutdownTimeout)
			},
		},
		{
			name: "every flag from the environment",
			env: envOf("LEASENODE_ID", "n2", "LEASENODE_DATA_DIR", "/d", "LEASENODE_RAFT_ADDR", "0.0.0.0:9000",
				"LEASENODE_RAFT_ADVERTISE", "10.0.0.2:9000", "LEASENODE_HTTP_ADDR", "127.0.0.1:9001",
				"LEASENODE_JOIN", "10.0.0.1:7070,https://10.0.0.3:7070", "LEASENODE_LOG_LEVEL", "debug",
				"LEASENODE_LOG_FORMAT", "json", "LEASENODE_PROFILE", "local", "LEASENODE_JOIN_TIMEOUT", "5s"),
			check: func(t *testing.T, c agentConfig) {
				assert.Equal(t, "n2", c.ID)
				assert.Equal(t, "/d", c.DataDir)
				assert.Equal(t, "10.0.0.2:9000", c.advertisedRaft())
				assert.Equal(t, []string{"10.0.0.1:7070", "https://10.0.0.3:7070"}, c.Join)
				assert.Equal(t, "debug", c.LogLevel)
				assert.Equal(t, "json", c.LogFormat)
				assert.Equal(t, "local", c.Profile)
				assert.Equal(t, 5*time.Second, c.JoinTimeout)
				o := c.nodeOptions()
				assert.Equal(t, "0.0.0.0:9000", o.BindAddr)
				assert.Equal(t, "10.0.0.2:9000", o.AdvertiseAddr)
				assert.Equal(t, "127.0.0.1:9001", o.APIAddr)
			},
		},
		{
			name: "flag beats environment",
			args: append([]string{"--join", "a:1"}, base...),
			env:  envOf("LEASENODE_ID", "env-id", "LEASENODE_JOIN", "b:2,c:3", "LEASENODE_PROFILE", "local"),
			check: func(t *testing.T, c agentConfig) {
				assert.Equal(t, "n1", c.ID)
				assert.Equal(t, []string{"a:1"}, c.Join, "--join replaces the variable's list")
				assert.Equal(t, "local", c.Profile, "unset flags still come from the environment")
			},
		},
		{
			name: "bool from environment",
			args: base,
			env:  envOf("LEASENODE_BOOTSTRAP", "true"),
			check: func(t *testing.T, c agentConfig) {
				assert.True(t, c.Bootstrap)
			},
		},
		{
			name:    "bad bool in environment names the variable",
			args:    base,
			env:     envOf("LEASENODE_BOOTSTRAP", "maybe"),
			wantErr: []string{"LEASENODE_BOOTSTRAP", "--bootstrap"},
		},
		{
			name:    "repeated join and comma lists",
			args:    append(base, "--join", "a:1,b:2", "--join", "http://c:3"),
			check:   func(t *testing.T, c agentConfig) { assert.Equal(t, []string{"a:1", "b:2", "http://c:3"}, c.Join) },
			wantErr: nil,
		},
		{name: "missing id", args: []string{"--data-dir", "/d"}, wantErr: []string{"--id is required"}},
		{name: "missing data dir", args: []string{"--id", "x"}, wantErr: []string{"--data-dir is required"}},
		{name: "missing both", args: nil, wantErr: []string{"--id is required", "--data-dir is required"}},
		{name: "bad id", args: []string{"--id", "has space", "--data-dir", "/d"}, wantErr: []string{"--id"}},
		{name: "bootstrap with join", args: append(base, "--bootstrap", "--join", "a:1"), wantErr: []string{"--bootstrap and --join conflict"}},
		{name: "bad join", args: append(base, "--join", "ftp://x:1"), wantErr: []string{"--join", "ftp://x:1"}},
		{name: "join without port", args: append(base, "--join", "x"), wantErr: []string{"--join"}},
		{name: "join with a path", args: append(base, "--join", "http://x:1/v1"), wantErr: []string{"--join"}},
		{name: "raft addr not host:port", args: append(base, "--raft-addr", "nope"), wantErr: []string{"--raft-addr"}},
		{name: "unspecified raft addr needs advertise", args: append(base, "--raft-addr", "0.0.0.0:7000"), wantErr: []string{"--raft-advertise"}},
		{name: "unspecified http addr needs advertise", args: append(base, "--http-addr", ":7070"), wantErr: []string{"--http-advertise"}},
		{name: "advertise must be dialable", args: append(base, "--http-addr", ":7070", "--http-advertise", "0.0.0.0:7070"), wantErr: []string{"--http-advertise"}},
		{
			name: "all interfaces with advertise",
			args: append(base, "--http-addr", ":7070", "--http-advertise", "10.1.1.1:7070"),
			check: func(t *testing.T, c agentConfig) {
				assert.Equal(t, "10.1.1.1:7070", c.nodeOptions().APIAddr)
			},
		},
		{name: "tls needs all three", args: append(base, "--tls-cert", "c.pem", "--tls-key", "k.pem"), wantErr: []string{"--tls-ca"}},
		{name: "tls cert without key", args: append(base, "--tls-cert", "c.pem", "--tls-ca", "ca.pem"), wantErr: []string{"--tls-cert and --tls-key go together"}},
		{name: "bad log level", args: append(base, "--log-level", "loud"), wantErr: []string{"--log-level"}},
		{name: "bad log format", args: append(base, "--log-format", "xml"), wantErr: []string{"--log-format"}},
		{name: "bad profile", args: append(base, "--profile", "wan"), wantErr: []string{"--profile"}},
		{name: "unknown flag", args: append(base, "--frobnicate"), wantErr: []string{"frobnicate"}},
		{name: "positional argument", args: append(base, "extra"), wantErr: []string{"unexpected argument"}},
		{name: "negative join timeout", args: append(base, "--join-timeout", "-1s"), wantErr: []string{"--join-timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = envOf()
			}
			c, err := parseAgentConfig(tc.args, env)
			if len(tc.wantErr) > 0 {
				require.Error(t, err)
				var ue *usageError
				assert.True(t, errors.As(err, &ue), "a usage error: %v", err)
				assert.Equal(t, exitUsage, exitStatus(err))
				for _, want := range tc.wantErr {
					assert.Contains(t, err.Error(), want)
				}
				return
			}
			require.NoError(t, err)
			if tc.check != nil {
				tc.check(t, c)
			}
			require.NoError(t, c.nodeOptions().Validate())
		})
	}
}

func TestNodeOptionsProfiles(t *testing.T) {
	c, err := parseAgentConfig([]string{"--id", "a", "--data-dir", "/d", "--profile", "local"}, envOf())
	require.NoError(t, err)
	local := c.nodeOptions()
	c.Profile = "lan"
	lan := c.nodeOptions()
	assert.Less(t, local.WorstCaseFailoverDelay(), lan.WorstCaseFailoverDelay())
	assert.Equal(t, "a", lan.ID)
}

func TestParseInterspersed(t *testing.T) {
	fs := newFlagSet("x")
	holder := fs.String("holder", "", "")
	stale := fs.Bool("stale", false, "")
	pos, err := parseInterspersed(fs, []string{"NAME", "--holder", "h", "OTHER", "--stale", "--", "--not-a-flag"})
	require.NoError(t, err)
	assert.Equal(t, []string{"NAME", "OTHER", "--not-a-flag"}, pos)
	assert.Equal(t, "h", *holder)
	assert.True(t, *stale)
}

func TestSplitCommand(t *testing.T) {
	own, cmd, ok := splitCommand([]string{"job", "--ttl", "5s", "--", "sh", "-c", "echo --"})
	require.True(t, ok)
	assert.Equal(t, []string{"job", "--ttl", "5s"}, own)
	assert.Equal(t, []string{"sh", "-c", "echo --"}, cmd)
	_, _, ok = splitCommand([]string{"job"})
	assert.False(t, ok)
}

func TestGlobalFlags(t *testing.T) {
	tests := []struct {
		name    string
		env     func(string) string
		pre     []string // before the command
		args    []string // after it
		alias   bool
		check   func(t *testing.T, g *globalFlags, pos []string)
		wantErr string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, g *globalFlags, _ []string) {
				assert.Empty(t, g.Addr)
				assert.Equal(t, "table", g.Output)
				assert.Equal(t, 10*time.Second, g.Timeout)
			},
		},
		{
			name: "environment",
			env:  envOf("LEASENODE_ADDR", "a:1,b:2", "LEASENODE_AUTH_TOKEN", "secret", "LEASENODE_OUTPUT", "json", "LEASENODE_TOKEN", "42"),
			check: func(t *testing.T, g *globalFlags, _ []string) {
				assert.Equal(t, []string{"a:1", "b:2"}, []string(g.Addr))
				assert.Equal(t, "secret", g.AuthToken, "the auth token comes from LEASENODE_AUTH_TOKEN, never LEASENODE_TOKEN")
				assert.True(t, g.json())
			},
		},
		{
			name: "LEASENODE_TOKEN is not the auth token",
			env:  envOf("LEASENODE_TOKEN", "42"),
			check: func(t *testing.T, g *globalFlags, _ []string) {
				assert.Empty(t, g.AuthToken)
			},
		},
		{
			name: "flags before and after the command; after wins",
			env:  envOf("LEASENODE_ADDR", "env:1"),
			pre:  []string{"--addr", "pre:1", "-o", "json"},
			args: []string{"NAME", "--addr", "post:1,post:2"},
			check: func(t *testing.T, g *globalFlags, pos []string) {
				assert.Equal(t, []string{"post:1", "post:2"}, []string(g.Addr))
				assert.True(t, g.json())
				assert.Equal(t, []string{"NAME"}, pos)
			},
		},
		{
			name: "flag before the command beats the environment",
			env:  envOf("LEASENODE_ADDR", "env:1"),
			pre:  []string{"--addr", "pre:1"},
			check: func(t *testing.T, g *globalFlags, _ []string) {
				assert.Equal(t, []string{"pre:1"}, []string(g.Addr))
			},
		},
		{
			name:  "--token is the auth token where there is no fencing token",
			args:  []string{"--token", "s3cret"},
			alias: true,
			check: func(t *testing.T, g *globalFlags, _ []string) {
				assert.Equal(t, "s3cret", g.AuthToken)
			},
		},
		{name: "bad output", args: []string{"-o", "yaml"}, wantErr: "-o"},
		{name: "bad addr", args: []string{"--addr", "nohost"}, wantErr: "--addr"},
		{name: "token and token file", args: []string{"--auth-token", "a", "--auth-token-file", "f"}, wantErr: "conflict"},
		{name: "client tls needs a CA", args: []string{"--tls-cert", "c", "--tls-key", "k"}, wantErr: "--tls-ca"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = envOf()
			}
			g := newGlobalFlags(env)
			pre := newFlagSet("leasenode")
			g.register(pre)
			require.NoError(t, g.env(pre))
			require.NoError(t, g.parsePre(pre, tc.pre))
			fs := g.commandFlags("cmd", tc.alias)
			pos, err := g.parse(fs, tc.args)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Equal(t, exitUsage, exitStatus(err))
				return
			}
			require.NoError(t, err)
			tc.check(t, g, pos)
		})
	}
}

func TestEndpointsFor(t *testing.T) {
	got, err := endpointsFor("addr", []string{"a:1", "http://b:2", "https://c:3"}, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"http://a:1", "http://b:2", "https://c:3"}, got)
	got, err = endpointsFor("addr", []string{"a:1"}, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"https://a:1"}, got)
}

func TestElectionOptions(t *testing.T) {
	ef := electionFlags{Holder: "h", Profile: "balanced", TTL: 3 * time.Second}
	o, err := ef.options("job")
	require.NoError(t, err)
	b := elector.Balanced()
	assert.Equal(t, 3*time.Second, o.LeaseDuration)
	assert.Equal(t, b.RenewInterval*3/10, o.RenewInterval, "scaled with the TTL")
	assert.Equal(t, b.SafetyMargin*3/10, o.SafetyMargin)
	assert.True(t, o.ReleaseOnStop)

	ef = electionFlags{Profile: "fast"}
	o, err = ef.options("job")
	require.NoError(t, err)
	assert.Equal(t, elector.FastFailover().LeaseDuration, o.LeaseDuration, "no --ttl: the profile's own")
	assert.Equal(t, defaultHolder(), o.Holder)

	_, err = (&electionFlags{Profile: "slow"}).options("job")
	assert.ErrorContains(t, err, "--profile")
	_, err = (&electionFlags{Profile: "balanced", TTL: 50 * time.Millisecond}).options("job")
	assert.ErrorContains(t, err, "--ttl")
}

func TestCheckGrace(t *testing.T) {
	o := elector.Balanced() // safe window 9.4s; renew + op timeout 5s
	require.NoError(t, checkGrace(2*time.Second, o))
	require.NoError(t, checkGrace(0, o))
	err := checkGrace(5*time.Second, o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--grace")
	assert.Error(t, checkGrace(-time.Second, o))
}

func TestParseRunConfig(t *testing.T) {
	g := newGlobalFlags(envOf())
	cfg, opts, err := parseRunConfig(g, []string{"job", "--ttl", "4s", "--grace", "500ms", "--holder", "me", "--", "sleep", "--", "1"})
	require.NoError(t, err)
	assert.Equal(t, "job", cfg.Name)
	assert.Equal(t, []string{"sleep", "--", "1"}, cfg.Command)
	assert.Equal(t, 500*time.Millisecond, cfg.Grace)
	assert.Equal(t, "me", opts.Holder)
	assert.Equal(t, 4*time.Second, opts.LeaseDuration)

	for _, bad := range [][]string{
		{"job"},                                // no command
		{"job", "--"},                          // empty command
		{"--", "sleep", "1"},                   // no name
		{"job", "--grace", "9s", "--", "true"}, // grace too long for the TTL
		{"bad name!", "--", "true"},
	} {
		_, _, err := parseRunConfig(newGlobalFlags(envOf()), bad)
		require.Error(t, err, "%q", bad)
		assert.Equal(t, exitUsage, exitStatus(err), "%q: %v", bad, err)
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(path, []byte("# comment\n\n  alpha \nbeta\n"), 0o600))
	tokens, err := readTokenFile("auth-token-file", path)
	require.NoError(t, err)
	assert.Equal(t, []string{"alpha", "beta"}, tokens)

	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("# nothing\n"), 0o600))
	_, err = readTokenFile("auth-token-file", empty)
	assert.ErrorContains(t, err, "no token")
	_, err = readTokenFile("auth-token-file", filepath.Join(dir, "missing"))
	assert.ErrorContains(t, err, "--auth-token-file")
}

func TestMainUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"--addr", "a:1", "agent", "--id", "x", "--data-dir", "/d"}, // client flag before agent
		{"agent"},
		{"acquire"},
		{"acquire", "job"}, // no --holder
		{"renew", "job", "--holder", "h"},
		{"renew", "job", "--holder", "h", "--token", "zero"},
		{"members", "frob"},
		{"snapshot"},
	} {
		var out, errOut strings.Builder
		status := mainStatus(args, &out, &errOut)
		assert.Equal(t, exitUsage, status, "%q: %s", args, errOut.String())
		assert.NotEmpty(t, errOut.String(), "%q says why", args)
	}
	var out, errOut strings.Builder
	assert.Equal(t, exitOK, mainStatus([]string{"help"}, &out, &errOut))
	assert.Contains(t, out.String(), "run NAME")
}
