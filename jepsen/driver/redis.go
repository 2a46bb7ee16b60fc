package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftlease/raftlease/jepsen"
	"github.com/raftlease/raftlease/jepsen/fenced"
	"github.com/raftlease/raftlease/jepsen/history"
	"github.com/raftlease/raftlease/jepsen/nemesis"
)

// The Redis comparison (docs/redis.md, "Under failover"): the elector
// workload of Run, with the participants' elector on the Redis bridge
// instead of a leasenode cluster. Redis is a primary and one replica
// (asynchronous replication, no persistence) watched by three real
// Sentinels. The nemesis kills the primary with SIGKILL; the Sentinels
// promote the replica (REPLICAOF NO ONE) and announce it, the participants'
// failover clients (redis.NewFailoverClient) move to it, and the old
// primary is restarted as a replica of the new one. The run is checked by
// every checker, like a Raft run; it is a comparison, not a gate.

// FamilyRedisFailover names the Redis comparison in histories, run
// directories and summary lines.
const FamilyRedisFailover = "redis-failover"

// Nemesis kinds of the Redis comparison, as they appear in schedule.json
// and the history's nemesis events.
const (
	// KindRedisKillPrimary: SIGKILL of the primary. Its window runs until
	// the Sentinels have promoted the replica and it serves as primary.
	// With Step.Delay > 0 the replica's link to the primary is cut that
	// long before the kill (the window starts there): the replica lags,
	// and whatever the primary acknowledged meanwhile is lost.
	KindRedisKillPrimary nemesis.Kind = "redis-kill-primary"
	// KindRedisLostHandover: a handover that only the primary sees, then
	// the kill. The replica's link is cut, the lease holder is paused
	// (SIGSTOP) until another participant has taken the lease over on the
	// primary (under the next token) and written with it, or at most
	// Step.Hold; then the primary is killed and the holder resumed. The
	// promoted replica never saw the handover: its fencing counter is
	// one behind, so the next grant can repeat a token already issued.
	KindRedisLostHandover nemesis.Kind = "redis-lost-handover"
	// KindRedisRejoin: the killed server restarted (empty: no
	// persistence) as a replica of the new primary; its window runs until
	// its replication link is up.
	KindRedisRejoin nemesis.Kind = "redis-rejoin"
	// SelectPrimary targets the Redis primary of the moment.
	SelectPrimary nemesis.Selector = "primary"
)

// RedisMasterName is the master name the Sentinels monitor.
const RedisMasterName = "raftlease"

// RedisServerEnv names the environment variable that overrides where
// FindRedisServer looks for redis-server (as testutil.RedisServerEnv).
const RedisServerEnv = "RAFTLEASE_REDIS_SERVER"

// RedisConfig describes one Redis comparison run.
type RedisConfig struct {
	Seed     uint64
	Duration time.Duration
	// Participants is the number of elector processes (default 5).
	Participants int
	// Dir is the run directory, created if needed; it must hold no
	// history yet.
	Dir string
	// RedisServer is the redis-server binary (default: FindRedisServer).
	RedisServer string
	// Participant is the command that runs one participant, without its
	// flags: `jepsen participant` (see RunParticipant).
	Participant []string
	// FailoverEvery is the mean time between two kills of the primary
	// (default 10 s; each gap is drawn from ±20 % of it, and never less
	// than what Sentinel needs between two failovers of one master).
	FailoverEvery time.Duration
	// DownAfter is the Sentinels' down-after-milliseconds (default
	// 500 ms): how long the primary must be silent before it is failed
	// over.
	DownAfter time.Duration
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// Sentinel settings of the comparison.
const (
	redisSentinels = 3
	// redisFailoverTimeout is the Sentinels' failover-timeout. A Sentinel
	// does not fail the same master over again within twice this, so the
	// gaps between kills are longer.
	redisFailoverTimeout = 3 * time.Second
	redisQuorum          = 2
	// minFailoverGap is the least time between two kills: a Sentinel does
	// not fail a master over again within twice the failover-timeout.
	minFailoverGap = 2*redisFailoverTimeout + time.Second
	// rejoinAfter is the least time between a promotion and the rejoin of
	// the killed server.
	rejoinAfter = 2 * time.Second
)

func (c *RedisConfig) fill() error {
	if c.Duration == 0 {
		c.Duration = time.Minute
	}
	if c.Participants == 0 {
		c.Participants = 5
	}
	if c.FailoverEvery == 0 {
		c.FailoverEvery = 10 * time.Second
	}
	if c.DownAfter == 0 {
		c.DownAfter = 500 * time.Millisecond
	}
	var errs []error
	if c.RedisServer == "" {
		p, err := FindRedisServer()
		if err != nil {
			errs = append(errs, err)
		}
		c.RedisServer = p
	}
	if c.Dir == "" || len(c.Participant) == 0 {
		errs = append(errs, errors.New("Dir and Participant must be set"))
	}
	if c.Participants < 2 {
		errs = append(errs, errors.New("need at least 2 participants"))
	}
	if c.FailoverEvery < minFailoverGap {
		errs = append(errs, fmt.Errorf("FailoverEvery %v: Sentinel needs at least %v between failovers", c.FailoverEvery, minFailoverGap))
	}
	if c.DownAfter < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("DownAfter %v: want at least 100ms", c.DownAfter))
	}
	return errors.Join(errs...)
}

