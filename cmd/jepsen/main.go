// Command jepsen runs raftlease's fault-injection harness against real
// leasenode processes (docs/reliability.md).
//
//	jepsen run [--family F[,F...]|short|all] [--seed S] [--runs N] [--duration D]
//	           [--nodes 3|5] [--out DIR] [--mode auto|netns|hooks] [--leasenode PATH]
//	jepsen redis [--seed S] [--runs N] [--duration D] [--out DIR] [--redis-server PATH]
//	jepsen check DIR
//	jepsen table DIR...
//	jepsen participant ...   (started by `run`: one elector participant)
//
// `run` makes N seeded runs per family, each in its own directory under
// --out, prints one summary line per run and exits 1 when any run is
// invalid or a negative control goes undetected. `check` replays a run
// directory offline and rewrites its report. `redis` makes the Redis
// comparison runs (docs/redis.md): a comparison, not a gate, it exits 0
// when every run completed and was checked, whatever the checkers found.
//
// Wiring only: the harness is package jepsen/driver.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/raftlease/raftlease/jepsen"
	"github.com/raftlease/raftlease/jepsen/driver"
	"github.com/raftlease/raftlease/jepsen/nemesis"
)

func main() {
	os.Exit(mainStatus(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  jepsen run [--family F[,F...]|short|all] [--seed S] [--runs N] [--duration D]
             [--nodes 3|5] [--out DIR] [--mode auto|netns|hooks] [--leasenode PATH] [-v]
  jepsen redis [--seed S] [--runs N] [--duration D] [--out DIR] [--redis-server PATH] [-v]
                           (the Redis comparison, docs/redis.md: exit 0 when every run was checked,
                            whatever its checkers found; it is a comparison, not a gate)
  jepsen check DIR
  jepsen table DIR...      (a Markdown table of the runs under DIR..., for docs/reliability.md)
families: `+strings.Join(familyNames(), ", ")+`
  short: `+strings.Join(shortFamilies(), ", ")+`
exit status: 0 every run valid and every negative control detected, 1 otherwise, 2 usage.
See docs/reliability.md.
`)
}

func mainStatus(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stdout, stderr)
	case "check":
		err = cmdCheck(args[1:], stdout)
	case "redis":
		err = cmdRedis(ctx, args[1:], stdout, stderr)
	case "participant":
		err = cmdParticipant(ctx, args[1:])
	case "table":
		if len(args) < 2 {
			err = usageError{"table: want run directories (or directories holding them)"}
			break
		}
		err = driver.Table(stdout, args[1:]...)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "jepsen: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "jepsen:", err)
		return 2
	case errors.Is(err, errFailed):
		return 1
	default:
		fmt.Fprintln(stderr, "jepsen:", err)
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// errFailed: some run was invalid (already reported).
var errFailed = errors.New("a run failed")

// familyNames lists what --family takes.
func familyNames() []string {
	var out []string
	for _, f := range nemesis.Families() {
		if f != nemesis.FamilyClockBeyond {
			out = append(out, string(f))
		}
	}
	for _, c := range driver.Controls() {
		out = append(out, c.Name)
	}
	return out
}

// shortFamilies is what `make jepsen-short` runs: every family with a
// fault, then the negative controls.
func shortFamilies() []string {
	var out []string
	for _, f := range familyNames() {
		if f != string(nemesis.FamilyNone) {
			out = append(out, f)
		}
	}
	return out
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	family := fs.String("family", "partition", "family, comma-separated families, short or all")
	seed := fs.Uint64("seed", 0, "seed of the first run (0: random); run i uses seed+i")
	runs := fs.Int("runs", 1, "runs per family")
	duration := fs.Duration("duration", time.Minute, "duration of each run")
	nodes := fs.Int("nodes", 3, "cluster size: 3 or 5")
	out := fs.String("out", "jepsen-runs", "directory for the run directories")
	mode := fs.String("mode", "auto", "partitions: netns (root: namespaces and iptables), hooks (in-process fault layer) or auto")
	leasenode := fs.String("leasenode", "", "leasenode binary (default: next to this one, else go build)")
	verbose := fs.Bool("v", false, "print the driver's progress")
	if help, err := parseCommand(fs, args, stdout); help || err != nil {
		return err
	}
	var families []string
	switch *family {
	case "short":
		families = shortFamilies()
	case "all":
		families = familyNames()
	default:
		for _, f := range strings.Split(*family, ",") {
			f = strings.TrimSpace(f)
			if _, ok := driver.ControlNamed(f); !ok && !nemesis.Family(f).Valid() {
				return usageError{fmt.Sprintf("run: unknown family %q (want one of %s)", f, strings.Join(familyNames(), ", "))}
			}
			families = append(families, f)
		}
	}
	if *runs < 1 {
		return usageError{"run: --runs must be at least 1"}
	}
	switch *mode {
	case "auto":
		*mode = driver.ModeNetns
		if err := driver.NetnsAvailable(); err != nil {
			*mode = driver.ModeHooks
			fmt.Fprintf(stderr, "jepsen: --mode auto: using the hooks mode (partitions through the nodes' fault layer), because the namespace mode is not available: %v\n", err)
		}
	case driver.ModeNetns:
		if err := driver.NetnsAvailable(); err != nil {
			return usageError{"run: --mode netns: " + err.Error()}
		}
	case driver.ModeHooks:
	default:
		return usageError{fmt.Sprintf("run: --mode %q: want auto, netns or hooks", *mode)}
	}
	if *seed == 0 {
		*seed = nemesis.NewSeed() % 1_000_000_000
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	bin := *leasenode
	if bin == "" {
		bin, err = findLeasenode(ctx, self, *out, stderr)
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "jepsen: %d run(s) of %s, %v each, %d nodes, mode %s, first seed %d\n",
		*runs*len(families), strings.Join(families, ","), *duration, *nodes, *mode, *seed)
	begin := time.Now()
	failed := 0
	total := 0
	for _, f := range families {
		for i := range *runs {
			if ctx.Err() != nil {
				break
			}
			s := *seed + uint64(i)
			dir := filepath.Join(*out, fmt.Sprintf("%s-%s-%d", time.Now().Format("20060102-150405"), f, s))
			cfg := driver.Config{Family: f, Seed: s, Duration: *duration, Nodes: *nodes, Dir: dir, Mode: *mode,
				Leasenode: bin, Participant: []string{self, "participant"}}
			if *verbose {
				cfg.Log = stderr
			}
			total++
			o, err := driver.Run(ctx, cfg)
			if err != nil {
				fmt.Fprintf(stderr, "jepsen: run %s seed %d: %v\n", f, s, err)
			}
			if o.Line == "" {
				o.Line = fmt.Sprintf("run seed=%d family=%s FAIL (no verdict) dir=%s", s, f, dir)
			}
			fmt.Fprintln(stdout, o.Line)
			if !o.Pass || err != nil {
				failed++
			}
		}
	}
	fmt.Fprintf(stdout, "jepsen: %d/%d run(s) passed in %v\n", total-failed, total, time.Since(begin).Round(time.Second))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if failed > 0 {
		return errFailed
	}
	return nil
}

// findLeasenode returns the leasenode binary next to this one, or builds
// one into out/bin.
func findLeasenode(ctx context.Context, self, out string, stderr io.Writer) (string, error) {
	if p := filepath.Join(filepath.Dir(self), "leasenode"); isFile(p) {
		return p, nil
	}
	p, err := filepath.Abs(filepath.Join(out, "bin", "leasenode"))
	if err != nil {
		return "", err
	}
	fmt.Fprintln(stderr, "jepsen: building", p)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", p, "github.com/raftlease/raftlease/cmd/leasenode")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build leasenode (or pass --leasenode): %w", err)
	}
	return p, nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func cmdCheck(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageError{"check: want exactly one run directory"}
	}
	r, err := jepsen.Check(args[0])
	if err != nil {
		return err
	}
	o := driver.Judge(args[0], r)
	if r.Family == driver.FamilyRedisFailover {
		o = driver.JudgeRedis(args[0], r)
	}
	fmt.Fprintln(stdout, o.Line)
	if !o.Pass {
		return errFailed
	}
	return nil
}

func cmdParticipant(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("participant", flag.ContinueOnError)
	var cfg driver.ParticipantConfig
	var endpoints string
	fs.StringVar(&cfg.ID, "id", "", "participant id (its holder id)")
	fs.StringVar(&cfg.Dir, "dir", "", "run directory")
	fs.IntVar(&cfg.Incarnation, "incarnation", 1, "start number of this participant")
	fs.StringVar(&endpoints, "endpoints", "", "comma-separated cluster HTTP addresses")
	var sentinels string
	fs.StringVar(&cfg.RedisAddr, "redis", "", "run on the Redis bridge: a standalone server's host:port")
	fs.StringVar(&sentinels, "redis-sentinels", "", "run on the Redis bridge through Sentinel: comma-separated sentinel addresses")
	fs.StringVar(&cfg.RedisMaster, "redis-master", "", "the master name the sentinels monitor")
	fs.StringVar(&cfg.RegisterURL, "register", "", "fenced register base URL")
	fs.StringVar(&cfg.Name, "name", "elector", "lease name")
	fs.DurationVar(&cfg.TTL, "ttl", 2*time.Second, "lease TTL")
	fs.Float64Var(&cfg.MaxDrift, "max-drift", 0.01, "the elector's drift bound")
	fs.Float64Var(&cfg.ClockRate, "unsafe-clock-rate", 1, "UNSAFE: run the elector's clock at this rate")
	fs.DurationVar(&cfg.WriteInterval, "write-interval", 30*time.Millisecond, "pause between writes while leading")
	if err := fs.Parse(args); err != nil {
		return usageError{"participant: " + err.Error()}
	}
	for _, e := range strings.Split(endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			cfg.Endpoints = append(cfg.Endpoints, e)
		}
	}
	for _, a := range strings.Split(sentinels, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.RedisSentinels = append(cfg.RedisSentinels, a)
		}
	}
	return driver.RunParticipant(ctx, cfg)
}

// cmdRedis makes the Redis comparison runs (driver.RunRedis). A run that
// completed and was checked counts as done whatever its checkers found:
// violations are what the comparison may show. It fails only when a run
// could not be made.
func cmdRedis(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("redis", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	seed := fs.Uint64("seed", 0, "seed of the first run (0: random); run i uses seed+i")
	runs := fs.Int("runs", 1, "runs")
	duration := fs.Duration("duration", time.Minute, "duration of each run")
	out := fs.String("out", "jepsen-runs", "directory for the run directories")
	server := fs.String("redis-server", "", "redis-server binary (default: $"+driver.RedisServerEnv+", else PATH)")
	every := fs.Duration("failover-every", 10*time.Second, "mean time between two kills of the primary")
	verbose := fs.Bool("v", false, "print the driver's progress")
	if help, err := parseCommand(fs, args, stdout); help || err != nil {
		return err
	}
	if *runs < 1 {
		return usageError{"redis: --runs must be at least 1"}
	}
	if *server == "" {
		p, err := driver.FindRedisServer()
		if err != nil {
			return err
		}
		*server = p
	}
	if *seed == 0 {
		*seed = nemesis.NewSeed() % 1_000_000_000
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "jepsen: %d run(s) of %s (comparison, not a gate), %v each, first seed %d\n",
		*runs, driver.FamilyRedisFailover, *duration, *seed)
	begin := time.Now()
	failed, total, violating := 0, 0, 0
	for i := range *runs {
		if ctx.Err() != nil {
			break
		}
		s := *seed + uint64(i)
		dir := filepath.Join(*out, fmt.Sprintf("%s-%s-%d", time.Now().Format("20060102-150405"), driver.FamilyRedisFailover, s))
		cfg := driver.RedisConfig{Seed: s, Duration: *duration, Dir: dir, RedisServer: *server,
			Participant: []string{self, "participant"}, FailoverEvery: *every}
		if *verbose {
			cfg.Log = stderr
		}
		total++
		o, err := driver.RunRedis(ctx, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "jepsen: redis run seed %d: %v\n", s, err)
		}
		if o.Line == "" {
			o.Line = fmt.Sprintf("run seed=%d family=%s NOT COMPLETED dir=%s", s, driver.FamilyRedisFailover, dir)
		}
		fmt.Fprintln(stdout, o.Line)
		if !o.Pass || err != nil {
			failed++
		} else if !o.Results.Valid {
			violating++
		}
	}
	fmt.Fprintf(stdout, "jepsen: %d/%d redis run(s) checked, %d with violations, in %v\n",
		total-failed, total, violating, time.Since(begin).Round(time.Second))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if failed > 0 {
		return errFailed
	}
	return nil
}

// parseCommand parses a subcommand's flags, which take no arguments. With
// -h it prints the usage and the flags to stdout and reports help; a bad
// flag or an argument is a usageError naming the subcommand.
func parseCommand(fs *flag.FlagSet, args []string, stdout io.Writer) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return true, nil
		}
		return false, usageError{fs.Name() + ": " + err.Error()}
	}
	if fs.NArg() > 0 {
		return false, usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return false, nil
}
