package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
)

// FuzzDecodeCommand: Decode never panics and fails only with its three
// sentinels; what it accepts re-encodes canonically (no longer than the
// input) to a command that decodes equal, and applying it does not panic and
// is deterministic.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range goldenCommands() {
		f.Add(fsm.Encode(c))
	}
	f.Add([]byte{})
	f.Add([]byte{0x81, 1, 0, 0, 0})
	f.Add(fsm.Encode(fsm.Batch(fsm.Tick(fsm.Stamp{}), fsm.Batch())))
	f.Add(fsm.Encode(fsm.Renew(fsm.Stamp{Term: 1}, raftlease.RenewRequest{Name: "a", Holder: "h", Token: 1, Metadata: map[string]string{}})))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := fsm.Decode(data)
		if err != nil {
			if !errors.Is(err, fsm.ErrMalformed) && !errors.Is(err, fsm.ErrUnknownCommand) && !errors.Is(err, fsm.ErrUnknownVersion) {
				t.Fatalf("Decode error %v matches no sentinel", err)
			}
			if !reflect.DeepEqual(c, fsm.Command{}) {
				t.Fatalf("failed Decode returned %+v", c)
			}
			return
		}
		enc := fsm.Encode(c)
		c2, err := fsm.Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(data))): %v\ndata %x\nenc  %x", err, data, enc)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-encoded command decodes differently:\n%+v\n%+v", c, c2)
		}
		if enc2 := fsm.Encode(c2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not canonical:\n%x\n%x", enc, enc2)
		}
		if len(enc) > len(data) {
			t.Fatalf("canonical encoding (%d bytes) longer than the input (%d)", len(enc), len(data))
		}
		a, b := newReplica(t), newReplica(t)
		ra, rb := a.apply(c), b.apply(c2)
		if !sameResult(ra, rb) || a.f.Hash() != b.f.Hash() {
			t.Fatalf("applying equal commands differs:\n%s\n%s", formatResult(ra, ""), formatResult(rb, ""))
		}
		if rb, err := b.f.ApplyBytes(b.index+1, enc); err != nil {
			t.Fatalf("ApplyBytes(canonical encoding): %v", err)
		} else if ra := a.apply(c); !sameResult(ra, rb) || a.f.Hash() != b.f.Hash() {
			t.Fatalf("ApplyBytes and Apply differ:\n%s\n%s", formatResult(ra, ""), formatResult(rb, ""))
		}
	})
}

// FuzzApply interprets its input as a sequence of small operations on three
// names and three holders (acquire, renew, release, expire, tick, leader
// changes with wild clocks, late stamps of old leaders, retried epochs,
// batches, reads) and checks the state machine's safety invariants after
// every step:
//
//   - consensus time never goes back, and never runs ahead of the time the
//     leaders' own clocks prove has passed (no early expiry in real time);
//   - tokens only grow: LastToken never decreases and every token issued is
//     above every token issued before;
//   - at most one live holder per name;
//   - no early expiry: a granted lease is found by Get, under its token,
//     until its deadline unless its holder released it, and nothing is
//     reported expired before its deadline;
//   - every event carries the entry's index as its revision;
//   - the final state survives a snapshot round trip.
func FuzzApply(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 10, 2, 0, 0, 1, 4, 5, 20, 3, 0, 0, 1})
	f.Add([]byte{0, 1, 1, 3, 1, 6, 200, 7, 5, 100, 0, 2, 2, 2, 11, 255, 4, 1, 0, 0, 0})
	// A retried epoch of the same term at an older reading: before the fix
	// in clock.go it rebased the term and ran consensus time ahead of the
	// leader's clock.
	f.Add([]byte{8, 0, 5, 50, 8, 0, 0, 1, 2, 3, 9, 3, 0, 0, 0, 0, 2, 1, 1, 1, 4, 1, 7, 0})
	f.Add([]byte{6, 255, 61, 0, 1, 2, 0, 5, 6, 0, 62, 5, 255, 6, 128, 0, 11, 255, 10, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newFuzzHarness(t)
		in := &fuzzInput{data: data}
		for steps := 0; !in.empty() && steps < 256; steps++ {
			h.step(h.op(in, true))
		}
		h.finish()
	})
}

