package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/redisbridge"
)

// `leasenode bench` measures the same two workloads through whichever store
// --addr names (a leasenode cluster through the client, Redis through the
// bridge, etcd through its v3 JSON gateway), so that bench/compare.sh can
// put them side by side. docs/performance.md ("Side by side") has the
// numbers and what each store does per operation.
//
//   - acquire-release: each caller takes its own name with a TTL, then
//     frees it; one op is both (two replicated writes on raftlease and
//     etcd, two scripts on Redis).
//   - renew: each caller holds its own lease and renews it; one op is one
//     renewal (a replicated write on raftlease; a script on Redis; on etcd a
//     lease keepalive, which the etcd leader answers from memory without
//     Raft).
//
// Callers run in a closed loop: each sends its next op when the last one
// answered. Ops that finish during the warm-up are not counted.

// Workload names.
const (
	workloadAcquireRelease = "acquire-release"
	workloadRenew          = "renew"
)

// benchBackend is one store under test.
type benchBackend interface {
	// newCaller prepares one caller's lease (a session, a held lease).
	newCaller(ctx context.Context, name, holder, workload string, ttl time.Duration) (benchCaller, error)
	// about describes what one op of workload costs in this store.
	about(workload string) (writesPerOp int, replicated bool, note string)
	Close() error
}

// benchCaller is one caller's state.
type benchCaller interface {
	op(ctx context.Context) error
	close(ctx context.Context) error
}