// FindRedisServer returns the redis-server binary: $RAFTLEASE_REDIS_SERVER,
// else the one in PATH, /usr/bin or /usr/local/bin.
func FindRedisServer() (string, error) {
	if p := os.Getenv(RedisServerEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", RedisServerEnv, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server"} {
		if isRegular(p) {
			return p, nil
		}
	}
	return "", errors.New("redis-server not found (PATH, /usr/bin, /usr/local/bin; or set " + RedisServerEnv + "); install the redis-server package")
}

func isRegular(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// RedisSchedule is the seeded schedule of a Redis comparison run of the
// given duration: after a warm-up of 3–5 s, a kill of the primary every
// FailoverEvery ± 20 % (plus the time a kill waits). By the seed, a third
// are plain, a third come 0.5–2 s after the replica's link was cut, and a
// third after a lost handover (KindRedisLostHandover). Each is followed
// 2–4 s later by the rejoin of the killed server; the final heal comes at
// the duration minus a settle period (D/6, 2–10 s). The same arguments
// always give the same schedule.
func RedisSchedule(seed uint64, d, every time.Duration, participants []string) nemesis.Schedule {
	r := rand.New(rand.NewPCG(seed, 0x7265646973)) // "redis"
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	settle := min(max(d/6, 2*time.Second), 10*time.Second)
	healAt := d - settle
	s := nemesis.Schedule{Seed: seed, Family: FamilyRedisFailover, Duration: d, Nodes: []string{"r1", "r2"},
		Participants: participants, TTL: electorTTL, MaxDrift: maxDrift}
	at := between(3*time.Second, 5*time.Second)
	for {
		// A third of the kills each: plain, after a lag, after a lost
		// handover (which takes up to its Hold before the kill).
		kill := nemesis.Step{Kind: KindRedisKillPrimary, At: at, Select: SelectPrimary}
		switch r.IntN(3) {
		case 1:
			kill.Delay = between(500*time.Millisecond, 2*time.Second)
		case 2:
			kill.Kind, kill.Hold = KindRedisLostHandover, electorTTL+3*time.Second
		}
		before := kill.Delay + kill.Hold // the longest the kill waits
		rejoin := between(2*time.Second, 4*time.Second)
		// A kill whose failover and rejoin fit before the heal.
		if at+before+rejoin+3*time.Second > healAt {
			break
		}
		s.Steps = append(s.Steps, kill,
			nemesis.Step{Kind: KindRedisRejoin, At: at + before + rejoin, Select: SelectPrimary})
		at += before + max(between(every*8/10, every*12/10), minFailoverGap)
	}
	s.Steps = append(s.Steps, nemesis.Step{Kind: nemesis.Heal, At: healAt})
	for i := range s.Steps {
		s.Steps[i].Index = i + 1
	}
	return s
}

// redisServer is one data server: a fixed port and dir, and its process.
type redisServer struct {
	id   string
	port int
	dir  string
	proc *Proc
	// admin talks to it for INFO and ROLE.
	admin *redis.Client
}

func (s *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// sentinel is one Redis Sentinel process.
type sentinel struct {
	id     string
	port   int
	proc   *Proc
	client *redis.SentinelClient
}

func (s *sentinel) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// redisRun is one Redis comparison run in progress. It reuses the Raft
// run's participant handling through d (participants, register, log).
type redisRun struct {
	cfg       RedisConfig
	d         *driver
	servers   []*redisServer
	sentinels []*sentinel
	sched     nemesis.Schedule
	regURL    string
}

// RunRedis makes one Redis comparison run: it starts a primary, a replica
// and three Sentinels, the fenced register and the participants (elector on
// the Redis bridge through Sentinel), plays the failover schedule, settles,
// stops the participants and checks the run directory with jepsen.Check.
// The error is about the harness (the run could not be made or completed);
// the checkers' findings are in the Outcome, whose Pass means "completed
// and checked", whatever the checkers found: the comparison is expected to
// show violations sometimes. See JudgeRedis.
func RunRedis(ctx context.Context, cfg RedisConfig) (Outcome, error) {
	if err := cfg.fill(); err != nil {
		return Outcome{}, fmt.Errorf("driver: redis: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, jepsen.LogDir), 0o755); err != nil {
		return Outcome{}, fmt.Errorf("driver: %w", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, jepsen.HistoryFile)); err == nil {
		return Outcome{}, fmt.Errorf("driver: %s already holds a run", cfg.Dir)
	}
	dlog, err := os.Create(filepath.Join(cfg.Dir, "driver.txt"))
	if err != nil {
		return Outcome{}, fmt.Errorf("driver: %w", err)
	}
	defer dlog.Close()
	d := &driver{cfg: Config{Family: FamilyRedisFailover, Seed: cfg.Seed, Duration: cfg.Duration, Participant: cfg.Participant},
		dir: cfg.Dir, logw: dlog}
	if cfg.Log != nil {
		d.logw = io.MultiWriter(dlog, cfg.Log)
	}
	rr := &redisRun{cfg: cfg, d: d}
	out := Outcome{Dir: cfg.Dir, Family: FamilyRedisFailover, Seed: cfg.Seed}
	runErr := rr.run(ctx)
	rr.shutdown()
	out.Steps, out.StepErrors = d.stepsApplied, d.stepErrors
	if runErr != nil {
		d.logf("run failed: %v", runErr)
		if _, err := os.Stat(filepath.Join(cfg.Dir, jepsen.HistoryFile)); err != nil {
			return out, runErr
		}
	}
	res, err := jepsen.Check(cfg.Dir)
	if err != nil {
		return out, errors.Join(runErr, fmt.Errorf("driver: check: %w", err))
	}
	j := JudgeRedis(cfg.Dir, res)
	j.Steps, j.StepErrors = out.Steps, out.StepErrors
	j.Pass = runErr == nil
	j.Line = redisLine(j)
	d.logf("%s", j.Line)
	return j, runErr
}

// JudgeRedis gives the outcome of the Redis comparison run in dir: Pass
// (the run was checked) whatever the checkers found, with a summary line
// that names the violations and counts the failovers.
func JudgeRedis(dir string, res jepsen.Results) Outcome {
	o := Outcome{Dir: dir, Family: FamilyRedisFailover, Seed: res.Seed, Results: res, Pass: true}
	o.Line = redisLine(o)
	return o
}

// RedisFailovers counts the kills of the primary in res's schedule whose
// start succeeded (the replica was promoted).
func RedisFailovers(res jepsen.Results) (ok, failed int) {
	if res.Schedule == nil {
		return 0, 0
	}
	for _, st := range res.Schedule.Steps {
		if st.Kind != KindRedisKillPrimary && st.Kind != KindRedisLostHandover {
			continue
		}
		if strings.HasPrefix(st.Observed, "promoted") {
			ok++
		} else {
			failed++
		}
	}
	return ok, failed
}

func redisLine(o Outcome) string {
	line := o.Results.Summary
	if line == "" {
		line = fmt.Sprintf("run seed=%d family=%s", o.Seed, FamilyRedisFailover)
	}
	ok, failed := RedisFailovers(o.Results)
	line += fmt.Sprintf(" failovers=%d", ok)
	if failed > 0 {
		line += fmt.Sprintf(" failover_errors=%d", failed)
	}
	w := o.Results.Writes
	line += fmt.Sprintf(" fenced_accepted=%d fenced_rejected=%d", w.FencedAccepted, w.FencedRejected)
	if o.StepErrors > 0 {
		line += fmt.Sprintf(" nemesis_step_errors=%d/%d", o.StepErrors, o.Steps)
	}
	if o.Pass {
		line += " CHECKED (comparison, not a gate)"
	} else {
		line += " NOT COMPLETED"
	}
	return line + " dir=" + o.Dir
}

func (rr *redisRun) run(ctx context.Context) error {
	cfg, d := rr.cfg, rr.d
	var parts []string
	for i := range cfg.Participants {
		parts = append(parts, fmt.Sprintf("p%d", i+1))
	}
	rr.sched = RedisSchedule(cfg.Seed, cfg.Duration, cfg.FailoverEvery, parts)
	d.logf("%s", strings.TrimSpace(rr.sched.String()))

	ports := &freePorts{}
	for i := range 2 {
		s := &redisServer{id: fmt.Sprintf("r%d", i+1), dir: filepath.Join(cfg.Dir, "data", fmt.Sprintf("r%d", i+1))}
		s.port = ports.next()
		s.proc = &Proc{Name: s.id, Path: cfg.RedisServer, LogPath: filepath.Join(cfg.Dir, jepsen.LogDir, s.id+".log")}
		s.admin = redis.NewClient(&redis.Options{Addr: s.addr(), DialTimeout: 500 * time.Millisecond, ReadTimeout: time.Second,
			WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 2})
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return err
		}
		rr.servers = append(rr.servers, s)
	}
	primary, replica := rr.servers[0], rr.servers[1]
	if err := rr.startServer(ctx, primary, nil); err != nil {
		return err
	}
	if err := rr.startServer(ctx, replica, primary); err != nil {
		return err
	}
	if err := rr.waitInSync(ctx, replica, 20*time.Second); err != nil {
		return err
	}
	for i := range redisSentinels {
		s := &sentinel{id: fmt.Sprintf("s%d", i+1), port: ports.next()}
		dir := filepath.Join(cfg.Dir, "data", s.id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		conf := filepath.Join(dir, "sentinel.conf")
		// Sentinel rewrites its config file as it learns; it is written once.
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %d %d\n"+
			"sentinel down-after-milliseconds %s %d\nsentinel failover-timeout %s %d\nsentinel parallel-syncs %s 1\n",
			s.port, dir, RedisMasterName, primary.port, redisQuorum,
			RedisMasterName, cfg.DownAfter.Milliseconds(), RedisMasterName, redisFailoverTimeout.Milliseconds(), RedisMasterName)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			return err
		}
		s.proc = &Proc{Name: s.id, Path: cfg.RedisServer, Args: []string{conf, "--sentinel", "--daemonize", "no", "--logfile", ""},
			LogPath: filepath.Join(cfg.Dir, jepsen.LogDir, s.id+".log")}
		s.client = redis.NewSentinelClient(&redis.Options{Addr: s.addr(), DialTimeout: 500 * time.Millisecond,
			ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 2})
		if err := s.proc.Start(); err != nil {
			return err
		}
		rr.sentinels = append(rr.sentinels, s)
	}
	// Sentinels find each other through the primary's hello channel (every
	// 2 s) and the replica through its INFO (every 10 s).
	if err := rr.waitReady(ctx, primary, replica, 60*time.Second); err != nil {
		return fmt.Errorf("driver: sentinels not ready: %w", err)
	}
	d.logf("redis: primary %s (%s), replica %s (%s), sentinels %s", primary.id, primary.addr(), replica.id, replica.addr(), rr.sentinelAddrs())
	if err := rr.sched.WriteFile(filepath.Join(cfg.Dir, jepsen.ScheduleFile)); err != nil {
		return err
	}

	var err error
	d.rec, err = history.Create(filepath.Join(cfg.Dir, jepsen.HistoryFile))
	if err != nil {
		return err
	}
	extra := map[string]string{"store": "redis", "comparison": "true", "redis_version": rr.redisVersion(ctx),
		"sentinels": fmt.Sprint(redisSentinels), "sentinel_quorum": fmt.Sprint(redisQuorum),
		"sentinel_down_after": cfg.DownAfter.String(), "sentinel_failover_timeout": redisFailoverTimeout.String(),
		"replication": "asynchronous, one replica, no persistence"}
	d.rec.Run(history.RunInfo{Seed: cfg.Seed, Family: FamilyRedisFailover, GitSHA: jepsen.GitSHA(ctx), Config: history.RunConfig{
		Workloads: []string{history.WorkloadElector}, Nodes: []string{"r1", "r2"}, Participants: parts,
		ElectorName: electorName, DurationNs: int64(cfg.Duration), ElectorTTLNs: int64(electorTTL),
		MaxDrift: maxDrift, OpTimeoutNs: int64(opTimeout), Extra: extra,
	}})
	start := time.Now()
	d.sink = &writeSink{rec: d.rec}
	d.register = fenced.NewServer(d.sink)
	if rr.regURL, err = d.register.Listen(d.registerAddr()); err != nil {
		return err
	}
	for _, id := range parts {
		p := &participantProc{id: id, proc: &Proc{Name: id, Path: cfg.Participant[0], LogPath: filepath.Join(cfg.Dir, jepsen.LogDir, id+".log")}}
		d.participants = append(d.participants, p)
		p.incarnation++
		p.proc.Args = rr.participantArgs(p)
		if err := p.proc.Start(); err != nil {
			return err
		}
	}

	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		rr.sampleLoop(sctx)
	}()
	rr.play(ctx, start)
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(start.Add(cfg.Duration))):
	}
	d.logf("stopping participants")
	d.stopParticipants()
	stopSampling()
	<-sampled
	d.rec.End(0)
	if err := d.rec.Close(); err != nil {
		return err
	}
	return ctx.Err()
}

