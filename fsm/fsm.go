package fsm

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/raftlease/raftlease"
)

// lease is the replicated state of one lease. Values are immutable once
// stored: a change stores a new value, so a snapshot can share them.
type lease struct {
	name       string
	holder     string
	token      uint64
	ttl        time.Duration
	metadata   map[string]string
	acquiredAt int64         // wall clock of the proposing leader, Unix ns; informational
	deadline   time.Duration // consensus time
	revision   uint64
}

// FSM is the lease state machine. It is not safe for concurrent use: one
// goroutine applies commands and reads (the store serialises access).
type FSM struct {
	leases    map[string]*lease
	lastToken uint64
	clock     ConsensusClock
	index     uint64
}

// New returns an empty state machine.
func New() *FSM {
	return &FSM{leases: make(map[string]*lease)}
}

// Result is the outcome of applying one command.
type Result struct {
	// Lease is the lease after an acquire or renew that succeeded.
	Lease raftlease.Lease
	// Err is the rejection (ErrLeaseHeld, ErrNotHolder, ErrInvalidArgument);
	// a rejected command changed no lease and no token. Its stamp still
	// moved consensus time, as a tick would: the leader's clock did advance.
	Err error
	// Events are the changes the command made, in order.
	Events []raftlease.Event
	// Expired counts the leases an expire command removed.
	Expired int
	// Results holds one result per command of a batch.
	Results []Result
}

// Index returns the index of the last applied command.
func (f *FSM) Index() uint64 { return f.index }

// Clock returns the consensus clock state.
func (f *FSM) Clock() ConsensusClock { return f.clock }

// LastToken returns the highest fencing token issued so far. Every future
// token is greater.
func (f *FSM) LastToken() uint64 { return f.lastToken }

// Len returns how many leases the state holds, including expired ones not
// yet removed.
func (f *FSM) Len() int { return len(f.leases) }

// Now returns the consensus time a read stamped with s observes: what a
// command with that stamp would see, without changing state.
func (f *FSM) Now(s Stamp) time.Duration { return f.clock.At(s) }

// ApplyBytes decodes and applies an encoded command at the given log index.
// A decode error is returned as is (the caller must treat it as fatal unless
// Ignorable(data)); rejections are in the Result.
func (f *FSM) ApplyBytes(index uint64, data []byte) (Result, error) {
	cmd, err := Decode(data)
	if err != nil {
		return Result{}, err
	}
	return f.Apply(index, cmd), nil
}

// Apply applies cmd as the command at log index (which must grow) and
// returns its result. Time comes only from the command's stamp.
func (f *FSM) Apply(index uint64, cmd Command) Result {
	if index > f.index {
		f.index = index
	}
	if cmd.Kind != KindBatch {
		return f.apply(cmd)
	}
	res := Result{Results: make([]Result, 0, len(cmd.Commands))}
	for _, sub := range cmd.Commands {
		var r Result
		if sub.Kind == KindBatch {
			r = Result{Err: invalid("batch", "nested batch")}
		} else {
			r = f.apply(sub)
		}
		res.Events = append(res.Events, r.Events...)
		res.Expired += r.Expired
		res.Results = append(res.Results, r)
	}
	return res
}

func (f *FSM) apply(c Command) Result {
	if c.Kind == KindEpoch {
		if !f.clock.epoch(c.Stamp) {
			return Result{Err: invalid("epoch", fmt.Sprintf("term %d is not after term %d", c.Stamp.Term, f.clock.Term))}
		}
		return Result{}
	}
	now := f.clock.advance(c.Stamp)
	switch c.Kind {
	case KindAcquire:
		return f.acquire(c, now)
	case KindRenew:
		return f.renew(c, now)
	case KindRelease:
		return f.release(c, now)
	case KindExpire:
		return f.expire(c, now)
	case KindTick:
		return Result{}
	default:
		return Result{Err: invalid("kind", fmt.Sprintf("unknown command kind %d", c.Kind))}
	}
}

