package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/client"
	"github.com/raftlease/raftlease/jepsen"
	"github.com/raftlease/raftlease/jepsen/fenced"
	"github.com/raftlease/raftlease/jepsen/history"
	"github.com/raftlease/raftlease/jepsen/nemesis"
)

// Config describes one run.
type Config struct {
	// Family is a nemesis family (nemesis.Families) or a negative control
	// (Controls).
	Family   string
	Seed     uint64
	Duration time.Duration
	// Nodes is the cluster size (3 or 5); Participants the elector
	// processes (default 5); Clients the register clients (default 10) on
	// Names lease names (default 3).
	Nodes        int
	Participants int
	Clients      int
	Names        int
	// Dir is the run directory, created if needed; it must hold no
	// history yet.
	Dir string
	// Mode is ModeHooks or ModeNetns (default ModeHooks).
	Mode string
	// Leasenode is the path of the leasenode binary.
	Leasenode string
	// Participant is the command that runs one participant, without its
	// flags: `jepsen participant` (see RunParticipant).
	Participant []string
	// Profile is the agents' timing profile (default "local").
	Profile string
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// Run settings that are not configurable.
const (
	electorName    = "elector"
	electorTTL     = 2 * time.Second
	maxDrift       = 0.01
	registerTTL    = time.Hour
	opTimeout      = time.Second
	writeInterval  = 30 * time.Millisecond
	sampleInterval = 100 * time.Millisecond
)

func (c *Config) fill() error {
	if c.Family == "" {
		c.Family = string(nemesis.FamilyNone)
	}
	if c.Duration == 0 {
		c.Duration = time.Minute
	}
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Participants == 0 {
		c.Participants = 5
	}
	if c.Clients == 0 {
		c.Clients = 10
	}
	if c.Names == 0 {
		c.Names = 3
	}
	if c.Mode == "" {
		c.Mode = ModeHooks
	}
	if c.Profile == "" {
		c.Profile = "local"
	}
	var errs []error
	if _, ok := ControlNamed(c.Family); !ok && !nemesis.Family(c.Family).Valid() {
		errs = append(errs, fmt.Errorf("unknown family %q", c.Family))
	}
	if c.Nodes != 3 && c.Nodes != 5 {
		errs = append(errs, fmt.Errorf("nodes %d: want 3 or 5", c.Nodes))
	}
	if c.Mode != ModeHooks && c.Mode != ModeNetns {
		errs = append(errs, fmt.Errorf("mode %q: want %s or %s", c.Mode, ModeHooks, ModeNetns))
	}
	if c.Dir == "" || c.Leasenode == "" || len(c.Participant) == 0 {
		errs = append(errs, errors.New("Dir, Leasenode and Participant must be set"))
	}
	if c.Participants < 2 || c.Clients < 1 || c.Names < 1 {
		errs = append(errs, errors.New("need at least 2 participants, 1 client and 1 name"))
	}
	return errors.Join(errs...)
}

// Outcome is the verdict of one run.
type Outcome struct {
	Dir     string
	Family  string
	Seed    uint64
	Results jepsen.Results
	// Control is set for a negative control; Detected says whether its
	// violation was found, Detail what was seen.
	Control  *Control
	Detected bool
	Detail   string
	// Pass: a plain run is valid, or a control's violation was detected.
	Pass bool
	// Line is the run's one-line summary.
	Line string
	// Steps counts the nemesis steps applied and those that failed.
	Steps, StepErrors int
}

type participantProc struct {
	id          string
	proc        *Proc
	incarnation int
}

// driver is one run in progress.
type driver struct {
	cfg      Config
	ctrl     *Control
	dir      string
	logw     io.Writer
	logMu    sync.Mutex
	rec      *history.Recorder
	net      network
	hooks    *hooksClient
	ports    *freePorts
	sink     *writeSink
	register *fenced.Server
	names    []string
	sched    nemesis.Schedule

	mu           sync.Mutex
	nodes        []*node
	byID         map[string]*node
	members      []string
	participants []*participantProc
	clients      map[string]*client.Client
	latest       map[string]hookStatus
	stepsApplied int
	stepErrors   int
}

func (d *driver) logf(format string, args ...any) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	line := fmt.Sprintf("%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	if d.logw != nil {
		io.WriteString(d.logw, line)
	}
}