// sampleLoop records every server's role as a node status sample every
// sampleInterval, for the timeline and one-leader-per-term: a master is
// "leader", a replica "follower" (Leader names its master), a stopped
// server "down". Redis has no term a client can read (Sentinel's config
// epoch moves only after the promotion is done), so Term is the reign:
// the number of times the driver saw the master change. Two servers that
// both say master in one tick share a reign, and one-leader-per-term
// reports them as two leaders in one term.
func (rr *redisRun) sampleLoop(ctx context.Context) {
	t := time.NewTicker(sampleInterval)
	defer t.Stop()
	var reign uint64
	var master string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var samples []history.NodeStatus
		var masters []string
		for _, s := range rr.servers {
			st := rr.sample(ctx, s)
			if st.IsLeader() {
				masters = append(masters, st.Node)
			}
			samples = append(samples, st)
		}
		if len(masters) == 1 && masters[0] != master {
			reign++
			master = masters[0]
		}
		for _, st := range samples {
			st.Term = reign
			rr.d.rec.Status(st)
		}
	}
}

func (rr *redisRun) sample(ctx context.Context, s *redisServer) history.NodeStatus {
	st := history.NodeStatus{Node: s.id, Time: history.Now()}
	switch {
	case !s.proc.Running():
		st.State = "down"
		return st
	case s.proc.Paused():
		st.State = "paused"
		return st
	}
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	in, err := info(cctx, s.admin, "replication")
	if err != nil {
		st.State = "unreachable"
		return st
	}
	switch in["role"] {
	case "master":
		st.State, st.Leader = "leader", s.id
		st.AppliedIndex, _ = strconv.ParseUint(in["master_repl_offset"], 10, 64)
	case "slave":
		st.State = "follower"
		for _, m := range rr.servers {
			if in["master_port"] == strconv.Itoa(m.port) {
				st.Leader = m.id
			}
		}
		st.AppliedIndex, _ = strconv.ParseUint(in["slave_repl_offset"], 10, 64)
	default:
		st.State = in["role"]
	}
	return st
}