func invalid(field, reason string) error {
	return &raftlease.FieldError{Field: field, Reason: reason}
}

func (f *FSM) acquire(c Command, now time.Duration) Result {
	req := raftlease.AcquireRequest{Name: c.Name, Holder: c.Holder, TTL: c.TTL, Metadata: c.Metadata, TokenFloor: c.TokenFloor}
	if err := req.Validate(); err != nil {
		return Result{Err: err}
	}
	var events []raftlease.Event
	old := f.leases[c.Name]
	if old != nil && old.deadline > now {
		if old.holder != c.Holder {
			return Result{Err: &raftlease.HeldError{Current: old.view(now)}}
		}
		// Idempotent re-acquire: same token, fresh deadline, new TTL and
		// metadata.
		l := *old
		l.ttl, l.deadline, l.revision = c.TTL, now+c.TTL, f.index
		l.metadata = cloneMetadata(c.Metadata)
		f.leases[c.Name] = &l
		return Result{Lease: l.view(now), Events: []raftlease.Event{f.event(raftlease.EventRenewed, &l, now)}}
	}
	if old != nil {
		// Expired but not yet removed: the vacancy comes first.
		events = append(events, f.event(raftlease.EventExpired, old, now))
	}
	base := max(f.lastToken, c.TokenFloor)
	if base == math.MaxUint64 {
		// The next token would wrap to 0 and reuse every token issued.
		return Result{Err: invalid("token_floor", "no fencing token is left above it")}
	}
	token := base + 1
	f.lastToken = token
	l := &lease{
		name: c.Name, holder: c.Holder, token: token, ttl: c.TTL,
		metadata: cloneMetadata(c.Metadata), acquiredAt: c.Stamp.Wall,
		deadline: now + c.TTL, revision: f.index,
	}
	f.leases[c.Name] = l
	events = append(events, f.event(raftlease.EventAcquired, l, now))
	return Result{Lease: l.view(now), Events: events}
}

func (f *FSM) renew(c Command, now time.Duration) Result {
	req := raftlease.RenewRequest{Name: c.Name, Holder: c.Holder, Token: c.Token, TTL: c.TTL, Metadata: c.Metadata}
	if err := req.Validate(); err != nil {
		return Result{Err: err}
	}
	old, err := f.held(c.Name, c.Holder, c.Token, now)
	if err != nil {
		return Result{Err: err}
	}
	l := *old
	if c.TTL != 0 {
		l.ttl = c.TTL
	}
	if c.SetMetadata {
		l.metadata = cloneMetadata(c.Metadata)
	}
	l.deadline, l.revision = now+l.ttl, f.index
	f.leases[c.Name] = &l
	return Result{Lease: l.view(now), Events: []raftlease.Event{f.event(raftlease.EventRenewed, &l, now)}}
}

func (f *FSM) release(c Command, now time.Duration) Result {
	req := raftlease.ReleaseRequest{Name: c.Name, Holder: c.Holder, Token: c.Token}
	if err := req.Validate(); err != nil {
		return Result{Err: err}
	}
	old, err := f.held(c.Name, c.Holder, c.Token, now)
	if err != nil {
		return Result{Err: err}
	}
	delete(f.leases, c.Name)
	return Result{Events: []raftlease.Event{f.event(raftlease.EventReleased, old, now)}}
}

// held returns the live lease name if holder holds it under token.
func (f *FSM) held(name, holder string, token uint64, now time.Duration) (*lease, error) {
	l := f.leases[name]
	switch {
	case l == nil:
		return nil, fmt.Errorf("%w: lease %q is free", raftlease.ErrNotHolder, name)
	case l.deadline <= now:
		return nil, fmt.Errorf("%w: lease %q expired", raftlease.ErrNotHolder, name)
	case l.holder != holder:
		return nil, fmt.Errorf("%w: lease %q is held by %q", raftlease.ErrNotHolder, name, l.holder)
	case l.token != token:
		return nil, fmt.Errorf("%w: lease %q is held under token %d, not %d", raftlease.ErrNotHolder, name, l.token, token)
	}
	return l, nil
}

