package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/raftlease/raftlease/cluster"
)

// devConfig is `leasenode dev`'s command line.
type devConfig struct {
	HTTPAddr  string
	LogLevel  string
	LogFormat string
}

func parseDevConfig(args []string, getenv func(string) string) (devConfig, error) {
	c := devConfig{}
	fs := newFlagSet("dev")
	fs.StringVar(&c.HTTPAddr, "http-addr", defaultHTTPAddr, "host:port to serve the HTTP API on")
	fs.StringVar(&c.LogLevel, "log-level", "error", "log level: trace, debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	if err := applyEnv(fs, map[string]string{"log-level": envName("log-level"), "log-format": envName("log-format")}, getenv); err != nil {
		return c, err
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return c, err
	}
	if len(rest) > 0 {
		return c, usagef("dev: unexpected argument %q", rest[0])
	}
	var errs []error
	errs = append(errs, checkHostPort("http-addr", c.HTTPAddr))
	if _, err := parseLogLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, oneOf("log-format", c.LogFormat, "text", "json"))
	return c, joinErrs(errs)
}

// cmdDev runs `leasenode dev`: a single node for trying things out. It is a
// real cluster node bootstrapped on its own, with its Raft log in a
// temporary directory that is removed on exit, so from the user's point
// of view it is in memory: nothing survives the process.
func cmdDev(args []string) error {
	cfg, err := parseDevConfig(args, os.Getenv)
	if err != nil {
		return err
	}
	logger := newLogger("leasenode-dev", cfg.LogLevel, cfg.LogFormat)
	dir, err := os.MkdirTemp("", "leasenode-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	opts := cluster.LocalOptions()
	opts.ID = "dev"
	opts.DataDir = dir
	opts.BindAddr = "127.0.0.1:0"
	opts.APIAddr = cfg.HTTPAddr
	opts.Bootstrap = true
	opts.NoSync = true // the log is thrown away on exit anyway
	opts.Logger = logger

	srv := &server{logger: logger, httpAddr: cfg.HTTPAddr, shutdownTimeout: 2 * time.Second}
	if err := srv.listen(); err != nil {
		return err
	}
	node, err := cluster.New(opts)
	if err != nil {
		srv.closeListener()
		return err
	}
	srv.node = node
	if err := srv.serveHTTP(); err != nil {
		_ = node.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A single voter elects itself within a couple of election timeouts.
	ready, cancel := context.WithTimeout(ctx, 10*time.Second)
	for !node.IsLeader() && ready.Err() == nil {
		select {
		case <-ready.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if !node.IsLeader() && ctx.Err() == nil {
		_ = srv.shutdown()
		return fmt.Errorf("dev: the node did not become leader")
	}
	addr := srv.ln.Addr().String()
	fmt.Printf(`leasenode dev: a single in-memory node is serving on http://%[1]s
  nothing is kept: the state goes away when this process ends (Ctrl-C)

try:
  curl -s -X POST http://%[1]s/v1/leases/my-job/acquire -d '{"holder":"me","ttl":"30s"}'
  curl -s http://%[1]s/v1/leases/my-job
  leasenode --addr %[1]s list
`, addr)
	<-ctx.Done()
	stop()
	return srv.shutdown()
}