// play runs the schedule in real time from start, recording a start and a
// stop event per step (with the time the fault was applied, not when the
// step finished) into the history and the step as applied into
// schedule.json.
func (rr *redisRun) play(ctx context.Context, start time.Time) {
	d := rr.d
	var done time.Time // when the last step finished
	for i := range rr.sched.Steps {
		st := &rr.sched.Steps[i]
		at := start.Add(st.At)
		if st.Kind == KindRedisRejoin && at.Before(done.Add(rejoinAfter)) {
			// The failover took longer than planned: give the new
			// primary its time alone before the old one rejoins.
			at = done.Add(rejoinAfter)
		}
		select {
		case <-ctx.Done():
			// Leave everything running for the final stop.
			return
		case <-time.After(time.Until(at)):
		}
		var err error
		switch st.Kind {
		case KindRedisKillPrimary, KindRedisLostHandover:
			err = rr.killPrimary(ctx, st)
		case KindRedisRejoin:
			err = rr.rejoin(ctx, st)
		case nemesis.Heal:
			err = rr.heal(ctx, st)
		}
		done = time.Now()
		d.stepsApplied++
		if err != nil {
			d.stepErrors++
			d.logf("nemesis: %s: %v", st, err)
		} else {
			d.logf("nemesis: %s: %s", st, st.Observed)
		}
	}
	if err := rr.sched.WriteFile(filepath.Join(rr.cfg.Dir, jepsen.ScheduleFile)); err != nil {
		d.logf("schedule: %v", err)
	}
}

