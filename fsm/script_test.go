package fsm_test

// Scripted scenarios in the style of etcd's datadriven tests, without the
// dependency (STYLE rule 19). Each file in testdata/scripts holds blocks of
//
//	command line(s)
//	----
//	expected output
//	<blank line>
//
// Lines starting with # between blocks are comments. Run with -update to
// rewrite the expected output from what the state machine does; review the
// diff. Commands:
//
//	epoch term=N reading=D
//	acquire name=N holder=H ttl=D [md=k=v,...] [floor=N]
//	renew name=N holder=H token=N [ttl=D] [md=k=v,...]   (md= clears; no md keeps)
//	release name=N holder=H token=N
//	expire NAME:TOKEN ...
//	tick
//	batch                 followed by one command per line, applied as one entry
//	get NAME [at=D]       read at consensus time D (default: the current one)
//	list [prefix=P] [at=D]
//	state                 the clock, counters, live and due leases
//
// Every write takes optional term=N (default: the last accepted epoch's),
// reading=D (default: the previous reading) and wall=N (Unix ns). A reading
// or time D is a Go duration ("1.5s", "-1000h") or an integer of
// nanoseconds. Each write is the next log entry and prints its result, its
// events and the consensus time after it.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
)

func TestScripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scripts", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d scripts in testdata/scripts, want at least 4", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) { runScript(t, file) })
	}
}

type scriptBlock struct {
	pre    []string // comments and blank lines before the command
	input  []string
	output []string
	line   int // of the first input line
}

func parseScript(t *testing.T, path string) (blocks []scriptBlock, tail []string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var cur scriptBlock
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if len(cur.input) == 0 && (strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#")) {
			cur.pre = append(cur.pre, l)
			continue
		}
		if l != "----" {
			if len(cur.input) == 0 {
				cur.line = i + 1
			}
			cur.input = append(cur.input, l)
			continue
		}
		if len(cur.input) == 0 {
			t.Fatalf("%s:%d: ---- without a command", path, i+1)
		}
		for i++; i < len(lines) && lines[i] != ""; i++ {
			cur.output = append(cur.output, lines[i])
		}
		blocks = append(blocks, cur)
		cur = scriptBlock{}
	}
	if len(cur.input) > 0 {
		t.Fatalf("%s:%d: command without ---- and expected output", path, cur.line)
	}
	return blocks, cur.pre
}

func runScript(t *testing.T, path string) {
	blocks, tail := parseScript(t, path)
	s := &scriptRunner{t: t, f: fsm.New()}
	var out strings.Builder
	for i := range blocks {
		b := &blocks[i]
		got := s.run(fmt.Sprintf("%s:%d", path, b.line), b.input)
		if *update {
			b.output = strings.Split(got, "\n")
		} else if want := strings.Join(b.output, "\n"); got != want {
			t.Errorf("%s:%d: %s\noutput:\n%s\nwant:\n%s", path, b.line, strings.Join(b.input, "\n"), got, want)
		}
		for _, l := range b.pre {
			out.WriteString(l + "\n")
		}
		out.WriteString(strings.Join(b.input, "\n") + "\n----\n" + strings.Join(b.output, "\n") + "\n\n")
	}
	for _, l := range tail {
		out.WriteString(l + "\n")
	}
	if *update {
		if err := os.WriteFile(path, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type scriptRunner struct {
	t       *testing.T
	f       *fsm.FSM
	index   uint64
	term    uint64
	reading int64
}

// scriptArgs are one command line's key=value arguments and positionals.
type scriptArgs struct {
	where string
	t     *testing.T
	kv    map[string]string
	pos   []string
	used  map[string]bool
}

func parseArgs(t *testing.T, where string, fields []string) *scriptArgs {
	a := &scriptArgs{where: where, t: t, kv: map[string]string{}, used: map[string]bool{}}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			a.kv[k] = v
		} else {
			a.pos = append(a.pos, f)
		}
	}
	return a
}

func (a *scriptArgs) has(k string) bool { _, ok := a.kv[k]; return ok }

func (a *scriptArgs) str(k string) string {
	a.used[k] = true
	return a.kv[k]
}

func (a *scriptArgs) uint(k string, def uint64) uint64 {
	if !a.has(k) {
		return def
	}
	v, err := strconv.ParseUint(a.str(k), 10, 64)
	if err != nil {
		a.t.Fatalf("%s: %s: %v", a.where, k, err)
	}
	return v
}

func (a *scriptArgs) dur(k string, def int64) int64 {
	if !a.has(k) {
		return def
	}
	s := a.str(k)
	switch s {
	case "min":
		return math.MinInt64
	case "max":
		return math.MaxInt64
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		a.t.Fatalf("%s: %s: %v", a.where, k, err)
	}
	return int64(d)
}

// metadata parses md=k=v,k2=v2; md= is an empty, non-nil map.
func (a *scriptArgs) metadata() map[string]string {
	if !a.has("md") {
		return nil
	}
	md := map[string]string{}
	for _, kv := range strings.Split(a.str("md"), ",") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		md[k] = v
	}
	return md
}

