package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
)

func propertyTrials(t *testing.T) (trials, length int) {
	if testing.Short() {
		return 30, 150
	}
	return 200, 300
}

// TestReplicasAgree: the same random commands at the same indexes give two
// state machines identical results and identical state after every entry
// (the determinism hashicorp fuzzy checks across a cluster).
func TestReplicasAgree(t *testing.T) {
	rng := newRand(t)
	trials, length := propertyTrials(t)
	for trial := range trials {
		cmds := newGen(rng).sequence(length)
		a, b := fsm.New(), fsm.New()
		results := make([]fsm.Result, len(cmds))
		for i, c := range cmds {
			ra, rb := a.Apply(uint64(i+1), c), b.Apply(uint64(i+1), c)
			results[i] = ra
			if !reflect.DeepEqual(ra, rb) {
				t.Fatalf("trial %d, entry %d: results differ:\n%s\n%s", trial, i+1, formatResult(ra, ""), formatResult(rb, ""))
			}
			if (i%20 == 0 || i == len(cmds)-1) && a.Hash() != b.Hash() {
				t.Fatalf("trial %d, entry %d: states differ:\n%s\n%s", trial, i+1, dump(a), dump(b))
			}
		}
		// And the encoded path agrees with the direct one.
		e := fsm.New()
		for i, c := range cmds {
			res, err := e.ApplyBytes(uint64(i+1), fsm.Encode(c))
			if hasNestedBatch(c) {
				// Encode writes it, Decode refuses it: a replica would stop.
				// Proposers never nest batches.
				if !errors.Is(err, fsm.ErrMalformed) {
					t.Fatalf("trial %d, entry %d: ApplyBytes of a nested batch: %v, want ErrMalformed", trial, i+1, err)
				}
				res = e.Apply(uint64(i+1), c)
			} else if err != nil {
				t.Fatalf("trial %d, entry %d: ApplyBytes: %v", trial, i+1, err)
			}
			if !reflect.DeepEqual(res, results[i]) {
				t.Fatalf("trial %d, entry %d: ApplyBytes result\n%s\nApply gave\n%s", trial, i+1, formatResult(res, ""), formatResult(results[i], ""))
			}
		}
		if e.Hash() != a.Hash() {
			t.Fatalf("trial %d: applying the encodings ends in another state:\n%s\n%s", trial, dump(e), dump(a))
		}
	}
}

// TestSnapshotMidwayAgrees: a replica restored from a snapshot taken
// mid-way, then fed the rest of the log, ends identical to one that never
// snapshotted, and gives the same results on the way. The snapshot is
// written only after its source has moved on, which also checks that a
// snapshot is an immutable view.
func TestSnapshotMidwayAgrees(t *testing.T) {
	rng := newRand(t)
	trials, length := propertyTrials(t)
	for trial := range trials {
		cmds := newGen(rng).sequence(length)
		cut := rng.IntN(len(cmds) + 1)
		a := fsm.New()
		var snap *fsm.Snapshot
		var early []byte
		results := make([]fsm.Result, len(cmds))
		for i, c := range cmds {
			if i == cut {
				snap = a.Snapshot()
				early = snapshotBytes(t, a)
			}
			results[i] = a.Apply(uint64(i+1), c)
		}
		if snap == nil {
			snap = a.Snapshot()
			early = snapshotBytes(t, a)
		}
		var buf bytes.Buffer
		if _, err := snap.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), early) {
			t.Fatalf("trial %d: a snapshot taken at entry %d writes other bytes once its FSM moved on", trial, cut)
		}
		if snap.Index() != uint64(cut) {
			t.Fatalf("trial %d: snapshot index %d, want %d", trial, snap.Index(), cut)
		}
		c, err := fsm.Restore(&buf)
		if err != nil {
			t.Fatalf("trial %d: Restore: %v", trial, err)
		}
		if !bytes.Equal(snapshotBytes(t, c), early) {
			t.Fatalf("trial %d: restored state snapshots differently", trial)
		}
		for i := cut; i < len(cmds); i++ {
			if res := c.Apply(uint64(i+1), cmds[i]); !reflect.DeepEqual(res, results[i]) {
				t.Fatalf("trial %d, entry %d after a restore at %d: result\n%s\nwant\n%s", trial, i+1, cut, formatResult(res, ""), formatResult(results[i], ""))
			}
		}
		if a.Hash() != c.Hash() || dump(a) != dump(c) {
			t.Fatalf("trial %d: restored at %d, ends\n%s\nwant\n%s", trial, cut, dump(c), dump(a))
		}
		now := a.Clock().Now
		la, _ := a.List("", now)
		lc, _ := c.List("", now)
		if !reflect.DeepEqual(la, lc) {
			t.Fatalf("trial %d: List differs after restore", trial)
		}
	}
}