func (rr *redisRun) event(st *nemesis.Step, phase string, t int64, err error) {
	e := history.NemesisEvent{Step: st.Index, Phase: phase, Kind: string(st.Kind), Targets: st.Targets, Detail: st.Detail(),
		Time: t, Observed: st.Observed}
	if err != nil {
		e.Error = err.Error()
	}
	rr.d.rec.Nemesis(e)
}

// killPrimary SIGKILLs the primary and waits for the Sentinels to promote
// the replica: every Sentinel names it and it answers ROLE as master. The
// window of the step ends there.
func (rr *redisRun) killPrimary(ctx context.Context, st *nemesis.Step) error {
	old := rr.primary(ctx, 15*time.Second)
	if old == nil {
		err := errors.New("no primary: the sentinels do not agree on a running master")
		rr.event(st, history.PhaseStart, 0, err)
		rr.event(st, history.PhaseStop, 0, err)
		return err
	}
	replica := rr.other(old)
	st.Targets = []string{old.id}
	// Before the kill: is the replica ready to be promoted, and how far
	// behind is it? Asynchronous replication may lose what it lacks.
	if err := rr.waitReady(ctx, old, replica, 15*time.Second); err != nil {
		rr.d.logf("nemesis: killing %s although the sentinels are not ready: %v", old.id, err)
	}
	t := history.Now()
	cut := ""
	cutLink := st.Delay > 0 || st.Kind == KindRedisLostHandover
	if cutLink {
		// A wrong masterauth keeps the replica from reconnecting once its
		// link is closed; the primary serves on and its replication stream
		// goes nowhere.
		err := replica.admin.ConfigSet(ctx, "masterauth", "jepsen-link-cut").Err()
		if err == nil {
			err = old.admin.ClientKillByFilter(ctx, "TYPE", "replica").Err()
		}
		if err != nil {
			rr.event(st, history.PhaseStart, t, err)
			rr.event(st, history.PhaseStop, 0, err)
			return fmt.Errorf("cut the replica's link: %w", err)
		}
	}
	var paused *participantProc
	switch {
	case st.Kind == KindRedisLostHandover:
		var err error
		paused, cut, err = rr.handOver(ctx, st)
		if err != nil {
			rr.d.logf("nemesis: %s: %v", st, err)
		}
	case st.Delay > 0:
		select {
		case <-ctx.Done():
		case <-time.After(st.Delay): // the fault: the replica lags this long
		}
		cut = fmt.Sprintf("replica link cut %v before the kill; ", st.Delay.Round(time.Millisecond))
	}
	before, lagErr := replOffset(ctx, old)
	killErr := old.proc.Kill()
	if paused != nil {
		paused.proc.Resume()
	}
	if cutLink {
		if err := replica.admin.ConfigSet(ctx, "masterauth", "").Err(); err != nil {
			killErr = errors.Join(killErr, fmt.Errorf("restore the replica's masterauth: %w", err))
		}
	}
	if killErr != nil {
		rr.event(st, history.PhaseStart, t, killErr)
		rr.event(st, history.PhaseStop, 0, killErr)
		return killErr
	}
	rr.event(st, history.PhaseStart, t, nil)
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	promoted := waitFor(wctx, func() bool { return rr.isPrimary(wctx, replica) && rr.sentinelsName(wctx, replica) })
	if !promoted {
		err := fmt.Errorf("replica %s not promoted within 30s", replica.id)
		st.Observed = "not promoted"
		rr.event(st, history.PhaseStop, 0, err)
		return err
	}
	st.Observed = fmt.Sprintf("promoted %s %v after the kill; %s%s", replica.id, time.Since(began).Round(time.Millisecond), cut, lost(ctx, replica, before, lagErr))
	rr.event(st, history.PhaseStop, 0, nil)
	return nil
}