// Run makes one run: it starts the cluster and the participants, runs the
// workloads while playing the schedule, heals, lets the cluster settle,
// collects the final state, stops everything and checks the run directory
// (jepsen.Check). The returned error is about the harness itself (the run
// could not be made); the verdict is in the Outcome.
func Run(ctx context.Context, cfg Config) (Outcome, error) {
	if err := cfg.fill(); err != nil {
		return Outcome{}, fmt.Errorf("driver: %w", err)
	}
	d := &driver{cfg: cfg, dir: cfg.Dir, hooks: newHooksClient(), ports: &freePorts{}, byID: map[string]*node{},
		clients: map[string]*client.Client{}, latest: map[string]hookStatus{}}
	if c, ok := ControlNamed(cfg.Family); ok {
		d.ctrl = &c
	}
	if err := os.MkdirAll(filepath.Join(d.dir, jepsen.LogDir), 0o755); err != nil {
		return Outcome{}, fmt.Errorf("driver: %w", err)
	}
	if _, err := os.Stat(filepath.Join(d.dir, jepsen.HistoryFile)); err == nil {
		return Outcome{}, fmt.Errorf("driver: %s already holds a run", d.dir)
	}
	dlog, err := os.Create(filepath.Join(d.dir, "driver.txt"))
	if err != nil {
		return Outcome{}, fmt.Errorf("driver: %w", err)
	}
	defer dlog.Close()
	d.logw = dlog
	if cfg.Log != nil {
		d.logw = io.MultiWriter(dlog, cfg.Log)
	}
	out := Outcome{Dir: d.dir, Family: cfg.Family, Seed: cfg.Seed, Control: d.ctrl}
	runErr := d.run(ctx)
	d.shutdown()
	out.Steps, out.StepErrors = d.stepsApplied, d.stepErrors
	if runErr != nil {
		d.logf("run failed: %v", runErr)
		if _, err := os.Stat(filepath.Join(d.dir, jepsen.HistoryFile)); err != nil {
			return out, runErr
		}
	}
	res, err := jepsen.Check(d.dir)
	if err != nil {
		return out, errors.Join(runErr, fmt.Errorf("driver: check: %w", err))
	}
	j := Judge(d.dir, res)
	j.Steps, j.StepErrors = out.Steps, out.StepErrors
	j.Line = outcomeLine(j)
	d.logf("%s", j.Line)
	return j, runErr
}

// Judge gives the verdict on the results of the run in dir: a plain run
// passes when every checker is valid, a negative control (named by the
// run's family) when its expected violation was detected.
func Judge(dir string, res jepsen.Results) Outcome {
	o := Outcome{Dir: dir, Family: res.Family, Seed: res.Seed, Results: res, Pass: res.Valid}
	if c, ok := ControlNamed(res.Family); ok {
		o.Control = &c
		o.Detected, o.Detail = c.detected(res)
		o.Pass = o.Detected
	}
	o.Line = outcomeLine(o)
	return o
}

func outcomeLine(o Outcome) string {
	line := o.Results.Summary
	if line == "" {
		line = fmt.Sprintf("run seed=%d family=%s", o.Seed, o.Family)
	}
	if !strings.Contains(line, "family=") {
		line += " family=" + o.Family
	}
	if o.Control != nil {
		verdict := "DETECTED"
		if !o.Detected {
			verdict = "NOT DETECTED"
		}
		line += fmt.Sprintf(" control=%s expected-violation=%s (%s)", o.Control.Name, verdict, o.Detail)
	}
	if o.StepErrors > 0 {
		line += fmt.Sprintf(" nemesis_step_errors=%d/%d", o.StepErrors, o.Steps)
	}
	if o.Pass {
		line += " PASS"
	} else {
		line += " FAIL"
	}
	return line + " dir=" + o.Dir
}