// model is a naive reference for the lease rules (STYLE rule 19, after
// etcd's quorum/quick_test.go): a map from name to holder, token and
// deadline, and the consensus clock written as plainly as possible.
type model struct {
	leases map[string]modelLease
	last   uint64

	term         uint64
	epochReading int64
	epochBase    time.Duration
	now          time.Duration
}

type modelLease struct {
	holder   string
	token    uint64
	ttl      time.Duration
	deadline time.Duration
}

// outcome is what the model predicts for one command.
type outcome struct {
	err     error // nil, ErrLeaseHeld, ErrNotHolder or ErrInvalidArgument
	token   uint64
	expired []string // names an expire removed, in order
	events  []raftlease.EventType
	results []outcome // for a batch
}

func newModel() *model { return &model{leases: map[string]modelLease{}} }

// at is the consensus time of a stamp: the current leader's clock advance
// since its epoch, on top of the time when its epoch was applied, and never
// before the latest time. Anything else does not count.
func (m *model) at(s fsm.Stamp) time.Duration {
	if m.term == 0 || s.Term != m.term || s.Reading < m.epochReading {
		return m.now
	}
	return max(m.now, m.epochBase+time.Duration(s.Reading-m.epochReading))
}

func (m *model) apply(c fsm.Command) outcome {
	if c.Kind == fsm.KindBatch {
		var o outcome
		for _, sub := range c.Commands {
			var so outcome
			if sub.Kind == fsm.KindBatch {
				so = outcome{err: raftlease.ErrInvalidArgument}
			} else {
				so = m.apply(sub)
			}
			o.results = append(o.results, so)
			o.events = append(o.events, so.events...)
		}
		return o
	}
	if c.Kind == fsm.KindEpoch {
		switch {
		case c.Stamp.Term == 0 || c.Stamp.Term < m.term:
			return outcome{err: raftlease.ErrInvalidArgument}
		case c.Stamp.Term == m.term:
			m.now = m.at(c.Stamp)
		default:
			m.term, m.epochReading, m.epochBase = c.Stamp.Term, c.Stamp.Reading, m.now
		}
		return outcome{}
	}
	// Every command's stamp counts, rejected or not: it is a reading of the
	// leader's clock.
	m.now = m.at(c.Stamp)
	return m.decide(c, m.now)
}