// handOver makes the handover of a redis-lost-handover step, with the
// replica's link already cut: it pauses the participant that made the
// last accepted fenced write and waits (at most st.Hold) until another
// participant has written under a higher token, then 300 ms more so that
// the new holder writes a few times. It returns the paused participant
// (resumed by the caller after the kill) and what it saw, for Observed.
func (rr *redisRun) handOver(ctx context.Context, st *nemesis.Step) (*participantProc, string, error) {
	d := rr.d
	holder, token := d.sink.lastAccepted()
	p := d.participant(holder)
	if p == nil || !p.proc.Running() {
		return nil, "no holder to pause (no accepted write yet); ", fmt.Errorf("no running holder (last writer %q)", holder)
	}
	if err := p.proc.Pause(); err != nil {
		return nil, "", fmt.Errorf("pause %s: %w", holder, err)
	}
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, st.Hold)
	defer cancel()
	var next string
	var nextToken uint64
	took := waitFor(wctx, func() bool {
		next, nextToken = d.sink.lastAccepted()
		return next != holder && nextToken > token
	})
	if !took {
		return p, fmt.Sprintf("replica link cut, holder %s (token %d) paused %v, no takeover seen; ", holder, token,
			time.Since(began).Round(time.Millisecond)), nil
	}
	select {
	case <-ctx.Done():
	case <-time.After(300 * time.Millisecond):
	}
	return p, fmt.Sprintf("replica link cut, holder %s (token %d) paused; %s took over on the primary under token %d %v later; ",
		holder, token, next, nextToken, time.Since(began).Round(time.Millisecond)), nil
}