func (d *driver) run(ctx context.Context) error {
	cfg := d.cfg
	family := nemesis.Family(cfg.Family)
	if d.ctrl != nil {
		family = d.ctrl.Family
	}
	switch cfg.Mode {
	case ModeNetns:
		d.net = &nsNet{}
	default:
		d.net = &hooksNet{hooks: d.hooks, ports: d.ports.next}
	}
	var ids, spares, parts []string
	for i := range cfg.Nodes {
		ids = append(ids, fmt.Sprintf("n%d", i+1))
	}
	if family == nemesis.FamilyMembership {
		for i := range 4 {
			spares = append(spares, fmt.Sprintf("n%d", cfg.Nodes+i+1))
		}
	}
	for i := range cfg.Participants {
		parts = append(parts, fmt.Sprintf("p%d", i+1))
	}
	for i := range cfg.Names {
		d.names = append(d.names, fmt.Sprintf("reg-%d", i+1))
	}
	nopts := nemesis.Options{Family: family, Seed: cfg.Seed, Duration: cfg.Duration, Nodes: ids, Spares: spares,
		Participants: parts, TTL: electorTTL, MaxDrift: maxDrift}
	var err error
	if d.ctrl != nil && d.ctrl.schedule != nil {
		d.sched, err = d.ctrl.schedule(nopts)
	} else {
		d.sched, err = nemesis.Generate(nopts)
	}
	if err != nil {
		return err
	}
	if err := d.sched.WriteFile(filepath.Join(d.dir, jepsen.ScheduleFile)); err != nil {
		return err
	}
	d.logf("%s", strings.TrimSpace(d.sched.String()))

	for i, id := range append(slices.Clone(ids), spares...) {
		n := &node{id: id, dataDir: filepath.Join(d.dir, "data", id)}
		d.net.place(n, i)
		n.proc = &Proc{Name: id, Path: cfg.Leasenode, LogPath: filepath.Join(d.dir, jepsen.LogDir, id+".log"), Wrap: d.net.wrap(n)}
		d.nodes = append(d.nodes, n)
		d.byID[id] = n
	}
	if err := d.net.setup(ctx, d.nodes); err != nil {
		return err
	}
	if err := d.startCluster(ctx, ids); err != nil {
		return err
	}

	d.rec, err = history.Create(filepath.Join(d.dir, jepsen.HistoryFile))
	if err != nil {
		return err
	}
	extra := map[string]string{"mode": cfg.Mode, "profile": cfg.Profile, "clients": fmt.Sprint(cfg.Clients)}
	if d.ctrl != nil {
		extra["control"] = d.ctrl.Name
		extra["expect"] = d.ctrl.Expect
	}
	if d.ctrl != nil && d.ctrl.StaleReads {
		extra["unsafe_stale_reads"] = "true"
	}
	if d.sched.SnapshotThreshold > 0 {
		extra["snapshot_threshold"] = fmt.Sprint(d.sched.SnapshotThreshold)
		extra["trailing_logs"] = fmt.Sprint(d.sched.TrailingLogs)
	}
	d.rec.Run(history.RunInfo{Seed: cfg.Seed, Family: cfg.Family, GitSHA: jepsen.GitSHA(ctx), Config: history.RunConfig{
		Workloads: []string{history.WorkloadRegister, history.WorkloadElector},
		Nodes:     append(slices.Clone(ids), spares...), Participants: parts, Names: d.names, ElectorName: electorName,
		DurationNs: int64(cfg.Duration), RegisterTTLNs: int64(registerTTL), ElectorTTLNs: int64(electorTTL),
		MaxDrift: maxDrift, OpTimeoutNs: int64(opTimeout), Extra: extra,
	}})
	start := time.Now()

	d.sink = &writeSink{rec: d.rec}
	d.register = fenced.NewServer(d.sink)
	regURL, err := d.register.Listen(d.registerAddr())
	if err != nil {
		return err
	}
	for _, id := range parts {
		p := &participantProc{id: id, proc: &Proc{Name: id, Path: cfg.Participant[0], LogPath: filepath.Join(d.dir, jepsen.LogDir, id+".log")}}
		d.participants = append(d.participants, p)
		if err := d.startParticipant(p, regURL); err != nil {
			return err
		}
	}

	wctx, stopWorkloads := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.sampleLoop(wctx) }()
	for i := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.registerClient(wctx, fmt.Sprintf("c%d", i+1), rand.New(rand.NewPCG(cfg.Seed, uint64(i+1))))
		}()
	}
	player := &nemesis.Player{Nemesis: &driverNemesis{d: d, regURL: regURL}, Rec: d.rec}
	playErr := player.Play(ctx, d.sched)
	if playErr != nil {
		d.logf("nemesis: %v", playErr)
	}
	// Settle until the planned end with every fault healed.
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(start.Add(cfg.Duration))):
	}
	d.logf("stopping workloads")
	stopWorkloads()
	wg.Wait()
	d.stopParticipants()
	d.releaseRegister()
	d.finals()
	d.rec.End(0)
	if err := d.rec.Close(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// registerAddr is where the fenced register listens: loopback, or the
// bridge in netns mode (participants run outside the namespaces, so
// loopback works there too).
func (d *driver) registerAddr() string { return "127.0.0.1:0" }

func (d *driver) nodeArgs(n *node, bootstrap bool, join []string) []string {
	args := []string{"agent", "--id", n.id, "--data-dir", n.dataDir, "--raft-addr", n.raftAddr, "--http-addr", n.httpAddr,
		"--profile", d.cfg.Profile, "--log-level", "info", "--unsafe-test-hooks", n.hooksAddr, "--shutdown-timeout", "5s"}
	if bootstrap {
		args = append(args, "--bootstrap")
	}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	if d.ctrl != nil && d.ctrl.StaleReads {
		args = append(args, "--unsafe-stale-reads")
	}
	if t := d.sched.SnapshotThreshold; t > 0 {
		args = append(args, "--snapshot-threshold", fmt.Sprint(t), "--snapshot-interval", "1s")
	}
	if t := d.sched.TrailingLogs; t > 0 {
		args = append(args, "--trailing-logs", fmt.Sprint(t))
	}
	return args
}

// startCluster starts ids[0] as a new cluster, the others joining it, and
// waits until they are all members and one leads.
func (d *driver) startCluster(ctx context.Context, ids []string) error {
	first := d.byID[ids[0]]
	first.proc.Args = d.nodeArgs(first, true, nil)
	first.joined = true
	if err := first.proc.Start(); err != nil {
		return err
	}
	for _, id := range ids[1:] {
		n := d.byID[id]
		n.proc.Args = d.nodeArgs(n, false, []string{first.httpAddr})
		n.joined = true
		if err := n.proc.Start(); err != nil {
			return err
		}
	}
	d.mu.Lock()
	d.members = slices.Clone(ids)
	d.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last string
	ok := waitFor(wctx, func() bool {
		st, err := d.anyClient().Status(wctx)
		if err != nil {
			last = err.Error()
			return false
		}
		if st.Leader == nil || len(st.Members) != len(ids) {
			last = fmt.Sprintf("%d members, leader %v", len(st.Members), st.Leader)
			return false
		}
		return d.currentLeader(wctx) != ""
	})
	if !ok {
		return fmt.Errorf("driver: cluster did not form: %s", last)
	}
	d.logf("cluster of %s formed", strings.Join(ids, ","))
	return nil
}

// clientFor returns the client that talks to node id only.
func (d *driver) clientFor(id string) *client.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.clients[id]; c != nil {
		return c
	}
	n := d.byID[id]
	c, err := client.New(client.Options{Endpoints: []string{n.httpAddr}, RequestTimeout: opTimeout, OperationTimeout: opTimeout})
	if err != nil {
		panic(err) // a fixed, valid address
	}
	d.clients[id] = c
	return c
}

