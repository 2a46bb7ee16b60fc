package main

import (
	"bufio"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/cluster"
)

// Defaults shared by the agent, dev mode and the CLI.
const (
	defaultHTTPAddr = "127.0.0.1:7070"
	defaultRaftAddr = "127.0.0.1:7080"
)

// agentConfig is the agent's command line, parsed and checked.
type agentConfig struct {
	ID            string
	DataDir       string
	RaftAddr      string // bind
	RaftAdvertise string // what peers dial; empty: RaftAddr
	HTTPAddr      string // bind
	HTTPAdvertise string // what clients and peers are told; empty: HTTPAddr
	Bootstrap     bool
	Join          []string // host:port or http(s)://host:port of members
	JoinTimeout   time.Duration

	TLS           tlsFiles
	AuthTokenFile string

	LogLevel  string
	LogFormat string
	Profile   string

	ShutdownTimeout time.Duration

	// SnapshotThreshold and SnapshotInterval override the profile's log
	// compaction settings when non-zero.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs overrides how many log entries stay after a snapshot
	// when non-zero (fewer: a lagging follower is sent a snapshot sooner).
	TrailingLogs uint64

	// UnsafeTestHooks, when set, is the address of the control endpoint of
	// the UNSAFE fault-injection hooks (agent_hooks.go); UnsafeStaleReads
	// turns on their stale-read negative control from the start.
	UnsafeTestHooks  string
	UnsafeStaleReads bool

	// SkipDataCheck skips the pre-start check of the data dir in a child
	// process (leasenode check-data).
	SkipDataCheck bool
}

// agentFlags declares the agent's flags on fs, filling c.
func agentFlags(fs *flag.FlagSet, c *agentConfig) {
	fs.StringVar(&c.ID, "id", "", "this node's unique, stable id (required)")
	fs.StringVar(&c.DataDir, "data-dir", "", "directory for the Raft log and snapshots, private to this node (required)")
	fs.StringVar(&c.RaftAddr, "raft-addr", defaultRaftAddr, "host:port to bind for Raft and node-to-node traffic")
	fs.StringVar(&c.RaftAdvertise, "raft-advertise", "", "host:port other nodes dial for Raft (default: --raft-addr)")
	fs.StringVar(&c.HTTPAddr, "http-addr", defaultHTTPAddr, "host:port to bind for the HTTP API")
	fs.StringVar(&c.HTTPAdvertise, "http-advertise", "", "host:port clients and other nodes are told for the HTTP API (default: --http-addr)")
	fs.BoolVar(&c.Bootstrap, "bootstrap", false, "start a new cluster with this node as its only voter (ignored when the data dir has Raft state)")
	fs.Var((*listFlag)(&c.Join), "join", "HTTP address of a cluster member to join through (host:port or http(s)://host:port; comma-separated list tried in turn; skipped when the data dir has Raft state)")
	fs.DurationVar(&c.JoinTimeout, "join-timeout", 60*time.Second, "how long to keep trying to join before giving up")
	tlsFlags(fs, &c.TLS, "this node's certificate (mutual TLS on Raft and HTTP)")
	fs.StringVar(&c.AuthTokenFile, "auth-token-file", "", "file of bearer tokens, one per line; when set, the HTTP client API requires one")
	fs.BoolVar(&c.SkipDataCheck, "skip-data-check", false, "do not check the data dir (bolt pages, snapshot checksums) in a child process before starting")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.Profile, "profile", "lan", "timing profile: lan (elections within about a second) or local (one machine: fast elections)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long to drain HTTP and hand over leadership")
	fs.Uint64Var(&c.SnapshotThreshold, "snapshot-threshold", 0, "log entries since the last snapshot that trigger a new one (0: the profile's)")
	fs.Uint64Var(&c.TrailingLogs, "trailing-logs", 0, "log entries kept after a snapshot, for followers that lag (0: the profile's); a follower further behind is sent the snapshot")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", 0, "how often to check whether to snapshot (0: the profile's)")
	fs.StringVar(&c.UnsafeTestHooks, "unsafe-test-hooks", "", "UNSAFE, for the jepsen harness only: serve fault-injection hooks (clock skew, link cuts, crash points, log store faults) on this host:port; never in production")
	fs.BoolVar(&c.UnsafeStaleReads, "unsafe-stale-reads", false, "UNSAFE negative control, needs --unsafe-test-hooks: answer linearizable reads from the local replica without confirming leadership")
}

// parseAgentConfig parses `leasenode agent` arguments, with every flag
// also settable through its LEASENODE_ variable (the flag wins), and
// checks them against each other. Errors are usage errors naming the flag.
func parseAgentConfig(args []string, getenv func(string) string) (agentConfig, error) {
	var c agentConfig
	fs := newFlagSet("agent")
	agentFlags(fs, &c)
	if err := applyEnv(fs, allEnv(fs), getenv); err != nil {
		return c, err
	}
	// --join from the environment and from flags must not add up: a flag
	// replaces the variable's list.
	envJoin := c.Join
	c.Join = nil
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return c, err
	}
	if !flagSet(fs, "join") {
		c.Join = envJoin
	}
	if len(rest) > 0 {
		return c, usagef("agent: unexpected argument %q (every setting is a flag)", rest[0])
	}
	return c, c.validate()
}

