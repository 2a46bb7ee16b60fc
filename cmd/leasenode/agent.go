package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	metrics "github.com/armon/go-metrics"
	metricsprom "github.com/armon/go-metrics/prometheus"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/client"
	"github.com/raftlease/raftlease/cluster"
	"github.com/raftlease/raftlease/transport"
)

// HTTP server limits of the agent and dev mode.
const (
	maxBodyBytes = 64 << 10
	maxWait      = 5 * time.Minute
)

// cmdAgent runs `leasenode agent`: one member of a cluster, until SIGINT or
// SIGTERM.
func cmdAgent(args []string) error {
	cfg, err := parseAgentConfig(args, os.Getenv)
	if err != nil {
		return err
	}
	logger := newLogger("leasenode", cfg.LogLevel, cfg.LogFormat)
	raftTLS, httpTLS, err := cfg.TLS.nodeTLS()
	if err != nil {
		return err
	}
	var tokens []string
	if cfg.AuthTokenFile != "" {
		if tokens, err = readTokenFile("auth-token-file", cfg.AuthTokenFile); err != nil {
			return err
		}
	}
	opts := cfg.nodeOptions()
	opts.TLS = raftTLS
	opts.Logger = logger
	hooks, err := newUnsafeHooks(cfg, &opts, logger)
	if err != nil {
		return err
	}
	defer hooks.close()
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	restart := hasRaftState(cfg.DataDir)
	logger.Info("starting agent", cfg.describe()...)
	if !cfg.SkipDataCheck {
		if err := checkDataDirInChild(cfg.DataDir, logger); err != nil {
			return err
		}
	}
	logger.Info("timing", "profile", cfg.Profile, "worst_case_failover_delay", opts.WorstCaseFailoverDelay(),
		"note", "a Raft leader change may delay lease expiry by up to this much; it never brings expiry forward")

	srv := &server{logger: logger, httpAddr: cfg.HTTPAddr, httpTLS: httpTLS, tokens: tokens, shutdownTimeout: cfg.ShutdownTimeout}
	if err := srv.listen(); err != nil {
		return err
	}
	node, err := cluster.New(opts)
	if err != nil {
		srv.closeListener()
		return fmt.Errorf("agent: %w", err)
	}
	srv.node = node
	hooks.serve(node)
	if err := srv.serveHTTP(); err != nil {
		_ = node.Close()
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(cfg.Join) > 0 {
		members, _ := node.Members()
		switch {
		case restart && len(members) > 0:
			logger.Info("data dir has Raft state: restarting from it, not joining", "members", len(members))
		default:
			if err := joinCluster(ctx, logger, cfg, tokens, node); err != nil {
				if ctx.Err() != nil {
					logger.Info("signal received while joining: shutting down")
					return srv.shutdown()
				}
				_ = srv.shutdown()
				return err
			}
		}
	} else if !cfg.Bootstrap && !restart {
		logger.Warn("no --bootstrap, no --join and no Raft state: waiting to be added (leasenode members add)")
	}
	<-ctx.Done()
	stop()
	logger.Info("signal received: shutting down")
	return srv.shutdown()
}

// server is the HTTP API in front of a cluster node, shared by the agent
// and dev mode. Wiring only: the lease logic is the node's, the HTTP API
// the transport's.
type server struct {
	logger          hclog.Logger
	httpAddr        string
	httpTLS         *tls.Config
	tokens          []string
	shutdownTimeout time.Duration

	node    *cluster.Node
	ln      net.Listener
	http    *http.Server
	served  chan error
	cleanup []func()
}

// listen binds the HTTP port first, so a port in use fails before the node
// starts.
func (s *server) listen() error {
	ln, err := net.Listen("tcp", s.httpAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	if s.httpTLS != nil {
		ln = tls.NewListener(ln, s.httpTLS)
	}
	s.ln = ln
	return nil
}

func (s *server) closeListener() {
	if s.ln != nil {
		s.ln.Close()
	}
}

// serveHTTP builds the metrics registry and the API handler and serves.
func (s *server) serveHTTP() error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bridgeRaftMetrics(reg, s.logger)
	handler, err := transport.NewHandler(s.node, transport.HandlerOptions{
		AuthTokens:   s.tokens,
		Registry:     reg,
		Gatherer:     reg,
		Logger:       s.logger,
		MaxBodyBytes: maxBodyBytes,
		MaxWait:      maxWait,
	})
	if err != nil {
		s.closeListener()
		return fmt.Errorf("http handler: %w", err)
	}
	s.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          s.logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	s.served = make(chan error, 1)
	go func() { s.served <- s.http.Serve(s.ln) }()
	s.logger.Info("serving HTTP API", "addr", s.ln.Addr().String(), "tls", s.httpTLS != nil, "auth", len(s.tokens) > 0)
	return nil
}

// shutdown stops accepting HTTP requests (draining those in flight for a
// part of the shutdown timeout), then shuts the node down, handing
// leadership over when it leads.
func (s *server) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	var errs []error
	if s.http != nil {
		drain, cancelDrain := context.WithTimeout(ctx, s.shutdownTimeout/3)
		if err := s.http.Shutdown(drain); err != nil {
			// Blocking queries still waiting: cut them off.
			_ = s.http.Close()
		}
		cancelDrain()
		if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	if s.node != nil {
		wasLeader := s.node.IsLeader()
		if err := s.node.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("node shutdown: %w", err))
		}
		s.logger.Info("node stopped", "was_leader", wasLeader)
	}
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
	return errors.Join(errs...)
}