// anyClient returns a client over every current member.
func (d *driver) anyClient() *client.Client {
	d.mu.Lock()
	var eps []string
	for _, id := range d.members {
		eps = append(eps, d.byID[id].httpAddr)
	}
	key := "any:" + strings.Join(eps, ",")
	if c := d.clients[key]; c != nil {
		d.mu.Unlock()
		return c
	}
	d.mu.Unlock()
	c, err := client.New(client.Options{Endpoints: eps, RequestTimeout: opTimeout, OperationTimeout: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	d.mu.Lock()
	d.clients[key] = c
	d.mu.Unlock()
	return c
}

func (d *driver) memberList() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.members)
}

// expected lists the nodes that should be running: joined members not
// removed.
func (d *driver) expected() []*node {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*node
	for _, n := range d.nodes {
		if n.joined && !n.removed {
			out = append(out, n)
		}
	}
	return out
}

// currentLeader asks every running member now and returns the serving
// leader of the highest term ("" when none).
func (d *driver) currentLeader(ctx context.Context) string {
	type answer struct {
		id string
		st hookStatus
	}
	var mu sync.Mutex
	var answers []answer
	var wg sync.WaitGroup
	for _, n := range d.expected() {
		if !n.proc.Running() || n.proc.Paused() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			if st, err := d.hooks.status(sctx, n); err == nil {
				mu.Lock()
				answers = append(answers, answer{n.id, st})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	leader, term := "", uint64(0)
	for _, a := range answers {
		if a.st.Serving && a.st.Term >= term {
			leader, term = a.id, a.st.Term
		}
	}
	return leader
}

// waitLeader waits up to timeout for a serving leader.
func (d *driver) waitLeader(ctx context.Context, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var leader string
	waitFor(ctx, func() bool { leader = d.currentLeader(ctx); return leader != "" })
	return leader
}

// holder returns the participant holding the elector lease: as the
// cluster says, or the writer of the last accepted fenced write.
func (d *driver) holder(ctx context.Context) string {
	gctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if l, err := d.anyClient().Get(gctx, electorName, raftlease.ReadOptions{}); err == nil && l.Holder != "" {
		return l.Holder
	}
	return d.sink.lastWriter()
}

// writeSink records the fenced register's writes and remembers the last
// accepted fenced writer.
type writeSink struct {
	rec       *history.Recorder
	mu        sync.Mutex
	last      string
	lastToken uint64
}

func (s *writeSink) Write(w history.FencedWrite) {
	s.rec.Write(w)
	if w.Fenced && w.Accepted {
		s.mu.Lock()
		s.last, s.lastToken = w.Writer, w.Token
		s.mu.Unlock()
	}
}

func (s *writeSink) lastWriter() string {
	w, _ := s.lastAccepted()
	return w
}

// lastAccepted is the writer and token of the last accepted fenced write.
func (s *writeSink) lastAccepted() (string, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.lastToken
}

// --- participants ---

func (d *driver) participantArgs(p *participantProc, regURL string) []string {
	var eps []string
	for _, n := range d.nodes {
		eps = append(eps, n.httpAddr)
	}
	args := append(slices.Clone(d.cfg.Participant[1:]), "--id", p.id, "--dir", d.dir, "--incarnation", fmt.Sprint(p.incarnation),
		"--endpoints", strings.Join(eps, ","), "--register", regURL, "--name", electorName,
		"--ttl", electorTTL.String(), "--max-drift", fmt.Sprint(maxDrift), "--write-interval", writeInterval.String())
	return args
}

func (d *driver) startParticipant(p *participantProc, regURL string) error {
	p.incarnation++
	p.proc.Args = d.participantArgs(p, regURL)
	return p.proc.Start()
}

// killParticipant kills p with SIGKILL and completes the operations it
// left pending as ambiguous.
func (d *driver) killParticipant(p *participantProc) error {
	err := p.proc.Kill()
	n, cerr := completeKilled(participantFile(d.dir, p.id, p.incarnation), history.Now())
	if n > 0 {
		d.logf("%s killed with %d operations pending: completed as ambiguous", p.id, n)
	}
	return errors.Join(err, cerr)
}

func (d *driver) participant(id string) *participantProc {
	for _, p := range d.participants {
		if p.id == id {
			return p
		}
	}
	return nil
}

// stopParticipants stops every participant gracefully (each releases the
// lease if it holds it), killing those that do not exit.
func (d *driver) stopParticipants() {
	var wg sync.WaitGroup
	for _, p := range d.participants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.proc.Resume()
			if graceful, _ := p.proc.Term(5 * time.Second); !graceful {
				d.logf("%s did not stop within 5s of SIGTERM: killed", p.id)
				completeKilled(participantFile(d.dir, p.id, p.incarnation), history.Now())
			}
		}()
	}
	wg.Wait()
}