func (m *model) decide(c fsm.Command, now time.Duration) outcome {
	cur, present := m.leases[c.Name]
	live := present && now < cur.deadline
	switch c.Kind {
	case fsm.KindAcquire:
		if (raftlease.AcquireRequest{Name: c.Name, Holder: c.Holder, TTL: c.TTL, Metadata: c.Metadata}).Validate() != nil {
			return outcome{err: raftlease.ErrInvalidArgument}
		}
		if live && cur.holder != c.Holder {
			return outcome{err: raftlease.ErrLeaseHeld}
		}
		if live {
			m.leases[c.Name] = modelLease{holder: c.Holder, token: cur.token, ttl: c.TTL, deadline: now + c.TTL}
			return outcome{token: cur.token, events: []raftlease.EventType{raftlease.EventRenewed}}
		}
		var o outcome
		if present {
			o.events = append(o.events, raftlease.EventExpired)
		}
		m.last = max(m.last, c.TokenFloor) + 1
		m.leases[c.Name] = modelLease{holder: c.Holder, token: m.last, ttl: c.TTL, deadline: now + c.TTL}
		o.token = m.last
		o.events = append(o.events, raftlease.EventAcquired)
		return o
	case fsm.KindRenew:
		if (raftlease.RenewRequest{Name: c.Name, Holder: c.Holder, Token: c.Token, TTL: c.TTL, Metadata: c.Metadata}).Validate() != nil {
			return outcome{err: raftlease.ErrInvalidArgument}
		}
		if !live || cur.holder != c.Holder || cur.token != c.Token {
			return outcome{err: raftlease.ErrNotHolder}
		}
		if c.TTL != 0 {
			cur.ttl = c.TTL
		}
		cur.deadline = now + cur.ttl
		m.leases[c.Name] = cur
		return outcome{token: cur.token, events: []raftlease.EventType{raftlease.EventRenewed}}
	case fsm.KindRelease:
		if (raftlease.ReleaseRequest{Name: c.Name, Holder: c.Holder, Token: c.Token}).Validate() != nil {
			return outcome{err: raftlease.ErrInvalidArgument}
		}
		if !live || cur.holder != c.Holder || cur.token != c.Token {
			return outcome{err: raftlease.ErrNotHolder}
		}
		delete(m.leases, c.Name)
		return outcome{events: []raftlease.EventType{raftlease.EventReleased}}
	case fsm.KindExpire:
		var o outcome
		for _, t := range c.Targets {
			if l, ok := m.leases[t.Name]; ok && l.token == t.Token && l.deadline <= now {
				delete(m.leases, t.Name)
				o.expired = append(o.expired, t.Name)
				o.events = append(o.events, raftlease.EventExpired)
			}
		}
		return o
	case fsm.KindTick:
		return outcome{}
	}
	return outcome{err: raftlease.ErrInvalidArgument}
}

// compare checks an FSM result against the model's outcome.
func (o outcome) compare(res fsm.Result) error {
	if (o.err == nil) != (res.Err == nil) || (o.err != nil && !errors.Is(res.Err, o.err)) {
		return fmt.Errorf("error %v, model says %v", res.Err, o.err)
	}
	if got := eventTypes(res.Events); !slices.Equal(got, o.events) {
		return fmt.Errorf("events %v, model says %v", got, o.events)
	}
	if o.results != nil || res.Results != nil {
		if len(o.results) != len(res.Results) {
			return fmt.Errorf("%d batch results, model says %d", len(res.Results), len(o.results))
		}
		for i := range o.results {
			if err := o.results[i].compare(res.Results[i]); err != nil {
				return fmt.Errorf("batch command %d: %w", i, err)
			}
		}
		return nil
	}
	if o.err == nil && res.Lease.Token != o.token {
		return fmt.Errorf("token %d, model says %d", res.Lease.Token, o.token)
	}
	var expired []string
	for _, e := range res.Events {
		if e.Type == raftlease.EventExpired && res.Lease.Name == "" {
			expired = append(expired, e.Lease.Name)
		}
	}
	if !slices.Equal(expired, o.expired) || res.Expired != len(o.expired) {
		return fmt.Errorf("expired %v (%d), model says %v", expired, res.Expired, o.expired)
	}
	return nil
}

