package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/elector"
)

// Environment variables `leasenode run` sets for CMD.
const (
	envChildToken  = "LEASENODE_TOKEN"  // the fencing token of the term CMD runs in
	envChildLease  = "LEASENODE_LEASE"  // the lease name
	envChildHolder = "LEASENODE_HOLDER" // the holder id
)

// reapAllowance is how long before the holder-side deadline (safe-until)
// `run` sends SIGKILL at the latest, so that CMD is gone, not merely
// signalled, when the deadline passes.
const reapAllowance = 250 * time.Millisecond

// runConfig is `leasenode run`'s command line.
type runConfig struct {
	Name     string
	Election electionFlags
	Grace    time.Duration
	LogLevel string
	Command  []string
}

// parseRunConfig parses `run` arguments and returns them with the elector
// options they make.
func parseRunConfig(g *globalFlags, args []string) (runConfig, elector.Options, error) {
	var c runConfig
	var none elector.Options
	own, command, found := splitCommand(args)
	fs := g.commandFlags("run", true)
	c.Election.register(fs, 10*time.Second)
	fs.DurationVar(&c.Grace, "grace", 2*time.Second, "time CMD has between SIGTERM and SIGKILL")
	fs.StringVar(&c.LogLevel, "log-level", "warn", "log level of run's own messages on stderr")
	pos, err := g.parse(fs, own)
	if err != nil {
		return c, none, err
	}
	if !found || len(command) == 0 {
		return c, none, usagef("run: the command to run goes after --: leasenode run NAME [flags] -- CMD ARGS...")
	}
	c.Command = command
	if c.Name, err = nameArg("run", pos); err != nil {
		return c, none, err
	}
	if _, err := parseLogLevel(c.LogLevel); err != nil {
		return c, none, err
	}
	opts, err := c.Election.options(c.Name)
	if err != nil {
		return c, none, err
	}
	if err := checkGrace(c.Grace, opts); err != nil {
		return c, none, err
	}
	return c, opts, nil
}

// checkGrace makes sure stopping CMD (SIGTERM at safe-until − grace −
// reapAllowance, SIGKILL at safe-until − reapAllowance) never starts while
// a healthy leader's renewal may still be on its way: that renewal lands
// by its send time + RenewInterval + OperationTimeout, and the window
// after each send is SafeWindow.
func checkGrace(grace time.Duration, o elector.Options) error {
	if grace < 0 {
		return usagef("run: --grace must not be negative, is %v", grace)
	}
	room := o.SafeWindow() - o.RenewInterval - o.OperationTimeout - reapAllowance
	if grace >= room {
		return usagef("run: --grace %v is too long for --ttl %v: CMD must be stopped before the holder-side deadline, "+
			"and stopping may start only after a healthy renewal had its chance; with this TTL --grace must be under %v "+
			"(raise --ttl for a longer grace)", grace, o.LeaseDuration, room.Round(time.Millisecond))
	}
	return nil
}

// cmdRun acquires the lease through an elector, runs CMD while it is held
// (renewing it), and stops CMD so that it is gone before the holder-side
// deadline passes without a renewal (DESIGN.md, "Time" rule 4).
//
// Exit status: CMD's own when it exits by itself (128+N if it died of
// signal N), after releasing the lease; exitLeaseLost (75) when the lease
// was lost or its renewal overdue and CMD was stopped;
// exitInterrupted (130) when interrupted before CMD started.
func cmdRun(g *globalFlags, args []string) error {
	cfg, opts, err := parseRunConfig(g, args)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath(cfg.Command[0]); err != nil {
		return &exitError{status: exitNotFound, err: fmt.Errorf("run: %w", err)}
	}
	logger := newLogger("leasenode-run", cfg.LogLevel, "text")
	opts.Logger = logger
	c, err := g.newStore()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := preflight(g, c, cfg.Name); err != nil {
		return err
	}

	// OnElected hands each term's context to the supervisor and returns:
	// the supervisor below stops CMD before that context ends.
	terms := make(chan context.Context, 1)
	opts.OnElected = func(ctx context.Context) {
		select {
		case terms <- ctx:
		case <-ctx.Done():
		}
	}
	e, err := elector.New(c, opts)
	if err != nil {
		return usagef("run: %v", err)
	}
	// Signals to run are CMD's: they are forwarded once it runs.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	if err := e.Start(); err != nil {
		return err
	}
	stopElector := func() {
		ctx, cancel := context.WithTimeout(context.Background(), opts.OperationTimeout+time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			logger.Warn("stopping the elector", "error", err)
		}
	}
	logger.Info("waiting for the lease", "lease", cfg.Name, "holder", opts.Holder, "ttl", opts.LeaseDuration)

	// Wait for leadership.
	var termCtx context.Context
	var token uint64
	for termCtx == nil {
		select {
		case ctx := <-terms:
			tok, _ := elector.TokenFromContext(ctx)
			if _, current, ok := e.SafeUntil(); ok && current == tok && ctx.Err() == nil {
				termCtx, token = ctx, tok
			}
		case sig := <-sigs:
			if sig == syscall.SIGINT || sig == syscall.SIGTERM || sig == syscall.SIGHUP {
				stopElector()
				fmt.Fprintf(g.stderr, "leasenode run: interrupted by %v while waiting for %s\n", sig, cfg.Name)
				return &exitError{status: exitInterrupted}
			}
		}
	}

	child, err := startChild(cfg.Command, append(os.Environ(),
		envChildToken+"="+strconv.FormatUint(token, 10),
		envChildLease+"="+cfg.Name,
		envChildHolder+"="+opts.Holder,
	))
	if err != nil {
		stopElector()
		return &exitError{status: exitCannotRun, err: fmt.Errorf("run: start %s: %w", cfg.Command[0], err)}
	}
	logger.Info("leader: started command", "lease", cfg.Name, "token", token, "pid", child.pid())

	outcome := supervise(e, child, termCtx, token, cfg.Grace, sigs, logger)
	stopElector() // releases the lease (ReleaseOnStop) if still held
	if outcome.lost {
		fmt.Fprintf(g.stderr, "leasenode run: lease %s lost (%s); %s was stopped before the holder-side deadline\n", cfg.Name, outcome.reason, cfg.Command[0])
		return &exitError{status: exitLeaseLost}
	}
	return &exitError{status: outcome.status}
}

