package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/raftlease/raftlease/elector"
)

// electionFlags are the flags campaign and run share.
type electionFlags struct {
	Holder  string
	TTL     time.Duration
	Profile string
	Meta    metaFlag
}

func (f *electionFlags) register(fs *flag.FlagSet, defaultTTL time.Duration) {
	f.Meta = metaFlag{}
	fs.StringVar(&f.Holder, "holder", "", "this participant's id (default: hostname:pid)")
	fs.DurationVar(&f.TTL, "ttl", defaultTTL, "lease TTL; the profile's timings are scaled to it (0: the profile's own)")
	fs.StringVar(&f.Profile, "profile", "balanced", "elector timing profile: fast (2s lease), balanced (10s) or low (60s traffic-saving)")
	fs.Var(f.Meta, "meta", "metadata key=value the leader advertises (repeatable)")
}

// defaultHolder is hostname:pid.
func defaultHolder() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return host + ":" + strconv.Itoa(os.Getpid())
}

// options returns the elector options: the named profile, with every
// duration scaled by TTL / the profile's LeaseDuration so the ratios that
// make the profile safe stay as they are. The elector validates them.
func (f *electionFlags) options(name string) (elector.Options, error) {
	var o elector.Options
	switch f.Profile {
	case "fast":
		o = elector.FastFailover()
	case "balanced":
		o = elector.Balanced()
	case "low":
		o = elector.LowTraffic()
	default:
		return o, usagef("--profile %q: want fast, balanced or low", f.Profile)
	}
	if f.TTL < 0 {
		return o, usagef("--ttl must not be negative, is %v", f.TTL)
	}
	if f.TTL != 0 && f.TTL != o.LeaseDuration {
		scale := func(d time.Duration) time.Duration {
			return time.Duration(float64(d) * float64(f.TTL) / float64(o.LeaseDuration))
		}
		o.RenewInterval = scale(o.RenewInterval)
		o.RetryInterval = scale(o.RetryInterval)
		o.OperationTimeout = scale(o.OperationTimeout)
		o.SafetyMargin = scale(o.SafetyMargin)
		o.LeaseDuration = f.TTL
	}
	o.Name = name
	o.Holder = f.Holder
	if o.Holder == "" {
		o.Holder = defaultHolder()
	}
	if len(f.Meta) > 0 {
		o.Metadata = f.Meta
	}
	o.ReleaseOnStop = true
	if err := o.Validate(); err != nil {
		return o, usagef("election options (from --ttl %v and --profile %s): %v", o.LeaseDuration, f.Profile, err)
	}
	return o, nil
}

// changeJSON is one line of `campaign -o json`.
type changeJSON struct {
	Time   time.Time `json:"time"`
	Event  string    `json:"event"` // gained, lost, leader, vacant
	Lease  string    `json:"lease"`
	Holder string    `json:"holder"` // this participant
	// Token is this participant's token on gained and lost.
	Token uint64 `json:"token,omitempty"`
	// Leader and LeaderToken name the leader as this participant sees it
	// after the change (empty when vacant).
	Leader      string `json:"leader,omitempty"`
	LeaderToken uint64 `json:"leader_token,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Revision    uint64 `json:"revision,omitempty"`
}

func describeChange(name, holder string, c elector.Change) changeJSON {
	out := changeJSON{Time: c.At, Lease: name, Holder: holder, Reason: c.Reason, Revision: c.Revision,
		Leader: c.Current.Holder, LeaderToken: c.Current.Token}
	switch {
	case c.Gained:
		out.Event, out.Token = "gained", c.Current.Token
	case c.Lost:
		out.Event, out.Token = "lost", c.Previous.Token
	case c.Current.Vacant():
		out.Event = "vacant"
	default:
		out.Event = "leader"
	}
	return out
}

func (g *globalFlags) printChange(c changeJSON) error {
	if g.json() {
		return printJSON(g.stdout, c)
	}
	ts := c.Time.Format("15:04:05.000")
	var line string
	switch c.Event {
	case "gained":
		line = fmt.Sprintf("%s %s GAINED leadership of %s with token %d", ts, c.Holder, c.Lease, c.Token)
	case "lost":
		line = fmt.Sprintf("%s %s LOST leadership of %s (token %d): %s", ts, c.Holder, c.Lease, c.Token, c.Reason)
		if c.Leader != "" {
			line += fmt.Sprintf("; leader now %s (token %d)", c.Leader, c.LeaderToken)
		}
	case "vacant":
		line = fmt.Sprintf("%s %s sees %s vacant (%s)", ts, c.Holder, c.Lease, c.Reason)
	default:
		line = fmt.Sprintf("%s %s sees leader %s with token %d (%s)", ts, c.Holder, c.Leader, c.LeaderToken, c.Reason)
	}
	_, err := fmt.Fprintln(g.stdout, line)
	return err
}

// cmdCampaign takes part in an election until SIGINT or SIGTERM, printing
// one line per change: gained and lost leadership with the token, and the
// leader other participants won. On the way out it releases the lease if
// it holds it.
func cmdCampaign(g *globalFlags, args []string) error {
	fs := g.commandFlags("campaign", true)
	var ef electionFlags
	ef.register(fs, 0)
	logLevel := fs.String("log-level", "warn", "log level of the elector's messages on stderr")
	pos, err := g.parse(fs, args)
	if err != nil {
		return err
	}
	name, err := nameArg("campaign", pos)
	if err != nil {
		return err
	}
	opts, err := ef.options(name)
	if err != nil {
		return err
	}
	if _, err := parseLogLevel(*logLevel); err != nil {
		return err
	}
	opts.Logger = newLogger("leasenode-campaign", *logLevel, "text")
	c, err := g.newStore()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := preflight(g, c, name); err != nil {
		return err
	}
	e, err := elector.New(c, opts)
	if err != nil {
		return usagef("campaign: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	changes := e.Subscribe(context.Background())
	if err := e.Start(); err != nil {
		return err
	}
	if !g.json() {
		fmt.Fprintf(g.stderr, "leasenode campaign: %s campaigning for %s (ttl %v, worst-case failover %v); Ctrl-C to stop\n",
			opts.Holder, name, opts.LeaseDuration, opts.WorstCaseFailover())
	}
	for {
		select {
		case <-ctx.Done():
			stop()
			stopCtx, cancel := context.WithTimeout(context.Background(), opts.OperationTimeout+time.Second)
			err := e.Stop(stopCtx)
			cancel()
			for ch := range changes {
				_ = g.printChange(describeChange(name, opts.Holder, ch))
			}
			return err
		case ch, ok := <-changes:
			if !ok {
				// The elector stopped by itself: the store refused for good.
				return e.Stop(context.Background())
			}
			if err := g.printChange(describeChange(name, opts.Holder, ch)); err != nil {
				return err
			}
		}
	}
}