// sameResult compares two results of the same command. Invalid-argument
// rejections compare by kind only: raftlease.ValidateMetadata ranges over
// the metadata map, so which of several bad keys its message names varies
// from run to run (reported to the lead; the state is unaffected).
func sameResult(a, b fsm.Result) bool {
	if errors.Is(a.Err, raftlease.ErrInvalidArgument) && errors.Is(b.Err, raftlease.ErrInvalidArgument) {
		a.Err, b.Err = nil, nil
	}
	if len(a.Results) != len(b.Results) {
		return false
	}
	for i := range a.Results {
		if !sameResult(a.Results[i], b.Results[i]) {
			return false
		}
	}
	a.Results, b.Results = nil, nil
	return reflect.DeepEqual(a, b)
}

type fuzzInput struct {
	data []byte
	off  int
}

func (in *fuzzInput) empty() bool { return in.off >= len(in.data) }

// byte returns the next input byte, or 0 when the input is used up.
func (in *fuzzInput) byte() byte {
	if in.empty() {
		return 0
	}
	b := in.data[in.off]
	in.off++
	return b
}

type grant struct {
	token    uint64
	deadline time.Duration
}

type fuzzHarness struct {
	t     *testing.T
	f     *fsm.FSM
	index uint64

	// The leader the operations come from, and an older one.
	term, oldTerm       uint64
	reading, oldReading int64

	// What the leaders' clocks prove, tracked independently of the FSM:
	// the time closed terms credited, and the current term's first epoch
	// reading and highest reading applied since.
	creditTerm               uint64
	credited                 time.Duration
	epochReading, maxReading int64

	prevNow   time.Duration
	maxToken  uint64
	lastToken uint64
	granted   map[string]grant // leases the FSM granted and did not take back
	applied   []fsm.Command    // for failure messages
}

var (
	fuzzNames   = []string{"a", "b", "c"}
	fuzzHolders = []string{"h1", "h2", "h3"}
	fuzzTTLs    = []time.Duration{raftlease.MinTTL, time.Second, 5 * time.Second, time.Minute}
)

func newFuzzHarness(t *testing.T) *fuzzHarness {
	h := &fuzzHarness{t: t, f: fsm.New(), granted: map[string]grant{}, term: 1}
	h.step(fsm.Epoch(fsm.Stamp{Term: 1}))
	return h
}

func (h *fuzzHarness) fail(format string, args ...any) {
	h.t.Helper()
	for i, c := range h.applied {
		h.t.Logf("%d: %s", i+1, describeCommand(c))
	}
	h.t.Fatalf("after entry %d: %s\nstate:\n%s", h.index, fmt.Sprintf(format, args...), dump(h.f))
}

// stamp advances the current leader's clock by p×50ms (p=255: a reading
// one second older than the latest, as a slow proposal would carry).
func (h *fuzzHarness) stamp(p byte) fsm.Stamp {
	if p == 255 {
		return fsm.Stamp{Term: h.term, Reading: h.reading - int64(time.Second)}
	}
	h.reading += int64(p) * int64(50*time.Millisecond)
	return fsm.Stamp{Term: h.term, Reading: h.reading}
}

// wild is a clock reading for a new leader: anything within ±2^62.
func wild(mantissa, shift byte) int64 {
	return (int64(mantissa) - 128) << (shift % 55)
}

