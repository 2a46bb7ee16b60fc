package fsm_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
)

var (
	update   = flag.Bool("update", false, "rewrite testdata/golden and the expected blocks of testdata/scripts")
	seedFlag = flag.Uint64("fsm.seed", 0, "seed for the randomised fsm tests (0: pick one and log it)")
)

// seed returns the seed of a randomised test and logs it, so a failure can
// be replayed with -fsm.seed (STYLE rule 22).
func seed(t testing.TB) uint64 {
	t.Helper()
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -fsm.seed=%d)", s, s)
	return s
}

func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	s := seed(t)
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}

// replica is one state machine fed the way raft feeds it: every command at
// the next log index. Its leader is the one of the last epoch it applied.
type replica struct {
	t     testing.TB
	f     *fsm.FSM
	index uint64
	term  uint64
}

// newReplica returns a replica whose first entry is the epoch of term 1 at
// leader reading 0, so consensus time equals the leader's reading.
func newReplica(t testing.TB) *replica {
	t.Helper()
	r := &replica{t: t, f: fsm.New()}
	r.mustOK(r.epoch(1, 0))
	return r
}

// at stamps a command with the current leader's reading.
func (r *replica) at(reading time.Duration) fsm.Stamp {
	return fsm.Stamp{Term: r.term, Reading: int64(reading)}
}

func (r *replica) apply(c fsm.Command) fsm.Result {
	r.index++
	return r.f.Apply(r.index, c)
}

// epoch applies the epoch of a new leader whose clock reads reading.
func (r *replica) epoch(term uint64, reading time.Duration) fsm.Result {
	res := r.apply(fsm.Epoch(fsm.Stamp{Term: term, Reading: int64(reading)}))
	if res.Err == nil {
		r.term = term
	}
	return res
}

func (r *replica) tick(reading time.Duration) fsm.Result { return r.apply(fsm.Tick(r.at(reading))) }

func (r *replica) acquire(name, holder string, ttl, reading time.Duration) fsm.Result {
	return r.apply(fsm.Acquire(r.at(reading), raftlease.AcquireRequest{Name: name, Holder: holder, TTL: ttl}))
}

func (r *replica) renew(name, holder string, token uint64, ttl, reading time.Duration) fsm.Result {
	return r.apply(fsm.Renew(r.at(reading), raftlease.RenewRequest{Name: name, Holder: holder, Token: token, TTL: ttl}))
}

func (r *replica) release(name, holder string, token uint64, reading time.Duration) fsm.Result {
	return r.apply(fsm.Release(r.at(reading), raftlease.ReleaseRequest{Name: name, Holder: holder, Token: token}))
}

func (r *replica) expire(reading time.Duration, targets ...fsm.ExpireTarget) fsm.Result {
	return r.apply(fsm.Expire(r.at(reading), targets))
}

func (r *replica) mustOK(res fsm.Result) fsm.Result {
	r.t.Helper()
	if res.Err != nil {
		r.t.Fatalf("index %d: unexpected rejection: %v", r.index, res.Err)
	}
	return res
}

// now is the consensus time of the last command applied.
func (r *replica) now() time.Duration { return r.f.Clock().Now }

// get reads name at the current consensus time.
func (r *replica) get(name string) (raftlease.Lease, bool) {
	l, err := r.f.Get(name, r.now())
	if err != nil && !errors.Is(err, raftlease.ErrNotFound) {
		r.t.Fatalf("Get(%q): %v", name, err)
	}
	return l, err == nil
}

// clone returns an identical replica built through Snapshot and Restore.
func (r *replica) clone() *replica {
	r.t.Helper()
	var buf bytes.Buffer
	if _, err := r.f.Snapshot().WriteTo(&buf); err != nil {
		r.t.Fatalf("WriteTo: %v", err)
	}
	f, err := fsm.Restore(&buf)
	if err != nil {
		r.t.Fatalf("Restore: %v", err)
	}
	return &replica{t: r.t, f: f, index: r.index, term: r.term}
}

// noop is an entry that changes nothing but the applied index: a tick whose
// stamp belongs to no epoch.
func noop() fsm.Command { return fsm.Tick(fsm.Stamp{}) }

