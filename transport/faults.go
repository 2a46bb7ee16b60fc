package transport

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrLinkCut is the cause of a dial refused because fault injection cut the
// link from the dialing node to the dialed one.
var ErrLinkCut = errors.New("transport: link cut by fault injection")

// ErrDropped is the cause of a write that failed because fault injection
// dropped (closed) the connection.
var ErrDropped = errors.New("transport: connection dropped by fault injection")

// Faults injects network faults between the nodes of an in-process test
// cluster. Share one *Faults between the Configs of all nodes; it keys every
// fault by the directed link (from, to) between node ids. It is safe for
// concurrent use. The zero value is ready to use, as is NewFaults().
//
// # Semantics
//
// A cut link (from, to) drops every byte travelling from `from` to `to`:
//
//   - A dial by `from` to the address of `to` fails at once with an error
//     matching ErrLinkCut (it never reaches `to`).
//   - When the link is cut, every open connection between the two nodes, in
//     either direction, is closed: they carried a stream in the now-cut
//     direction, and dropping bytes mid-stream would corrupt its framing.
//   - On a connection `to` dials to `from` after the cut, the bytes `to`
//     writes arrive, and every byte `from` writes is black-holed: the write
//     reports success and the other end reads nothing. So `from` still
//     receives requests from `to`, and its answers are lost (the caller
//     times out). Such a connection stays a black hole for its whole life,
//     even after the link heals, and Heal closes it, so no stream ever
//     resumes with a gap.
//
// Partition, Isolate and Heal are shorthands over cuts. Each call takes
// effect before it returns: connections it affects are closed and every
// later dial and write sees the new state, so tests need no sleeps to wait
// for a fault; Stats counts what the faults did, for require.Eventually.
//
// Delays and drop rates apply per write on connections between the two
// nodes, in the direction of the write. Delays and drops never corrupt a
// stream: a delayed write is delivered whole, and a dropped write closes its
// connection.
//
// Dialed connections learn the id of the node at an address from the Mux
// that registered it (every Mux with Config.Faults registers its addresses
// under its NodeID); accepted connections from the header. Faults never
// apply to a link from a node to itself. An address no Mux registered has
// the empty id, which only Isolate of the other end affects.
type Faults struct {
	mu       sync.Mutex
	rng      *rand.Rand
	cuts     map[link]bool
	isolated map[string]bool
	delays   map[link]time.Duration
	drops    map[link]float64
	addrs    map[string]string // registered address → node id
	conns    map[*Conn]struct{}
	stats    map[link]*LinkStats
}

type link struct{ from, to string }

// LinkStats counts what fault injection did on one directed link.
type LinkStats struct {
	// Writes is the number of writes from `from` to `to` on connections with
	// fault injection (black-holed, dropped and delayed ones included).
	Writes uint64
	// BlackHoled is the number of writes discarded because the link was
	// cut.
	BlackHoled uint64
	// Dropped is the number of connections closed by the drop rate.
	Dropped uint64
	// Delayed is the number of writes delayed.
	Delayed uint64
	// Refused is the number of dials from `from` to `to` refused because
	// the link was cut.
	Refused uint64
}

// NewFaults returns a Faults with no fault injected, whose drop-rate
// generator is seeded with 1.
func NewFaults() *Faults {
	f := &Faults{}
	f.mu.Lock()
	f.init()
	f.mu.Unlock()
	return f
}

func (f *Faults) init() {
	if f.rng != nil {
		return
	}
	f.rng = rand.New(rand.NewPCG(1, 1))
	f.cuts = make(map[link]bool)
	f.isolated = make(map[string]bool)
	f.delays = make(map[link]time.Duration)
	f.drops = make(map[link]float64)
	f.addrs = make(map[string]string)
	f.conns = make(map[*Conn]struct{})
	f.stats = make(map[link]*LinkStats)
}

// Seed reseeds the generator behind drop rates. With one seed and the same
// sequence of writes, the same writes drop; concurrent writers make the
// sequence itself vary, so log the seed and treat it as a hint.
func (f *Faults) Seed(seed uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	f.rng = rand.New(rand.NewPCG(seed, seed))
}

// Cut cuts the directed link from `from` to `to` (see the type's doc): dials
// from `from` to `to` fail, open connections between them close, and bytes
// `from` writes on connections `to` opens later are black-holed.
func (f *Faults) Cut(from, to string) {
	f.update(func() {
		f.cuts[link{from, to}] = true
	})
}

// Partition cuts every link, both ways, between nodes of different groups.
// Links within a group, and of nodes named in no group, are unchanged, and
// faults injected before stay: call Heal first to start afresh.
func (f *Faults) Partition(groups ...[]string) {
	f.update(func() {
		for i, gi := range groups {
			for _, gj := range groups[i+1:] {
				for _, a := range gi {
					for _, b := range gj {
						f.cuts[link{a, b}] = true
						f.cuts[link{b, a}] = true
					}
				}
			}
		}
	})
}

// Isolate cuts every link to and from id, including links to nodes that
// start later and to addresses no Mux registered.
func (f *Faults) Isolate(id string) {
	f.update(func() {
		f.isolated[id] = true
	})
}