// done fails on arguments the command did not use: a typo must not pass.
func (a *scriptArgs) done() {
	for k := range a.kv {
		if !a.used[k] {
			a.t.Fatalf("%s: unknown argument %s", a.where, k)
		}
	}
}

func (s *scriptRunner) run(where string, input []string) string {
	fields := strings.Fields(input[0])
	a := parseArgs(s.t, where, fields[1:])
	switch cmd := fields[0]; cmd {
	case "get":
		if len(a.pos) != 1 {
			s.t.Fatalf("%s: get NAME", where)
		}
		at := a.dur("at", int64(s.f.Clock().Now))
		a.done()
		l, err := s.f.Get(a.pos[0], time.Duration(at))
		if err != nil {
			return "error: " + err.Error()
		}
		return formatLease(l)
	case "list":
		prefix := a.str("prefix")
		at := a.dur("at", int64(s.f.Clock().Now))
		a.done()
		ls, err := s.f.List(prefix, time.Duration(at))
		if err != nil {
			return "error: " + err.Error()
		}
		if len(ls) == 0 {
			return "(none)"
		}
		var lines []string
		for _, l := range ls {
			lines = append(lines, formatLease(l))
		}
		return strings.Join(lines, "\n")
	case "state":
		a.done()
		return dump(s.f)
	case "batch":
		a.done()
		var cmds []fsm.Command
		for i, line := range input[1:] {
			f := strings.Fields(line)
			cmds = append(cmds, s.command(fmt.Sprintf("%s+%d", where, i+1), f[0], parseArgs(s.t, where, f[1:])))
		}
		return s.apply(fsm.Batch(cmds...))
	default:
		if len(input) > 1 {
			s.t.Fatalf("%s: only batch takes more than one line", where)
		}
		return s.apply(s.command(where, cmd, a))
	}
}

func (s *scriptRunner) apply(c fsm.Command) string {
	s.index++
	res := s.f.Apply(s.index, c)
	if c.Kind == fsm.KindEpoch && res.Err == nil {
		s.term = c.Stamp.Term
	}
	return formatResult(res, "") + "\nnow=" + s.f.Clock().Now.String()
}

// command builds one write command; it remembers the reading so that the
// next command defaults to it.
func (s *scriptRunner) command(where, name string, a *scriptArgs) fsm.Command {
	term := a.uint("term", s.term)
	if name == "epoch" && !a.has("term") {
		s.t.Fatalf("%s: epoch needs term=", where)
	}
	reading := a.dur("reading", s.reading)
	if term == s.term || name == "epoch" {
		s.reading = reading
	}
	st := fsm.Stamp{Term: term, Reading: reading, Wall: int64(a.uint("wall", 0))}
	var c fsm.Command
	switch name {
	case "epoch":
		c = fsm.Epoch(st)
	case "tick":
		c = fsm.Tick(st)
	case "acquire":
		c = fsm.Acquire(st, raftlease.AcquireRequest{
			Name: a.str("name"), Holder: a.str("holder"), TTL: time.Duration(a.dur("ttl", 0)),
			Metadata: a.metadata(), TokenFloor: a.uint("floor", 0),
		})
	case "renew":
		c = fsm.Renew(st, raftlease.RenewRequest{
			Name: a.str("name"), Holder: a.str("holder"), Token: a.uint("token", 0),
			TTL: time.Duration(a.dur("ttl", 0)), Metadata: a.metadata(),
		})
	case "release":
		c = fsm.Release(st, raftlease.ReleaseRequest{Name: a.str("name"), Holder: a.str("holder"), Token: a.uint("token", 0)})
	case "expire":
		var targets []fsm.ExpireTarget
		for _, p := range a.pos {
			n, tok, ok := strings.Cut(p, ":")
			token, err := strconv.ParseUint(tok, 10, 64)
			if !ok || err != nil {
				s.t.Fatalf("%s: expire target %q is not NAME:TOKEN", where, p)
			}
			targets = append(targets, fsm.ExpireTarget{Name: n, Token: token})
		}
		a.pos = nil
		c = fsm.Expire(st, targets)
	case "nested-batch":
		c = fsm.Batch()
	default:
		s.t.Fatalf("%s: unknown command %q", where, name)
	}
	if len(a.pos) > 0 {
		s.t.Fatalf("%s: unexpected %v", where, a.pos)
	}
	a.done()
	return c
}