// op builds the next operation's command from the input.
func (h *fuzzHarness) op(in *fuzzInput, batchOK bool) fsm.Command {
	code, p1, p2, p3 := in.byte()%12, in.byte(), in.byte(), in.byte()
	name, holder := fuzzNames[int(p1)%len(fuzzNames)], fuzzHolders[int(p2)%len(fuzzHolders)]
	token := func() uint64 {
		if p3&1 == 0 {
			if g, ok := h.granted[name]; ok {
				return g.token
			}
		}
		return uint64(p3 >> 1)
	}
	switch code {
	case 0, 1:
		var floor uint64
		if p3 >= 250 {
			floor = h.lastToken + uint64(p3-250)
		}
		return fsm.Acquire(h.stamp(in.byte()), raftlease.AcquireRequest{Name: name, Holder: holder, TTL: fuzzTTLs[p3%4], TokenFloor: floor})
	case 2:
		req := raftlease.RenewRequest{Name: name, Holder: holder, Token: token()}
		if p2&4 != 0 {
			req.TTL = fuzzTTLs[(p2>>3)%4]
		}
		if p2&32 != 0 {
			req.Metadata = map[string]string{"k": holder}
		}
		return fsm.Renew(h.stamp(in.byte()), req)
	case 3:
		return fsm.Release(h.stamp(in.byte()), raftlease.ReleaseRequest{Name: name, Holder: holder, Token: token()})
	case 4:
		st := h.stamp(p2)
		var targets []fsm.ExpireTarget
		if p3&2 == 0 {
			targets = h.f.Expired(h.f.Now(st), 0)
		}
		if p3&4 != 0 {
			targets = append(targets, fsm.ExpireTarget{Name: name, Token: token()})
		}
		return fsm.Expire(st, targets)
	case 5:
		return fsm.Tick(h.stamp(p1))
	case 6: // a new leader whose clock reads anything
		h.oldTerm, h.oldReading = h.term, h.reading
		h.term += 1 + uint64(p3%3)
		h.reading = wild(p1, p2)
		return fsm.Epoch(fsm.Stamp{Term: h.term, Reading: h.reading})
	case 7: // a late stamp of the previous leader
		st := fsm.Stamp{Term: h.oldTerm, Reading: h.oldReading + int64(p3)*int64(time.Second)}
		switch p2 % 3 {
		case 0:
			return fsm.Tick(st)
		case 1:
			return fsm.Acquire(st, raftlease.AcquireRequest{Name: name, Holder: holder, TTL: time.Second})
		default:
			return fsm.Renew(st, raftlease.RenewRequest{Name: name, Holder: holder, Token: token()})
		}
	case 8: // a retried epoch of this term, or a stale one of an older term
		if p1&1 == 0 {
			return fsm.Epoch(fsm.Stamp{Term: h.term, Reading: h.reading - int64(p2)*int64(100*time.Millisecond)})
		}
		return fsm.Epoch(fsm.Stamp{Term: h.oldTerm, Reading: wild(p2, p3)})
	case 9:
		if !batchOK {
			return fsm.Batch()
		}
		cmds := make([]fsm.Command, 1+int(p1)%4)
		for i := range cmds {
			cmds[i] = h.op(in, false)
		}
		return fsm.Batch(cmds...)
	case 10: // a read only: the invariants are checked after the empty entry
		return fsm.Tick(fsm.Stamp{})
	default: // a long wait of the current leader
		h.reading += int64(p1) * int64(time.Second)
		return fsm.Tick(fsm.Stamp{Term: h.term, Reading: h.reading})
	}
}

// credit accounts a stamp the way DESIGN.md "Time" rule 2 does: only the
// current leader's clock advance since its epoch counts.
func (h *fuzzHarness) credit(c fsm.Command) {
	if c.Kind == fsm.KindBatch {
		for _, sub := range c.Commands {
			if sub.Kind != fsm.KindBatch {
				h.credit(sub)
			}
		}
		return
	}
	s := c.Stamp
	switch {
	case c.Kind == fsm.KindEpoch && s.Term > h.creditTerm:
		if h.creditTerm != 0 && h.maxReading > h.epochReading {
			h.credited += time.Duration(h.maxReading - h.epochReading)
		}
		h.creditTerm, h.epochReading, h.maxReading = s.Term, s.Reading, s.Reading
	case s.Term == h.creditTerm && s.Term != 0:
		h.maxReading = max(h.maxReading, s.Reading)
	}
}

func (h *fuzzHarness) proven() time.Duration {
	if h.creditTerm == 0 || h.maxReading <= h.epochReading {
		return h.credited
	}
	return h.credited + time.Duration(h.maxReading-h.epochReading)
}