// flagSet reports whether the named flag was set on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// validate reports every problem with the configuration, each naming its
// flag.
func (c agentConfig) validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, usagef("--id is required (this node's unique id)"))
	} else if err := raftlease.ValidateHolder(c.ID); err != nil {
		errs = append(errs, usagef("--id %q: %s", c.ID, fieldReason(err)))
	}
	if c.DataDir == "" {
		errs = append(errs, usagef("--data-dir is required"))
	}
	if c.Bootstrap && len(c.Join) > 0 {
		errs = append(errs, usagef("--bootstrap and --join conflict: bootstrap starts a new cluster, join enters an existing one"))
	}
	errs = append(errs, checkBindAdvertise("raft-addr", c.RaftAddr, "raft-advertise", c.RaftAdvertise))
	errs = append(errs, checkBindAdvertise("http-addr", c.HTTPAddr, "http-advertise", c.HTTPAdvertise))
	for _, j := range c.Join {
		if _, _, err := normalizeEndpoint("join", j); err != nil {
			errs = append(errs, err)
		}
	}
	if c.JoinTimeout <= 0 {
		errs = append(errs, usagef("--join-timeout must be positive, is %v", c.JoinTimeout))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, usagef("--shutdown-timeout must be positive, is %v", c.ShutdownTimeout))
	}
	errs = append(errs, c.TLS.validate(true))
	if _, err := parseLogLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, oneOf("log-format", c.LogFormat, "text", "json"))
	errs = append(errs, oneOf("profile", c.Profile, "lan", "local"))
	if c.SnapshotInterval < 0 {
		errs = append(errs, usagef("--snapshot-interval must not be negative, is %v", c.SnapshotInterval))
	}
	if c.UnsafeTestHooks != "" {
		errs = append(errs, checkHostPort("unsafe-test-hooks", c.UnsafeTestHooks))
	} else if c.UnsafeStaleReads {
		errs = append(errs, usagef("--unsafe-stale-reads needs --unsafe-test-hooks"))
	}
	return errors.Join(errs...)
}

func checkBindAdvertise(bindFlag, bind, advFlag, adv string) error {
	if err := checkHostPort(bindFlag, bind); err != nil {
		return err
	}
	if adv != "" {
		if err := checkHostPort(advFlag, adv); err != nil {
			return err
		}
		if unspecifiedHost(adv) {
			return usagef("--%s %q must name an address others can dial", advFlag, adv)
		}
		return nil
	}
	if unspecifiedHost(bind) {
		return usagef("--%s %q listens on all interfaces: set --%s to the address others dial", bindFlag, bind, advFlag)
	}
	return nil
}

// fieldReason returns the reason of a root FieldError, or the error text.
func fieldReason(err error) string {
	var fe *raftlease.FieldError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return err.Error()
}

func parseLogLevel(s string) (hclog.Level, error) {
	switch strings.ToLower(s) {
	case "trace":
		return hclog.Trace, nil
	case "debug":
		return hclog.Debug, nil
	case "info":
		return hclog.Info, nil
	case "warn", "warning":
		return hclog.Warn, nil
	case "error":
		return hclog.Error, nil
	}
	return hclog.NoLevel, usagef("--log-level %q: want trace, debug, info, warn or error", s)
}

// newLogger builds the process's logger on stderr.
func newLogger(name, level, format string) hclog.Logger {
	lvl, err := parseLogLevel(level)
	if err != nil {
		lvl = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      lvl,
		JSONFormat: format == "json",
		Output:     os.Stderr,
		TimeFormat: "2006-01-02T15:04:05.000Z07:00",
	})
}

// advertisedRaft and advertisedHTTP are the addresses others are told.
func (c agentConfig) advertisedRaft() string {
	if c.RaftAdvertise != "" {
		return c.RaftAdvertise
	}
	return c.RaftAddr
}

func (c agentConfig) advertisedHTTP() string {
	if c.HTTPAdvertise != "" {
		return c.HTTPAdvertise
	}
	return c.HTTPAddr
}

// nodeOptions turns the configuration into the cluster node's options
// (without TLS and logger, which need files read and a logger built).
func (c agentConfig) nodeOptions() cluster.Options {
	o := cluster.DefaultOptions()
	if c.Profile == "local" {
		o = cluster.LocalOptions()
	}
	o.ID = c.ID
	o.DataDir = c.DataDir
	o.BindAddr = c.RaftAddr
	o.AdvertiseAddr = c.RaftAdvertise
	o.APIAddr = c.advertisedHTTP()
	o.Bootstrap = c.Bootstrap
	if c.SnapshotThreshold > 0 {
		o.SnapshotThreshold = c.SnapshotThreshold
	}
	if c.SnapshotInterval > 0 {
		o.SnapshotInterval = c.SnapshotInterval
	}
	if c.TrailingLogs > 0 {
		o.TrailingLogs = c.TrailingLogs
	}
	return o
}

// hasRaftState reports whether dir already holds a node's Raft log, so the
// node restarts from it rather than joining again.
func hasRaftState(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "raft.db"))
	return err == nil && st.Size() > 0
}

// readTokenFile reads bearer tokens, one per line; blank lines and lines
// starting with # are skipped. A file without a token is an error, since
// it would lock every client out.
func readTokenFile(flagName, path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("--%s: %v", flagName, err)
	}
	defer f.Close()
	var tokens []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, usagef("--%s %s: a token must not contain spaces", flagName, path)
		}
		tokens = append(tokens, line)
	}
	if err := sc.Err(); err != nil {
		return nil, usagef("--%s %s: %v", flagName, path, err)
	}
	if len(tokens) == 0 {
		return nil, usagef("--%s %s holds no token", flagName, path)
	}
	return tokens, nil
}

// describe is the configuration for the start-up log line.
func (c agentConfig) describe() []any {
	return []any{
		"id", c.ID, "data_dir", c.DataDir, "raft_addr", c.advertisedRaft(), "http_addr", c.advertisedHTTP(),
		"bootstrap", c.Bootstrap, "join", strings.Join(c.Join, ","), "tls", c.TLS.enabled(),
		"auth", c.AuthTokenFile != "", "profile", c.Profile, "unsafe_test_hooks", c.UnsafeTestHooks != "",
	}
}