// rejoin restarts the killed server, empty, as a replica of the primary
// and waits until its replication link is up.
func (rr *redisRun) rejoin(ctx context.Context, st *nemesis.Step) error {
	primary := rr.primary(ctx, 15*time.Second)
	if primary == nil {
		err := errors.New("no primary: the sentinels do not agree on a running master")
		rr.event(st, history.PhaseStart, 0, err)
		rr.event(st, history.PhaseStop, 0, err)
		return err
	}
	s := rr.other(primary)
	st.Targets = []string{s.id}
	if s.proc.Running() {
		st.Observed = s.id + " already running"
		rr.event(st, history.PhaseStart, 0, nil)
		rr.event(st, history.PhaseStop, 0, nil)
		return nil
	}
	rr.event(st, history.PhaseStart, 0, nil)
	err := rr.startServer(ctx, s, primary)
	if err == nil {
		err = rr.waitInSync(ctx, s, 20*time.Second)
	}
	if err == nil {
		st.Observed = fmt.Sprintf("%s replicates %s", s.id, primary.id)
	}
	rr.event(st, history.PhaseStop, 0, err)
	return err
}

// heal makes sure that both servers run, one the primary the Sentinels
// name and the other its replica in sync.
func (rr *redisRun) heal(ctx context.Context, st *nemesis.Step) error {
	rr.event(st, history.PhaseStart, 0, nil)
	primary := rr.primary(ctx, 20*time.Second)
	if primary == nil {
		err := errors.New("no primary: the sentinels do not agree on a running master")
		rr.event(st, history.PhaseStop, 0, err)
		return err
	}
	replica := rr.other(primary)
	var err error
	if !replica.proc.Running() {
		err = rr.startServer(ctx, replica, primary)
	}
	if err == nil {
		err = rr.waitReady(ctx, primary, replica, 20*time.Second)
	}
	if err == nil {
		st.Observed = fmt.Sprintf("primary %s, replica %s", primary.id, replica.id)
	}
	rr.event(st, history.PhaseStop, 0, err)
	return err
}