func (h *fuzzHarness) step(c fsm.Command) {
	h.t.Helper()
	h.index++
	h.applied = append(h.applied, c)
	h.credit(c)
	res := h.f.Apply(h.index, c)
	now := h.f.Clock().Now

	if now < h.prevNow {
		h.fail("consensus time went back from %v to %v", h.prevNow, now)
	}
	h.prevNow = now
	if p := h.proven(); now > p {
		h.fail("consensus time %v is ahead of the %v the leaders' clocks prove", now, p)
	}
	if lt := h.f.LastToken(); lt < h.lastToken {
		h.fail("LastToken went down from %d to %d", h.lastToken, lt)
	} else {
		h.lastToken = lt
	}
	for _, e := range res.Events {
		if e.Revision != h.index {
			h.fail("event %s has revision %d", formatEvent(e), e.Revision)
		}
		g, tracked := h.granted[e.Lease.Name]
		switch e.Type {
		case raftlease.EventAcquired:
			if e.Lease.Token <= h.maxToken {
				h.fail("token %d issued after token %d", e.Lease.Token, h.maxToken)
			}
			if tracked && now < g.deadline {
				h.fail("%s acquired while token %d was live until %v", e.Lease.Name, g.token, g.deadline)
			}
			h.maxToken = e.Lease.Token
			h.granted[e.Lease.Name] = grant{e.Lease.Token, e.Lease.Deadline}
		case raftlease.EventRenewed:
			if !tracked || g.token != e.Lease.Token {
				h.fail("renewed %s under token %d; granted %+v", e.Lease.Name, e.Lease.Token, g)
			}
			h.granted[e.Lease.Name] = grant{e.Lease.Token, e.Lease.Deadline}
		case raftlease.EventReleased, raftlease.EventExpired:
			if !tracked || g.token != e.Lease.Token {
				h.fail("%s of %s under token %d; granted %+v", e.Type, e.Lease.Name, e.Lease.Token, g)
			}
			if e.Type == raftlease.EventExpired && e.Lease.Deadline > now {
				h.fail("%s reported expired with deadline %v at consensus time %v", e.Lease.Name, e.Lease.Deadline, now)
			}
			delete(h.granted, e.Lease.Name)
		}
	}
	if h.f.LastToken() != h.maxToken {
		h.fail("LastToken %d, highest token issued %d", h.f.LastToken(), h.maxToken)
	}
	ls, err := h.f.List("", now)
	if err != nil {
		h.fail("List: %v", err)
	}
	live := map[string]bool{}
	for _, l := range ls {
		if live[l.Name] {
			h.fail("two live leases named %q", l.Name)
		}
		live[l.Name] = true
		if l.Revision > h.index || l.Remaining <= 0 || l.Remaining != l.Deadline-now {
			h.fail("listed %s", formatLease(l))
		}
	}
	for _, name := range fuzzNames {
		g, tracked := h.granted[name]
		l, err := h.f.Get(name, now)
		switch {
		case err != nil && !errors.Is(err, raftlease.ErrNotFound):
			h.fail("Get(%q): %v", name, err)
		case tracked && now < g.deadline && (err != nil || l.Token != g.token || l.Deadline != g.deadline):
			h.fail("granted %s token %d until %v, Get at %v: %s, %v", name, g.token, g.deadline, now, formatLease(l), err)
		case err == nil && (!tracked || l.Token != g.token):
			h.fail("Get(%q) = %s, nothing granted it", name, formatLease(l))
		case (err == nil) != live[name]:
			h.fail("Get(%q) and List disagree", name)
		}
	}
}

func (h *fuzzHarness) finish() {
	var buf bytes.Buffer
	if _, err := h.f.Snapshot().WriteTo(&buf); err != nil {
		h.fail("WriteTo: %v", err)
	}
	data := bytes.Clone(buf.Bytes())
	g, err := fsm.Restore(&buf)
	if err != nil {
		h.fail("Restore: %v", err)
	}
	buf.Reset()
	if _, err := g.Snapshot().WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		h.fail("restored state differs (%v):\n%s", err, dump(g))
	}
}

func describeCommand(c fsm.Command) string {
	s := fmt.Sprintf("%s term=%d reading=%d", c.Kind, c.Stamp.Term, c.Stamp.Reading)
	switch c.Kind {
	case fsm.KindAcquire, fsm.KindRenew, fsm.KindRelease:
		s += fmt.Sprintf(" name=%s holder=%s token=%d ttl=%s floor=%d", c.Name, c.Holder, c.Token, c.TTL, c.TokenFloor)
	case fsm.KindExpire:
		s += fmt.Sprintf(" targets=%v", c.Targets)
	case fsm.KindBatch:
		s = "batch:"
		for _, sub := range c.Commands {
			s += "\n    " + describeCommand(sub)
		}
	}
	return s
}