// benchResult is one measurement (-o json: one line).
type benchResult struct {
	Store      string  `json:"store"`
	Addr       string  `json:"addr"`
	Workload   string  `json:"workload"`
	Callers    int     `json:"callers"`
	DurationMs int64   `json:"duration_ms"`
	Ops        int     `json:"ops"`
	Errors     int     `json:"errors"`
	OpsPerSec  float64 `json:"ops_per_sec"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	// WritesPerOp is how many store writes one op is; Replicated says
	// whether each goes through consensus to a quorum.
	WritesPerOp int    `json:"writes_per_op"`
	Replicated  bool   `json:"replicated"`
	Note        string `json:"note,omitempty"`
	FirstError  string `json:"first_error,omitempty"`
}

type benchConfig struct {
	Workloads []string
	Callers   []int
	Duration  time.Duration
	Warmup    time.Duration
	TTL       time.Duration
	Label     string
}

func parseBenchConfig(g *globalFlags, args []string) (benchConfig, error) {
	var c benchConfig
	fs := g.commandFlags("bench", true)
	workloads := listFlag{}
	fs.Var(&workloads, "workload", "comma-separated workloads: acquire-release, renew (default both)")
	callers := fs.String("callers", "1,16,64", "comma-separated numbers of concurrent callers; each is one run")
	fs.DurationVar(&c.Duration, "duration", 5*time.Second, "measured time of each run")
	fs.DurationVar(&c.Warmup, "warmup", 500*time.Millisecond, "unmeasured time before each run")
	fs.DurationVar(&c.TTL, "ttl", time.Minute, "TTL of the benchmark's leases")
	fs.StringVar(&c.Label, "label", "", "store name in the output (default raftlease, redis or etcd)")
	pos, err := g.parse(fs, args)
	if err != nil {
		return c, err
	}
	if len(pos) > 0 {
		return c, usagef("bench: unexpected argument %q", pos[0])
	}
	c.Workloads = workloads
	if len(c.Workloads) == 0 {
		c.Workloads = []string{workloadAcquireRelease, workloadRenew}
	}
	var errs []error
	for _, w := range c.Workloads {
		errs = append(errs, oneOf("workload", w, workloadAcquireRelease, workloadRenew))
	}
	for _, s := range strings.Split(*callers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 4096 {
			errs = append(errs, usagef("--callers %q: want comma-separated numbers from 1 to 4096", *callers))
			break
		}
		c.Callers = append(c.Callers, n)
	}
	if c.Duration <= 0 {
		errs = append(errs, usagef("--duration must be positive, is %v", c.Duration))
	}
	if c.Warmup < 0 {
		errs = append(errs, usagef("--warmup must not be negative, is %v", c.Warmup))
	}
	if err := raftlease.ValidateTTL(c.TTL); err != nil {
		errs = append(errs, usagef("--ttl: %s", fieldReason(err)))
	}
	if c.Label != "" {
		if err := raftlease.ValidateName(c.Label); err != nil {
			errs = append(errs, usagef("--label %q: %s", c.Label, fieldReason(err)))
		}
	}
	return c, errors.Join(errs...)
}

func cmdBench(g *globalFlags, args []string) error {
	cfg, err := parseBenchConfig(g, args)
	if err != nil {
		return err
	}
	kind := g.storeKind()
	if cfg.Label == "" {
		cfg.Label = kind.String()
	}
	maxCallers := slices.Max(cfg.Callers)
	var backend benchBackend
	addr := strings.Join(g.Addr, ",")
	switch kind {
	case storeRedis:
		s, err := g.newRedisStore("addr", g.Addr[0], g.RedisPrefix, true,
			redisbridge.Options{PoolSize: maxCallers + 8, Notifications: redisbridge.NotifyOff})
		if err != nil {
			return err
		}
		backend = &storeBench{store: s, kind: kind}
		addr = redact(g.Addr[0])
	case storeEtcd:
		endpoints, err := parseEtcdAddrs("addr", g.Addr)
		if err != nil {
			return err
		}
		ctx, cancel := g.opContext()
		backend, err = newEtcdBench(ctx, endpoints, maxCallers, g.Timeout)
		cancel()
		if err != nil {
			return g.report(fmt.Errorf("bench: etcd: %w", err))
		}
	default:
		c, err := g.newClient()
		if err != nil {
			return err
		}
		// Learn the leader, so that requests go to it without a
		// forwarding hop, as etcd's go to its leader.
		ctx, cancel := g.opContext()
		_, err = c.Status(ctx)
		cancel()
		if err != nil {
			c.Close()
			return g.report(fmt.Errorf("bench: %w", err))
		}
		backend = &storeBench{store: c, kind: kind}
		if len(g.Addr) == 0 {
			addr = defaultHTTPAddr
		}
	}
	defer backend.Close()

	run := randomHex(4)
	var results []benchResult
	for _, workload := range cfg.Workloads {
		for _, n := range cfg.Callers {
			r, err := runBench(g, backend, cfg, workload, n, "bench/"+run)
			if err != nil {
				return g.report(err)
			}
			r.Store, r.Addr = cfg.Label, addr
			if g.json() {
				if err := printJSON(g.stdout, r); err != nil {
					return err
				}
			}
			results = append(results, r)
		}
	}
	if !g.json() {
		tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STORE\tWORKLOAD\tCALLERS\tOPS/S\tP50\tP99\tERRORS\tWRITES/OP\tNOTE")
		for _, r := range results {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2fms\t%.2fms\t%d\t%d\t%s\n", r.Store, r.Workload, r.Callers, r.OpsPerSec, r.P50Ms, r.P99Ms, r.Errors, r.WritesPerOp, r.Note)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, r := range results {
		if r.Ops == 0 {
			return fmt.Errorf("bench: %s %s with %d callers: no op succeeded: %s", r.Store, r.Workload, r.Callers, r.FirstError)
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// runBench runs one workload with n callers: set-up, warm-up, the measured
// window, tear-down.
func runBench(g *globalFlags, backend benchBackend, cfg benchConfig, workload string, n int, namePrefix string) (benchResult, error) {
	res := benchResult{Workload: workload, Callers: n}
	res.WritesPerOp, res.Replicated, res.Note = backend.about(workload)
	holder := "bench-" + randomHex(4)
	callers := make([]benchCaller, 0, n)
	defer func() {
		for _, c := range callers {
			ctx, cancel := g.opContext()
			_ = c.close(ctx)
			cancel()
		}
	}()
	for i := range n {
		ctx, cancel := g.opContext()
		c, err := backend.newCaller(ctx, fmt.Sprintf("%s/%s/%d/%d", namePrefix, workload, n, i), holder, workload, cfg.TTL)
		cancel()
		if err != nil {
			return res, fmt.Errorf("bench: %s set-up of caller %d: %w", workload, i, err)
		}
		callers = append(callers, c)
	}

	// phase: 0 warm-up, 1 measuring, 2 stopped.
	var phase atomic.Int32
	var errCount atomic.Int64
	var firstErr atomic.Value
	latencies := make([][]time.Duration, n)
	var wg sync.WaitGroup
	for i, c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for phase.Load() < 2 {
				ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
				t0 := time.Now()
				err := c.op(ctx)
				d := time.Since(t0)
				cancel()
				measuring := phase.Load() == 1
				if err != nil {
					if measuring {
						errCount.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if measuring {
					latencies[i] = append(latencies[i], d)
				}
			}
		}()
	}
	time.Sleep(cfg.Warmup)
	phase.Store(1)
	start := time.Now()
	time.Sleep(cfg.Duration)
	phase.Store(2)
	elapsed := time.Since(start)
	wg.Wait()

	all := slices.Concat(latencies...)
	slices.Sort(all)
	res.DurationMs = elapsed.Milliseconds()
	res.Ops = len(all)
	res.Errors = int(errCount.Load())
	if e, ok := firstErr.Load().(string); ok {
		res.FirstError = e
	}
	if len(all) > 0 {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		res.OpsPerSec = float64(len(all)) / elapsed.Seconds()
		res.P50Ms = ms(all[len(all)/2])
		res.P99Ms = ms(all[len(all)*99/100])
		res.MaxMs = ms(all[len(all)-1])
	}
	return res, nil
}

// storeBench runs the workloads on a raftlease.Store: the cluster client or
// the Redis bridge.
type storeBench struct {
	store leaseStore
	kind  storeKind
}

func (b *storeBench) Close() error { return b.store.Close() }

func (b *storeBench) about(workload string) (int, bool, string) {
	writes := 1
	if workload == workloadAcquireRelease {
		writes = 2
	}
	if b.kind == storeRedis {
		return writes, false, "one Redis server: a Lua script per write, durable as its appendfsync says, not replicated"
	}
	return writes, true, "each write committed by a Raft quorum (fsynced unless the agents run without sync, as dev does)"
}

func (b *storeBench) newCaller(ctx context.Context, name, holder, workload string, ttl time.Duration) (benchCaller, error) {
	c := &storeCaller{store: b.store, name: name, holder: holder, ttl: ttl, renew: workload == workloadRenew}
	if c.renew {
		l, err := b.store.Acquire(ctx, raftlease.AcquireRequest{Name: name, Holder: holder, TTL: ttl})
		if err != nil {
			return nil, err
		}
		c.token = l.Token
	}
	return c, nil
}

type storeCaller struct {
	store  raftlease.Store
	name   string
	holder string
	ttl    time.Duration
	renew  bool
	token  uint64 // the held lease's, for renew
}

func (c *storeCaller) op(ctx context.Context) error {
	if c.renew {
		_, err := c.store.Renew(ctx, raftlease.RenewRequest{Name: c.name, Holder: c.holder, Token: c.token})
		return err
	}
	l, err := c.store.Acquire(ctx, raftlease.AcquireRequest{Name: c.name, Holder: c.holder, TTL: c.ttl})
	if err != nil {
		return err
	}
	return c.store.Release(ctx, raftlease.ReleaseRequest{Name: c.name, Holder: c.holder, Token: l.Token})
}

func (c *storeCaller) close(ctx context.Context) error {
	if !c.renew {
		return nil
	}
	return c.store.Release(ctx, raftlease.ReleaseRequest{Name: c.name, Holder: c.holder, Token: c.token})
}