// --- the register workload ---

// registerClient issues acquire/renew/release/get on random names through
// random members until ctx ends, one operation at a time.
func (d *driver) registerClient(ctx context.Context, id string, r *rand.Rand) {
	held := map[string]uint64{}
	seen := map[string]uint64{} // a token seen on each name, for stale renews
	for ctx.Err() == nil {
		name := d.names[r.IntN(len(d.names))]
		members := d.memberList()
		nodeID := members[r.IntN(len(members))]
		s := &history.RecordingStore{Store: d.clientFor(nodeID), Rec: d.rec, Process: id, Workload: history.WorkloadRegister, Node: nodeID}
		octx, cancel := context.WithTimeout(context.Background(), opTimeout)
		tok, mine := held[name]
		p := r.Float64()
		switch {
		case mine && p < 0.3:
			l, err := s.Renew(octx, raftlease.RenewRequest{Name: name, Holder: id, Token: tok, TTL: registerTTL})
			if err == nil {
				held[name] = l.Token
			} else if errors.Is(err, raftlease.ErrNotHolder) {
				delete(held, name)
			}
		case mine && p < 0.75:
			err := s.Release(octx, raftlease.ReleaseRequest{Name: name, Holder: id, Token: tok})
			if err == nil || errors.Is(err, raftlease.ErrNotHolder) || history.ResultOf(raftlease.Lease{}, err).Outcome == history.Ambiguous {
				delete(held, name)
			}
		case mine:
			s.Get(octx, name, raftlease.ReadOptions{})
		case p < 0.55:
			l, err := s.Acquire(octx, raftlease.AcquireRequest{Name: name, Holder: id, TTL: registerTTL})
			if err == nil {
				held[name] = l.Token
			}
			var he *raftlease.HeldError
			if errors.As(err, &he) {
				seen[name] = he.Current.Token
			}
		case p < 0.62 && seen[name] > 0:
			// A renew with someone else's token: must be refused.
			s.Renew(octx, raftlease.RenewRequest{Name: name, Holder: id, Token: seen[name]})
		default:
			if l, err := s.Get(octx, name, raftlease.ReadOptions{}); err == nil {
				seen[name] = l.Token
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(10+r.IntN(40)) * time.Millisecond):
		}
	}
}

