package cluster

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftlease/raftlease/internal/skewclock"
	"github.com/raftlease/raftlease/transport"
)

// TestHooks are the node's fault-injection hooks, for the jepsen harness
// and nothing else. THEY ARE UNSAFE: they let a test skew the leader clock
// beyond the drift bound, cut links, crash the process at chosen points,
// fail log writes and even answer linearizable reads from a stale replica.
// A node runs them only when Options.TestHooks is set (leasenode: only with
// --unsafe-test-hooks); a nil *TestHooks is off and every hook is then a
// no-op, so a node without them behaves exactly as if they did not exist.
//
// The hooks are:
//
//   - Clock: a raftlease.Clock whose rate can be changed (clock-skew), to
//     be passed as Options.Clock; and a wall-clock offset (clock-jump) that
//     moves only the wall time stamped on commands (Stamp.Wall, reported as
//     acquired-at), as a stepped system clock would: decisions never use it.
//   - Faults: a transport.Faults to pass as Options.Faults, so this node's
//     side of each link can be cut, delayed or made to drop.
//   - crash points: ArmCrash makes the process exit (status CrashExitStatus)
//     when it reaches a named point: before or after applying an entry, in
//     the middle of persisting or restoring a snapshot;
//   - log store faults: SetLogStoreFaults delays log writes and fails a
//     fraction of them;
//   - SetStaleReads (negative control): linearizable reads are answered from
//     the local replica without confirming leadership, as a broken store
//     would. The harness must find the history not linearizable.
//
// All methods are safe for concurrent use.
type TestHooks struct {
	clock  *skewclock.Clock
	faults *transport.Faults

	wallOffset   atomic.Int64 // ns
	staleReads   atomic.Bool
	logDelay     atomic.Int64  // ns per log write
	logErrorRate atomic.Uint64 // math.Float64bits of the probability

	mu         sync.Mutex
	crashPoint CrashPoint
	crashAfter int // hits of crashPoint to let pass before exiting
	logWrites  uint64
	logFailed  uint64
	// exit ends the process at a crash point (os.Exit; tests replace it).
	exit func(code int)
}

// CrashPoint names a place where an armed crash point ends the process.
type CrashPoint string

// Crash points.
const (
	CrashBeforeApply     CrashPoint = "before-apply"     // a committed entry reached the state machine, not applied yet
	CrashAfterApply      CrashPoint = "after-apply"      // an entry was applied, its result not returned yet
	CrashSnapshotPersist CrashPoint = "snapshot-persist" // part of a snapshot written to the snapshot store
	CrashSnapshotRestore CrashPoint = "snapshot-restore" // part of a snapshot read while restoring it
)

// CrashPoints lists every crash point.
func CrashPoints() []CrashPoint {
	return []CrashPoint{CrashBeforeApply, CrashAfterApply, CrashSnapshotPersist, CrashSnapshotRestore}
}

// CrashExitStatus is the exit status of a process that reached an armed
// crash point.
const CrashExitStatus = 86

// ErrInjectedLogFailure is the error of a log write failed by the hooks.
var ErrInjectedLogFailure = errors.New("cluster: log store write failed by unsafe test hook")

// NewTestHooks returns hooks with no fault injected: the clock runs at rate
// 1, no link is cut, no crash point is armed.
func NewTestHooks() *TestHooks {
	return &TestHooks{clock: skewclock.New(), faults: transport.NewFaults(), exit: os.Exit}
}

// Clock returns the adjustable clock; pass it as Options.Clock.
func (h *TestHooks) Clock() *skewclock.Clock { return h.clock }

// Faults returns this node's link faults; pass it as Options.Faults.
func (h *TestHooks) Faults() *transport.Faults { return h.faults }

// SetClockRate runs the clock at rate times real time (1 = normal).
func (h *TestHooks) SetClockRate(rate float64) { h.clock.SetRate(rate) }

// SetWallOffset steps the wall time stamped on commands by d (0: none).
func (h *TestHooks) SetWallOffset(d time.Duration) { h.wallOffset.Store(int64(d)) }

// SetStaleReads turns the UNSAFE stale-read mode on or off.
func (h *TestHooks) SetStaleReads(on bool) { h.staleReads.Store(on) }

// SetLogStoreFaults delays every log write by delay and fails each with
// probability errorRate (0 and 0 restore the log store).
func (h *TestHooks) SetLogStoreFaults(delay time.Duration, errorRate float64) {
	h.logDelay.Store(int64(max(delay, 0)))
	h.logErrorRate.Store(math.Float64bits(min(max(errorRate, 0), 1)))
}