// primary waits up to timeout for the primary of the moment: the running
// server every Sentinel names, which says it is a master. The Sentinels
// may fail over on their own (a primary slow to answer within
// down-after-milliseconds), so the driver never assumes it knows.
func (rr *redisRun) primary(ctx context.Context, timeout time.Duration) *redisServer {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var found *redisServer
	waitFor(wctx, func() bool {
		for _, s := range rr.servers {
			if s.proc.Running() && rr.sentinelsName(wctx, s) && rr.isPrimary(wctx, s) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

func (rr *redisRun) other(s *redisServer) *redisServer {
	if rr.servers[0] == s {
		return rr.servers[1]
	}
	return rr.servers[0]
}

// startServer starts s as a primary (of == nil) or as a replica of of,
// without persistence, and waits until it answers PING.
func (rr *redisRun) startServer(ctx context.Context, s, of *redisServer) error {
	s.proc.Args = []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""}
	if of != nil {
		s.proc.Args = append(s.proc.Args, "--replicaof", "127.0.0.1", strconv.Itoa(of.port))
	}
	if err := s.proc.Start(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var last error
	if !waitFor(wctx, func() bool {
		select {
		case <-s.proc.Exited():
			last = fmt.Errorf("exited: %v", s.proc.ExitErr())
			return true
		default:
		}
		last = s.admin.Ping(wctx).Err()
		return last == nil
	}) || last != nil {
		return fmt.Errorf("driver: redis %s did not start: %v (see logs/%s.log)", s.id, last, s.id)
	}
	return nil
}

// info returns the fields of INFO section of s.
func info(ctx context.Context, c *redis.Client, section string) (map[string]string, error) {
	text, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

// waitInSync waits until replica s reports its link to the primary up.
func (rr *redisRun) waitInSync(ctx context.Context, s *redisServer, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	if !waitFor(wctx, func() bool {
		in, err := info(wctx, s.admin, "replication")
		if err != nil {
			last = err.Error()
			return false
		}
		last = "role " + in["role"] + ", master_link_status " + in["master_link_status"]
		return in["role"] == "slave" && in["master_link_status"] == "up"
	}) {
		return fmt.Errorf("driver: redis %s not in sync within %v: %s", s.id, timeout, last)
	}
	return nil
}

func (rr *redisRun) isPrimary(ctx context.Context, s *redisServer) bool {
	in, err := info(ctx, s.admin, "replication")
	return err == nil && in["role"] == "master"
}

// sentinelsName reports whether every Sentinel names s as the primary.
func (rr *redisRun) sentinelsName(ctx context.Context, s *redisServer) bool {
	for _, sn := range rr.sentinels {
		addr, err := sn.client.GetMasterAddrByName(ctx, RedisMasterName).Result()
		if err != nil || len(addr) != 2 || addr[1] != strconv.Itoa(s.port) {
			return false
		}
	}
	return true
}

// waitReady waits until a failover of primary can promote replica: the
// replica is in sync, and every Sentinel names the primary, sees the
// replica healthy with its link up, and knows the other Sentinels (so
// that a quorum can agree and elect a leader).
func (rr *redisRun) waitReady(ctx context.Context, primary, replica *redisServer, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	if !waitFor(wctx, func() bool {
		if in, err := info(wctx, replica.admin, "replication"); err != nil || in["master_link_status"] != "up" {
			last = fmt.Sprintf("replica %s not in sync (%v)", replica.id, err)
			return false
		}
		if !rr.sentinelsName(wctx, primary) {
			last = "the sentinels do not all name " + primary.id
			return false
		}
		for _, sn := range rr.sentinels {
			peers, err := sn.client.Sentinels(wctx, RedisMasterName).Result()
			if err != nil || len(peers) != len(rr.sentinels)-1 {
				last = fmt.Sprintf("%s knows %d other sentinels (%v)", sn.id, len(peers), err)
				return false
			}
			reps, err := sn.client.Replicas(wctx, RedisMasterName).Result()
			if err != nil {
				last = fmt.Sprintf("%s: replicas: %v", sn.id, err)
				return false
			}
			healthy := false
			for _, r := range reps {
				if r["port"] == strconv.Itoa(replica.port) && r["flags"] == "slave" && r["master-link-status"] == "ok" {
					healthy = true
				}
			}
			if !healthy {
				last = fmt.Sprintf("%s does not see replica %s healthy yet", sn.id, replica.id)
				return false
			}
		}
		return true
	}) {
		return fmt.Errorf("not ready within %v: %s", timeout, last)
	}
	return nil
}

// replOffset is the primary's replication offset: how many bytes of
// writes it has produced for its replicas.
func replOffset(ctx context.Context, primary *redisServer) (int64, error) {
	in, err := info(ctx, primary.admin, "replication")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(in["master_repl_offset"], 10, 64)
}

// lost compares the killed primary's replication offset, read just before
// the kill, with the offset at which the replica was promoted (its
// second_repl_offset − 1: the end of the old primary's history as the
// replica had it). A positive difference is bytes of writes the primary
// had (and may have acknowledged) that the new primary never received. A
// write between the reading and the kill is not counted, so it is a lower
// bound.
func lost(ctx context.Context, promoted *redisServer, before int64, beforeErr error) string {
	if beforeErr != nil {
		return "replication offset before the kill unknown: " + beforeErr.Error()
	}
	in, err := info(ctx, promoted.admin, "replication")
	if err != nil {
		return "promoted offset unknown: " + err.Error()
	}
	second, err := strconv.ParseInt(in["second_repl_offset"], 10, 64)
	if err != nil || second <= 0 {
		return "promoted offset unknown"
	}
	if d := before - (second - 1); d > 0 {
		return fmt.Sprintf("lost %d bytes of replication stream (primary at %d, promoted at %d)", d, before, second-1)
	}
	return fmt.Sprintf("replica had the whole stream (primary at %d before the kill, promoted at %d)", before, second-1)
}

func (rr *redisRun) redisVersion(ctx context.Context) string {
	in, err := info(ctx, rr.servers[0].admin, "server")
	if err != nil {
		return ""
	}
	return in["redis_version"]
}

func (rr *redisRun) sentinelAddrs() string {
	var out []string
	for _, s := range rr.sentinels {
		out = append(out, s.addr())
	}
	return strings.Join(out, ",")
}

func (rr *redisRun) participantArgs(p *participantProc) []string {
	return append(append([]string{}, rr.cfg.Participant[1:]...), "--id", p.id, "--dir", rr.cfg.Dir,
		"--incarnation", fmt.Sprint(p.incarnation), "--redis-sentinels", rr.sentinelAddrs(), "--redis-master", RedisMasterName,
		"--register", rr.regURL, "--name", electorName,
		"--ttl", electorTTL.String(), "--max-drift", fmt.Sprint(maxDrift), "--write-interval", writeInterval.String())
}

// shutdown stops the participants, the Sentinels and the servers, and
// closes the register and the admin clients.
func (rr *redisRun) shutdown() {
	rr.d.shutdown()
	var wg sync.WaitGroup
	for _, s := range rr.sentinels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.proc.Term(5 * time.Second)
			s.client.Close()
		}()
	}
	for _, s := range rr.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.proc.Term(5 * time.Second)
			s.admin.Close()
		}()
	}
	wg.Wait()
}