// releaseRegister frees the register's leases at the end (unrecorded), so
// that the leader stops ticking and the replicas can settle on one state.
func (d *driver) releaseRegister() {
	c := d.anyClient()
	for _, name := range append(slices.Clone(d.names), electorName) {
		for range 5 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			l, err := c.Get(ctx, name, raftlease.ReadOptions{})
			if errors.Is(err, raftlease.ErrNotFound) {
				cancel()
				break
			}
			if err == nil {
				err = c.Release(ctx, raftlease.ReleaseRequest{Name: name, Holder: l.Holder, Token: l.Token})
			}
			cancel()
			if err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// --- status ---

func (d *driver) sampleLoop(ctx context.Context) {
	t := time.NewTicker(sampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var wg sync.WaitGroup
		for _, n := range d.expected() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.sampleNode(ctx, n)
			}()
		}
		wg.Wait()
	}
}

func (d *driver) sampleNode(ctx context.Context, n *node) {
	switch {
	case !n.proc.Running():
		d.rec.Status(history.NodeStatus{Node: n.id, State: "down"})
		return
	case n.proc.Paused():
		d.rec.Status(history.NodeStatus{Node: n.id, State: "paused"})
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	t := history.Now()
	st, err := d.hooks.status(sctx, n)
	if err != nil {
		if ctx.Err() == nil {
			d.rec.Status(history.NodeStatus{Node: n.id, Time: t, State: "unreachable"})
		}
		return
	}
	d.rec.Status(st.sample(n.id, t))
	d.mu.Lock()
	d.latest[n.id] = st
	d.mu.Unlock()
}

// finals waits for the members to agree on one state (the same state
// index and hash), then records each member's final state.
func (d *driver) finals() {
	members := d.expected()
	deadline := time.Now().Add(20 * time.Second)
	var last []history.NodeFinal
	for {
		last = last[:0]
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, n := range members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				f := history.NodeFinal{Node: n.id}
				st, err := d.hooks.status(ctx, n)
				if err != nil {
					f.Error = err.Error()
				} else {
					f.AppliedIndex, f.FSMHash = st.StateIndex, st.StateHash
				}
				f.Time = history.Now()
				mu.Lock()
				last = append(last, f)
				mu.Unlock()
			}()
		}
		wg.Wait()
		agreed := true
		for _, f := range last {
			agreed = agreed && f.Error == "" && f.AppliedIndex == last[0].AppliedIndex && f.FSMHash == last[0].FSMHash
		}
		if agreed || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, f := range last {
		d.rec.Final(f)
	}
	d.logf("final state: %v", last)
}

// shutdown stops every process and removes the network.
func (d *driver) shutdown() {
	for _, p := range d.participants {
		p.proc.Resume()
		p.proc.Kill()
	}
	var wg sync.WaitGroup
	for _, n := range d.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.proc.Resume()
			n.proc.Term(5 * time.Second)
		}()
	}
	wg.Wait()
	if d.register != nil {
		d.register.Close()
	}
	d.mu.Lock()
	for _, c := range d.clients {
		c.Close()
	}
	d.mu.Unlock()
	if d.net != nil {
		d.net.teardown()
	}
}