func (f *FSM) expire(c Command, now time.Duration) Result {
	var res Result
	for _, t := range c.Targets {
		l := f.leases[t.Name]
		if l == nil || l.token != t.Token || l.deadline > now {
			continue // renewed, re-acquired or already gone: nothing to do
		}
		delete(f.leases, t.Name)
		res.Events = append(res.Events, f.event(raftlease.EventExpired, l, now))
		res.Expired++
	}
	return res
}

func (f *FSM) event(t raftlease.EventType, l *lease, now time.Duration) raftlease.Event {
	v := l.view(now)
	if t == raftlease.EventReleased || t == raftlease.EventExpired {
		v.Remaining = 0
	}
	return raftlease.Event{Type: t, Lease: v, Revision: f.index}
}

// view renders l as seen at consensus time now. The metadata map is a copy.
func (l *lease) view(now time.Duration) raftlease.Lease {
	v := raftlease.Lease{
		Name: l.name, Holder: l.holder, Token: l.token, TTL: l.ttl,
		Metadata: cloneMetadata(l.metadata), Deadline: l.deadline,
		Remaining: max(l.deadline-now, 0), Revision: l.revision,
	}
	if l.acquiredAt != 0 {
		v.AcquiredAt = time.Unix(0, l.acquiredAt).UTC()
	}
	return v
}

func cloneMetadata(md map[string]string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	return maps.Clone(md)
}

// Get returns the named lease if it is live at consensus time now.
func (f *FSM) Get(name string, now time.Duration) (raftlease.Lease, error) {
	if err := raftlease.ValidateName(name); err != nil {
		return raftlease.Lease{}, err
	}
	l := f.leases[name]
	if l == nil || l.deadline <= now {
		return raftlease.Lease{}, fmt.Errorf("%w: %q", raftlease.ErrNotFound, name)
	}
	return l.view(now), nil
}

// List returns the leases live at consensus time now whose names start with
// prefix, sorted by name.
func (f *FSM) List(prefix string, now time.Duration) ([]raftlease.Lease, error) {
	if err := raftlease.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	out := make([]raftlease.Lease, 0)
	for name, l := range f.leases {
		if strings.HasPrefix(name, prefix) && l.deadline > now {
			out = append(out, l.view(now))
		}
	}
	slices.SortFunc(out, func(a, b raftlease.Lease) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Expired returns up to limit leases whose deadline is at or before now,
// earliest deadline first, for the leader to propose in an expire command.
func (f *FSM) Expired(now time.Duration, limit int) []ExpireTarget {
	var due []*lease
	for _, l := range f.leases {
		if l.deadline <= now {
			due = append(due, l)
		}
	}
	slices.SortFunc(due, func(a, b *lease) int {
		if a.deadline != b.deadline {
			return compare(a.deadline, b.deadline)
		}
		return strings.Compare(a.name, b.name)
	})
	if limit > 0 && len(due) > limit {
		due = due[:limit]
	}
	out := make([]ExpireTarget, len(due))
	for i, l := range due {
		out[i] = ExpireTarget{Name: l.name, Token: l.token}
	}
	return out
}

// NextDeadline returns the earliest deadline of any lease, and false when
// there are none.
func (f *FSM) NextDeadline() (time.Duration, bool) {
	var next time.Duration
	found := false
	for _, l := range f.leases {
		if !found || l.deadline < next {
			next, found = l.deadline, true
		}
	}
	return next, found
}

func compare(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// IsRejection reports whether err is an ordinary rejection a command may
// return (as opposed to a replica fault).
func IsRejection(err error) bool {
	return errors.Is(err, raftlease.ErrLeaseHeld) || errors.Is(err, raftlease.ErrNotHolder) || errors.Is(err, raftlease.ErrInvalidArgument)
}