// ArmCrash makes the process exit at the (after+1)-th time it reaches
// point from now on. An empty point disarms.
func (h *TestHooks) ArmCrash(point CrashPoint, after int) error {
	if point != "" {
		known := false
		for _, p := range CrashPoints() {
			known = known || p == point
		}
		if !known {
			return fmt.Errorf("cluster: unknown crash point %q", point)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.crashPoint, h.crashAfter = point, max(after, 0)
	return nil
}

// HookState is what the hooks currently inject.
type HookState struct {
	ClockRate    float64       `json:"clock_rate"`
	WallOffset   time.Duration `json:"wall_offset_ns"`
	StaleReads   bool          `json:"unsafe_stale_reads"`
	LogDelay     time.Duration `json:"log_delay_ns"`
	LogErrorRate float64       `json:"log_error_rate"`
	LogWrites    uint64        `json:"log_writes"`
	LogFailed    uint64        `json:"log_writes_failed"`
	CrashPoint   CrashPoint    `json:"crash_point,omitempty"`
	CrashAfter   int           `json:"crash_after,omitempty"`
}

// State reports what the hooks inject now.
func (h *TestHooks) State() HookState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HookState{
		ClockRate: h.clock.Rate(), WallOffset: time.Duration(h.wallOffset.Load()), StaleReads: h.staleReads.Load(),
		LogDelay: time.Duration(h.logDelay.Load()), LogErrorRate: math.Float64frombits(h.logErrorRate.Load()),
		LogWrites: h.logWrites, LogFailed: h.logFailed, CrashPoint: h.crashPoint, CrashAfter: h.crashAfter,
	}
}

// --- The hooks the node calls; each is a no-op on nil hooks. ---

// crash exits the process when point is armed and its count is reached.
func (h *TestHooks) crash(point CrashPoint) {
	if h == nil {
		return
	}
	h.mu.Lock()
	if h.crashPoint != point {
		h.mu.Unlock()
		return
	}
	if h.crashAfter > 0 {
		h.crashAfter--
		h.mu.Unlock()
		return
	}
	exit := h.exit
	h.crashPoint = ""
	h.mu.Unlock()
	fmt.Fprintf(os.Stderr, "UNSAFE TEST HOOK: crash point %s reached; exiting with status %d\n", point, CrashExitStatus)
	exit(CrashExitStatus)
}

// armed reports whether point is armed (for the streaming crash points).
func (h *TestHooks) armed(point CrashPoint) bool {
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.crashPoint == point
}

// unsafeStaleReads reports whether linearizable reads must be answered
// locally (the negative-control mode).
func (h *TestHooks) unsafeStaleReads() bool { return h != nil && h.staleReads.Load() }

// wall is the offset added to the wall time stamped on commands.
func (h *TestHooks) wall() int64 {
	if h == nil {
		return 0
	}
	return h.wallOffset.Load()
}

// wrapLogStore returns s with the log store faults applied to its writes
// (s itself on nil hooks).
func (h *TestHooks) wrapLogStore(s raft.LogStore) raft.LogStore {
	if h == nil {
		return s
	}
	return &faultyLogStore{LogStore: s, h: h}
}

// logFault delays one log write and decides whether it fails.
func (h *TestHooks) logFault() error {
	if d := time.Duration(h.logDelay.Load()); d > 0 {
		time.Sleep(d)
	}
	rate := math.Float64frombits(h.logErrorRate.Load())
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logWrites++
	if rate > 0 && rand.Float64() < rate {
		h.logFailed++
		return ErrInjectedLogFailure
	}
	return nil
}

type faultyLogStore struct {
	raft.LogStore
	h *TestHooks
}

func (s *faultyLogStore) StoreLog(l *raft.Log) error {
	if err := s.h.logFault(); err != nil {
		return err
	}
	return s.LogStore.StoreLog(l)
}

func (s *faultyLogStore) StoreLogs(logs []*raft.Log) error {
	if err := s.h.logFault(); err != nil {
		return err
	}
	return s.LogStore.StoreLogs(logs)
}

// midWriter crashes at point after the first write has gone through, so
// the snapshot on disk is partial.
func (h *TestHooks) midWriter(w io.Writer, point CrashPoint) io.Writer {
	if !h.armed(point) {
		return w
	}
	return &crashWriter{w: w, h: h, point: point}
}

type crashWriter struct {
	w     io.Writer
	h     *TestHooks
	point CrashPoint
	n     int
}

func (c *crashWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if c.n++; c.n > 1 || len(p) > 64 {
		c.h.crash(c.point)
	}
	return n, err
}

// midReader crashes at point once a read has returned part of the
// snapshot: the restore has begun and the new state is not in place.
func (h *TestHooks) midReader(r io.Reader, point CrashPoint) io.Reader {
	if !h.armed(point) {
		return r
	}
	return &crashReader{r: r, h: h, point: point}
}

type crashReader struct {
	r     io.Reader
	h     *TestHooks
	point CrashPoint
	n     int
}

func (c *crashReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n++; n > 0 || c.n > 1 {
		c.h.crash(c.point)
	}
	return n, err
}