// applyRejected applies c, which must be rejected with an error matching
// want, and checks that the rejection changed no lease and no token: the
// replica ends byte-for-byte equal (Hash) to a clone that applied, at the
// same index, a tick with c's stamp instead. (A rejected command's stamp is
// still a reading of the leader's clock, so it moves consensus time as a
// tick would; see TestRejectionsStillMoveTime.)
func applyRejected(t *testing.T, r *replica, c fsm.Command, want error) fsm.Result {
	t.Helper()
	twin := r.clone()
	leases, last := listAll(t, r.f), r.f.LastToken()
	res := r.apply(c)
	twin.apply(fsm.Tick(c.Stamp))
	if !errors.Is(res.Err, want) {
		t.Fatalf("result error = %v, want one matching %v", res.Err, want)
	}
	if !fsm.IsRejection(res.Err) {
		t.Errorf("IsRejection(%v) = false", res.Err)
	}
	if len(res.Events) != 0 || res.Expired != 0 || res.Lease.Name != "" {
		t.Errorf("rejected command produced output: %+v", res)
	}
	if after := listAll(t, r.f); !reflect.DeepEqual(after, leases) || r.f.LastToken() != last {
		t.Errorf("rejected command changed leases or tokens:\n%s", dump(r.f))
	}
	if got, want := r.f.Hash(), twin.f.Hash(); got != want {
		t.Errorf("rejected command changed state: hash %08x, a tick with its stamp gives %08x\nstate after:\n%s\nwant:\n%s",
			got, want, dump(r.f), dump(twin.f))
	}
	return res
}

// snapshotBytes returns the encoded snapshot of f.
func snapshotBytes(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := f.Snapshot().WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

// dump renders the whole observable state of f, including leases that have
// expired but not been removed, for failure messages and scripts.
func dump(f *fsm.FSM) string {
	var b strings.Builder
	c := f.Clock()
	fmt.Fprintf(&b, "clock term=%d epoch_reading=%s epoch_base=%s now=%s\n",
		c.Term, time.Duration(c.EpochReading), c.EpochBase, c.Now)
	fmt.Fprintf(&b, "index=%d last_token=%d leases=%d", f.Index(), f.LastToken(), f.Len())
	live, err := f.List("", c.Now)
	if err != nil {
		fmt.Fprintf(&b, "\nlist: %v", err)
	}
	for _, l := range live {
		fmt.Fprintf(&b, "\nlive %s", formatLease(l))
	}
	for _, t := range f.Expired(c.Now, 0) {
		fmt.Fprintf(&b, "\ndue %s:%d", t.Name, t.Token)
	}
	return b.String()
}

// formatLease renders a lease on one line with its fields in a fixed order.
func formatLease(l raftlease.Lease) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s holder=%s token=%d ttl=%s deadline=%s remaining=%s rev=%d",
		l.Name, l.Holder, l.Token, l.TTL, l.Deadline, l.Remaining, l.Revision)
	if len(l.Metadata) > 0 {
		b.WriteString(" md=" + formatMetadata(l.Metadata))
	}
	if !l.AcquiredAt.IsZero() {
		b.WriteString(" acquired_at=" + strconv.FormatInt(l.AcquiredAt.UnixNano(), 10))
	}
	return b.String()
}

func formatMetadata(md map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(md)) {
		parts = append(parts, k+"="+md[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func formatEvent(e raftlease.Event) string {
	return fmt.Sprintf("event %s rev=%d %s", e.Type, e.Revision, formatLease(e.Lease))
}

// formatResult renders a result: the lease or the error, the events, and
// for batches each command's result, indented.
func formatResult(res fsm.Result, indent string) string {
	var lines []string
	switch {
	case res.Err != nil:
		lines = append(lines, indent+"error: "+res.Err.Error())
	case res.Lease.Name != "":
		lines = append(lines, indent+"ok "+formatLease(res.Lease))
	default:
		lines = append(lines, indent+"ok")
	}
	if res.Expired > 0 {
		lines = append(lines, fmt.Sprintf("%sexpired=%d", indent, res.Expired))
	}
	for i, sub := range res.Results {
		lines = append(lines, fmt.Sprintf("%s[%d]", indent, i))
		lines = append(lines, formatResult(sub, indent+"  "))
	}
	if res.Results == nil {
		for _, e := range res.Events {
			lines = append(lines, indent+formatEvent(e))
		}
	} else if len(res.Events) > 0 {
		lines = append(lines, indent+"batch events:")
		for _, e := range res.Events {
			lines = append(lines, indent+"  "+formatEvent(e))
		}
	}
	return strings.Join(lines, "\n")
}

// eventTypes lists the types of events, for compact assertions.
func eventTypes(evs []raftlease.Event) []raftlease.EventType {
	out := make([]raftlease.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

const (
	s1   = time.Second
	ms   = time.Millisecond
	hour = time.Hour
)