// Heal removes every fault: cuts, partitions, isolations, delays and drop
// rates; and closes every connection that black-holed a write, so its peers
// reconnect with clean streams. Stats are kept.
func (f *Faults) Heal() {
	f.mu.Lock()
	f.init()
	clear(f.cuts)
	clear(f.isolated)
	clear(f.delays)
	clear(f.drops)
	var victims []*Conn
	for c := range f.conns {
		if c.blackHoled {
			victims = append(victims, c)
		}
	}
	f.mu.Unlock()
	for _, c := range victims {
		c.Close()
	}
}

// SetDelay delays every write from `from` to `to` by d before it is sent
// (the writer blocks for d). Zero or less removes the delay.
func (f *Faults) SetDelay(from, to string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if d <= 0 {
		delete(f.delays, link{from, to})
		return
	}
	f.delays[link{from, to}] = d
}

// SetDropRate makes each write from `from` to `to` drop its connection with
// probability p: the connection is closed and the write fails (a partial
// stream cannot be resent, so nothing is silently lost mid-stream). The
// draw uses the seeded generator (see Seed). p ≤ 0 removes the drop rate;
// p ≥ 1 drops every connection at its first write after the handshake.
func (f *Faults) SetDropRate(from, to string, p float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if p <= 0 {
		delete(f.drops, link{from, to})
		return
	}
	f.drops[link{from, to}] = min(p, 1)
}

// Blocked reports whether the link from `from` to `to` is cut.
func (f *Faults) Blocked(from, to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	return f.blocked(from, to)
}

// Stats returns what fault injection did on the link from `from` to `to`
// so far.
func (f *Faults) Stats(from, to string) LinkStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if s := f.stats[link{from, to}]; s != nil {
		return *s
	}
	return LinkStats{}
}

// update applies a change that may cut links, then closes every tracked
// connection between two nodes whose link the change cut, in either
// direction. Connections already under a cut (black holes opened after it)
// are left to Heal.
func (f *Faults) update(change func()) {
	f.mu.Lock()
	f.init()
	cut := func(c *Conn) bool { return f.blocked(c.local, c.remote) || f.blocked(c.remote, c.local) }
	var open []*Conn
	for c := range f.conns {
		if !cut(c) {
			open = append(open, c)
		}
	}
	change()
	var victims []*Conn
	for _, c := range open {
		if cut(c) {
			victims = append(victims, c)
		}
	}
	f.mu.Unlock()
	for _, c := range victims {
		c.Close()
	}
}

func (f *Faults) blocked(from, to string) bool {
	if from == to {
		return false
	}
	return f.cuts[link{from, to}] || f.isolated[from] || f.isolated[to]
}

func (f *Faults) statsOf(l link) *LinkStats {
	s := f.stats[l]
	if s == nil {
		s = &LinkStats{}
		f.stats[l] = s
	}
	return s
}

// RegisterNode tells f that node id listens at addrs, so that dials to
// those addresses are subject to the faults of links to id. Muxes register
// their own addresses; a node whose Faults is private to its process (the
// unsafe test hooks of leasenode) registers its peers' addresses with it.
func (f *Faults) RegisterNode(id string, addrs ...string) { f.register(id, addrs...) }

func (f *Faults) register(id string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	for _, a := range addrs {
		f.addrs[a] = id
	}
}

func (f *Faults) unregister(id string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	for _, a := range addrs {
		if f.addrs[a] == id {
			delete(f.addrs, a)
		}
	}
}

func (f *Faults) nodeAt(address string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	return f.addrs[address]
}

// refuse reports (and counts) whether a dial from `from` to `to` must fail.
func (f *Faults) refuse(from, to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if f.blocked(from, to) {
		f.statsOf(link{from, to}).Refused++
		return true
	}
	return false
}

// track starts applying faults to c. It refuses (returns false) when the
// link in the direction the connection was opened is cut by now: a fault
// injected during the dial wins.
func (f *Faults) track(c *Conn, dialed bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	from, to := c.remote, c.local
	if dialed {
		from, to = c.local, c.remote
	}
	if f.blocked(from, to) {
		f.statsOf(link{from, to}).Refused++
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Faults) untrack(c *Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
}

type writeAction uint8

const (
	actWrite writeAction = iota
	actBlackHole
	actDrop
)

// onWrite decides the fate of one write on c, from c's end to the other.
func (f *Faults) onWrite(c *Conn) (writeAction, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	l := link{c.local, c.remote}
	s := f.statsOf(l)
	s.Writes++
	if c.blackHoled || f.blocked(l.from, l.to) {
		c.blackHoled = true
		s.BlackHoled++
		return actBlackHole, 0
	}
	if c.local != c.remote {
		if p := f.drops[l]; p > 0 && f.rng.Float64() < p {
			s.Dropped++
			return actDrop, 0
		}
	}
	d := f.delays[l]
	if d > 0 && c.local != c.remote {
		s.Delayed++
		return actWrite, d
	}
	return actWrite, 0
}