// agree checks the whole FSM state against the model: the clock, the last
// token, and exactly the model's live leases, at most one per name.
func (m *model) agree(f *fsm.FSM) error {
	if got := f.Clock().Now; got != m.now {
		return fmt.Errorf("consensus time %v, model says %v", got, m.now)
	}
	if f.LastToken() != m.last {
		return fmt.Errorf("last token %d, model says %d", f.LastToken(), m.last)
	}
	if f.Len() != len(m.leases) {
		return fmt.Errorf("%d leases stored, model has %d", f.Len(), len(m.leases))
	}
	ls, err := f.List("", m.now)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, l := range ls {
		if seen[l.Name] {
			return fmt.Errorf("two live leases named %q", l.Name)
		}
		seen[l.Name] = true
		ml, ok := m.leases[l.Name]
		if !ok || m.now >= ml.deadline {
			return fmt.Errorf("live lease %s, model has none", formatLease(l))
		}
		if l.Holder != ml.holder || l.Token != ml.token || l.TTL != ml.ttl || l.Deadline != ml.deadline || l.Remaining != ml.deadline-m.now {
			return fmt.Errorf("lease %s, model says holder=%s token=%d ttl=%s deadline=%s", formatLease(l), ml.holder, ml.token, ml.ttl, ml.deadline)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.leases)) {
		if ml := m.leases[name]; m.now < ml.deadline && !seen[name] {
			return fmt.Errorf("model has live lease %s (holder=%s token=%d deadline=%s), FSM lists none", name, ml.holder, ml.token, ml.deadline)
		}
	}
	return nil
}

// TestAgainstReferenceModel runs random command sequences on the FSM and
// the naive model and checks that every acquire, renew, release, expire and
// epoch outcome agrees, and that after every entry the live leases (at most
// one holder per name) are exactly the model's.
func TestAgainstReferenceModel(t *testing.T) {
	rng := newRand(t)
	trials, length := propertyTrials(t)
	counts := map[string]int{}
	for trial := range trials {
		g := newGen(rng)
		f, m := fsm.New(), newModel()
		c := g.first()
		for i := range length {
			res := f.Apply(uint64(i+1), c)
			o := m.apply(c)
			count(counts, c, res)
			if err := o.compare(res); err != nil {
				t.Fatalf("trial %d, entry %d (%s): %v\n%s\nstate:\n%s", trial, i+1, c.Kind, err, formatResult(res, ""), dump(f))
			}
			if err := m.agree(f); err != nil {
				t.Fatalf("trial %d, after entry %d (%s): %v\nstate:\n%s", trial, i+1, c.Kind, err, dump(f))
			}
			c = g.next(f)
		}
	}
	t.Logf("outcomes: %v", counts)
	// The generator must reach every rule, or the agreement means little.
	for _, k := range []string{"acquire ok", "acquire held", "acquire renewed", "acquire took over expired",
		"renew ok", "renew not holder", "release ok", "release not holder", "expire removed", "expire nothing", "epoch refused", "invalid"} {
		if counts[k] == 0 {
			t.Errorf("no %q outcome in %d trials: the generator misses a rule", k, trials)
		}
	}
}

func hasNestedBatch(c fsm.Command) bool {
	return c.Kind == fsm.KindBatch && slices.ContainsFunc(c.Commands, func(s fsm.Command) bool { return s.Kind == fsm.KindBatch })
}

func count(counts map[string]int, c fsm.Command, res fsm.Result) {
	if c.Kind == fsm.KindBatch && res.Err != nil {
		counts["nested batch refused"]++
		return
	}
	if c.Kind == fsm.KindBatch {
		for i, sub := range c.Commands {
			count(counts, sub, res.Results[i])
		}
		return
	}
	k := c.Kind.String()
	switch {
	case errors.Is(res.Err, raftlease.ErrInvalidArgument) && c.Kind == fsm.KindEpoch:
		k += " refused"
	case errors.Is(res.Err, raftlease.ErrInvalidArgument):
		k = "invalid"
	case errors.Is(res.Err, raftlease.ErrLeaseHeld):
		k += " held"
	case errors.Is(res.Err, raftlease.ErrNotHolder):
		k += " not holder"
	case c.Kind == fsm.KindExpire && res.Expired > 0:
		k += " removed"
	case c.Kind == fsm.KindExpire:
		k += " nothing"
	case c.Kind == fsm.KindAcquire && len(res.Events) == 2:
		k += " took over expired"
	case c.Kind == fsm.KindAcquire && res.Events[0].Type == raftlease.EventRenewed:
		k += " renewed"
	default:
		k += " ok"
	}
	counts[k]++
}
