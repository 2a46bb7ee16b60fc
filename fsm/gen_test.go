package fsm_test

import (
	"math/rand/v2"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
)

// gen produces plausible random command sequences over a few names and
// holders: mostly the current leader's stamps moving forward, with leader
// changes, late stamps of older terms, and requests that often (not always)
// name the current holder and token. It peeks at a driver FSM, the one the
// commands are applied to first, to pick live tokens and due leases.
type gen struct {
	rng     *rand.Rand
	names   []string
	holders []string

	term    uint64 // current leader's term
	reading int64  // current leader's clock
	oldTerm uint64 // a previous leader's term, for late stamps
	oldRead int64
}

func newGen(rng *rand.Rand) *gen {
	return &gen{
		rng:     rng,
		names:   []string{"a", "b", "svc/c"},
		holders: []string{"h1", "h2", "h3"},
		term:    1,
	}
}

// first is the command every sequence starts with: the first leader's epoch.
func (g *gen) first() fsm.Command {
	g.reading = g.wildReading()
	return fsm.Epoch(fsm.Stamp{Term: g.term, Reading: g.reading})
}

// wildReading is a leader clock reading from anywhere, kept within ±2^50 ns
// (±13 days) so that a reference model may subtract readings without care.
func (g *gen) wildReading() int64 {
	switch g.rng.IntN(4) {
	case 0:
		return 0
	case 1:
		return g.reading + g.rng.Int64N(int64(10*time.Second)) - int64(5*time.Second)
	default:
		return g.rng.Int64N(1<<51) - 1<<50
	}
}

func (g *gen) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

// stamp advances the current leader's clock a little and stamps with it;
// now and then it returns a late stamp of an older leader instead.
func (g *gen) stamp() fsm.Stamp {
	if g.oldTerm != 0 && g.rng.IntN(12) == 0 {
		g.oldRead += g.rng.Int64N(int64(3 * time.Second))
		return fsm.Stamp{Term: g.oldTerm, Reading: g.oldRead, Wall: 1}
	}
	switch g.rng.IntN(10) {
	case 0: // the same instant
	case 1: // a slow proposal: an older reading
		return fsm.Stamp{Term: g.term, Reading: g.reading - g.rng.Int64N(int64(time.Second)), Wall: 2}
	default:
		g.reading += g.rng.Int64N(int64(1500 * time.Millisecond))
	}
	return fsm.Stamp{Term: g.term, Reading: g.reading, Wall: 1_700_000_000_000_000_000 + g.reading}
}

func (g *gen) ttl() time.Duration {
	return []time.Duration{raftlease.MinTTL, time.Second, 3 * time.Second, 10 * time.Second}[g.rng.IntN(4)]
}

func (g *gen) metadata() map[string]string {
	switch g.rng.IntN(4) {
	case 0:
		return map[string]string{"addr": g.pick(g.holders) + ":80"}
	case 1:
		return map[string]string{}
	default:
		return nil
	}
}

// current returns the holder and token a request should name: most often
// the lease's own (even if expired), else something plausible but wrong.
func (g *gen) current(driver *fsm.FSM, name string) (string, uint64) {
	if g.rng.IntN(4) != 0 {
		if ls, _ := driver.List(name, 0); len(ls) > 0 && ls[0].Name == name {
			return ls[0].Holder, ls[0].Token
		}
	}
	return g.pick(g.holders), uint64(g.rng.IntN(int(driver.LastToken()) + 2))
}

// next returns a random command for the driver's current state.
func (g *gen) next(driver *fsm.FSM) fsm.Command {
	if g.rng.IntN(10) == 0 {
		n := 1 + g.rng.IntN(6)
		cmds := make([]fsm.Command, n)
		for i := range cmds {
			cmds[i] = g.single(driver)
		}
		if g.rng.IntN(20) == 0 {
			cmds = append(cmds, fsm.Batch(g.single(driver)))
		}
		return fsm.Batch(cmds...)
	}
	return g.single(driver)
}

func (g *gen) single(driver *fsm.FSM) fsm.Command {
	name := g.pick(g.names)
	switch p := g.rng.IntN(100); {
	case p < 30:
		req := raftlease.AcquireRequest{Name: name, Holder: g.pick(g.holders), TTL: g.ttl(), Metadata: g.metadata()}
		if g.rng.IntN(15) == 0 {
			req.TokenFloor = max(driver.LastToken()+uint64(g.rng.IntN(5)), 2) - 2
		}
		if g.rng.IntN(30) == 0 {
			req.TTL = 0 // invalid
		}
		return fsm.Acquire(g.stamp(), req)
	case p < 52:
		holder, token := g.current(driver, name)
		req := raftlease.RenewRequest{Name: name, Holder: holder, Token: token, Metadata: g.metadata()}
		if g.rng.IntN(3) == 0 {
			req.TTL = g.ttl()
		}
		return fsm.Renew(g.stamp(), req)
	case p < 67:
		holder, token := g.current(driver, name)
		return fsm.Release(g.stamp(), raftlease.ReleaseRequest{Name: name, Holder: holder, Token: token})
	case p < 80:
		st := g.stamp()
		targets := driver.Expired(driver.Now(st), 0)
		if g.rng.IntN(3) == 0 {
			_, token := g.current(driver, name)
			targets = append(targets, fsm.ExpireTarget{Name: name, Token: token})
		}
		return fsm.Expire(st, targets)
	case p < 92:
		return fsm.Tick(g.stamp())
	default:
		return g.epoch()
	}
}

// epoch changes leader, or now and then replays an old or retried epoch.
func (g *gen) epoch() fsm.Command {
	switch g.rng.IntN(6) {
	case 0: // a stale epoch of an older term: refused
		return fsm.Epoch(fsm.Stamp{Term: uint64(g.rng.IntN(int(g.term))), Reading: g.wildReading()})
	case 1: // a retried epoch of the current term
		return fsm.Epoch(fsm.Stamp{Term: g.term, Reading: g.reading - g.rng.Int64N(int64(time.Second))})
	}
	g.oldTerm, g.oldRead = g.term, g.reading
	g.term += 1 + uint64(g.rng.IntN(2))
	g.reading = g.wildReading()
	return fsm.Epoch(fsm.Stamp{Term: g.term, Reading: g.reading})
}

// sequence returns n commands generated against a fresh driver FSM.
func (g *gen) sequence(n int) []fsm.Command {
	driver := fsm.New()
	cmds := []fsm.Command{g.first()}
	driver.Apply(1, cmds[0])
	for i := 1; i < n; i++ {
		c := g.next(driver)
		driver.Apply(uint64(i+1), c)
		cmds = append(cmds, c)
	}
	return cmds
}