// bridgeRaftMetrics sends hashicorp/raft's go-metrics output (a global
// sink) to the Prometheus registry, once per process (STYLE rule 18).
func bridgeRaftMetrics(reg prometheus.Registerer, logger hclog.Logger) {
	sink, err := metricsprom.NewPrometheusSinkFrom(metricsprom.PrometheusOpts{Registerer: reg, Expiration: time.Minute})
	if err != nil {
		logger.Warn("raft metrics not exported", "error", err)
		return
	}
	cfg := metrics.DefaultConfig("raftlease_hashicorp")
	cfg.EnableHostname = false
	cfg.EnableRuntimeMetrics = false
	if _, err := metrics.NewGlobal(cfg, sink); err != nil {
		logger.Warn("raft metrics not exported", "error", err)
	}
}

// joinCluster asks a member (through the HTTP API, any of cfg.Join in turn)
// to add this node, retrying until it succeeds or --join-timeout passes.
func joinCluster(ctx context.Context, logger hclog.Logger, cfg agentConfig, tokens []string, node *cluster.Node) error {
	clientTLS, err := cfg.TLS.clientTLS()
	if err != nil {
		return err
	}
	endpoints, err := endpointsFor("join", cfg.Join, clientTLS != nil)
	if err != nil {
		return err
	}
	token := ""
	if len(tokens) > 0 {
		token = tokens[0] // members share the token file
	}
	c, err := client.New(client.Options{Endpoints: endpoints, Token: token, TLS: clientTLS, Logger: logger.Named("join")})
	if err != nil {
		return fmt.Errorf("--join: %w", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, cfg.JoinTimeout)
	defer cancel()
	me := transport.MemberJSON{ID: cfg.ID, RaftAddr: node.Addr(), HTTPAddr: cfg.advertisedHTTP(), Voter: true}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.AddMember(ctx, me)
		if err == nil {
			logger.Info("joined the cluster", "through", fmt.Sprint(endpoints), "attempts", attempt)
			return nil
		}
		if !retryableJoin(err) {
			return fmt.Errorf("join through %v: %w", endpoints, err)
		}
		logger.Warn("join failed; retrying", "error", err, "attempt", attempt)
		select {
		case <-ctx.Done():
			return fmt.Errorf("join through %v: gave up after %v: %w", endpoints, cfg.JoinTimeout, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// retryableJoin: a member not up yet or without a leader is worth waiting
// for; a refusal (bad id, bad token) is not.
func retryableJoin(err error) bool {
	switch {
	case errors.Is(err, raftlease.ErrInvalidArgument), errors.Is(err, transport.ErrUnauthorized):
		return false
	}
	return true
}