// preflight checks that the cluster answers and accepts the credentials, so
// that a bad token or address fails at once instead of being retried
// forever by the elector.
func preflight(g *globalFlags, c raftlease.Store, name string) error {
	ctx, cancel := g.opContext()
	defer cancel()
	_, err := c.Get(ctx, name, raftlease.ReadOptions{Stale: true})
	switch {
	case err == nil, errors.Is(err, raftlease.ErrNotFound), raftlease.IsRetryable(err):
		return nil
	}
	return err
}

// outcome is how the supervision of one CMD ended.
type outcome struct {
	lost   bool   // the lease was lost or its renewal overdue
	reason string // why, when lost
	status int    // CMD's exit status, when it exited by itself
}

// supervise runs until CMD is gone. It stops CMD (SIGTERM to its process
// group, SIGKILL when the grace ends) when the term ends, or — ahead of the
// elector's own deadline — at safe-until − grace − reapAllowance when no
// renewal has moved safe-until past that point, so that CMD is gone before
// safe-until. Signals received meanwhile go to CMD.
func supervise(e *elector.Elector, child *child, termCtx context.Context, token uint64, grace time.Duration, sigs <-chan os.Signal, logger hclog.Logger) outcome {
	var until time.Time // the last safe-until seen for this term
	for {
		u, current, ok := e.SafeUntil()
		if !ok || current != token {
			return stopChild(child, until, grace, "the leadership term ended", logger)
		}
		until = u
		stopAt := until.Add(-grace - reapAllowance)
		wait := time.Until(stopAt)
		if wait <= 0 {
			return stopChild(child, until, grace, "no successful renewal: safe-until "+until.Format("15:04:05.000")+" is near", logger)
		}
		timer := time.NewTimer(wait)
		select {
		case <-child.done:
			timer.Stop()
			child.killGroup() // leftovers of CMD's process group go with it
			return outcome{status: child.exitStatus()}
		case <-termCtx.Done():
			timer.Stop()
			return stopChild(child, until, grace, "the leadership term ended", logger)
		case sig := <-sigs:
			timer.Stop()
			logger.Info("forwarding signal", "signal", sig)
			child.signal(sig)
		case <-timer.C:
			// Read safe-until again: a renewal may have moved it.
		}
	}
}

// stopChild stops CMD: SIGTERM to its process group now, SIGKILL when the
// grace ends, and at the latest reapAllowance before until (when known).
func stopChild(child *child, until time.Time, grace time.Duration, reason string, logger hclog.Logger) outcome {
	killAt := time.Now().Add(grace)
	if !until.IsZero() {
		if latest := until.Add(-reapAllowance); latest.Before(killAt) {
			killAt = latest
		}
	}
	logger.Warn("stopping command", "reason", reason, "kill_in", time.Until(killAt).Round(time.Millisecond))
	child.signal(syscall.SIGTERM)
	timer := time.NewTimer(max(time.Until(killAt), 0))
	defer timer.Stop()
	select {
	case <-child.done:
	case <-timer.C:
		logger.Warn("command still running at the end of its grace: SIGKILL")
		child.signal(syscall.SIGKILL)
		<-child.done
	}
	child.killGroup()
	return outcome{lost: true, reason: reason}
}
