package fsm_test

// One table per rule of DESIGN.md's lease model. Every replica starts with
// the epoch of term 1 at leader reading 0, so a command stamped with reading
// r decides at consensus time r (until a test changes leader).

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
)

// checkLease compares a lease field by field, with a readable message.
func checkLease(t *testing.T, what string, got, want raftlease.Lease) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, formatLease(got), formatLease(want))
	}
}

// checkAccepted checks a successful acquire or renew: its lease, the lease
// Get returns, and that its last event carries that lease at the entry's
// revision.
func checkAccepted(t *testing.T, r *replica, res fsm.Result, want raftlease.Lease, events ...raftlease.EventType) {
	t.Helper()
	if res.Err != nil {
		t.Fatalf("rejected: %v", res.Err)
	}
	want.Revision = r.index
	checkLease(t, "result lease", res.Lease, want)
	if got, ok := r.get(want.Name); !ok {
		t.Errorf("Get(%q) found nothing after %s", want.Name, formatLease(want))
	} else {
		checkLease(t, "Get", got, want)
	}
	if got := eventTypes(res.Events); !slices.Equal(got, events) {
		t.Fatalf("events %v, want %v", got, events)
	}
	for _, e := range res.Events {
		if e.Revision != r.index {
			t.Errorf("event %s has revision %d, want the entry's index %d", e.Type, e.Revision, r.index)
		}
	}
	checkLease(t, "last event's lease", res.Events[len(res.Events)-1].Lease, want)
}

func TestAcquire(t *testing.T) {
	md := map[string]string{"addr": "10.0.0.1:8080", "zone": "a"}
	wall := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	stamp10 := fsm.Stamp{Term: 1, Reading: int64(10 * s1), Wall: wall.UnixNano()}
	req := func(name, holder string, ttl time.Duration) raftlease.AcquireRequest {
		return raftlease.AcquireRequest{Name: name, Holder: holder, TTL: ttl}
	}

	tests := []struct {
		name  string
		setup func(r *replica) // stamps before 10s
		req   raftlease.AcquireRequest
		// Exactly one of want and wantErr is set.
		want      raftlease.Lease
		wantErr   error
		events    []raftlease.EventType
		lastToken uint64
	}{
		{
			name: "free name gets token 1 and a deadline TTL after its own consensus time",
			req:  raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: 5 * s1, Metadata: md},
			want: raftlease.Lease{Name: "a", Holder: "h1", Token: 1, TTL: 5 * s1, Metadata: md,
				AcquiredAt: wall, Deadline: 15 * s1, Remaining: 5 * s1},
			events:    []raftlease.EventType{raftlease.EventAcquired},
			lastToken: 1,
		},
		{
			name:  "free name after other names gets the next token of the shared counter",
			setup: func(r *replica) { r.mustOK(r.acquire("b", "h2", 5*s1, 1*s1)) },
			req:   req("a", "h1", 5*s1),
			want: raftlease.Lease{Name: "a", Holder: "h1", Token: 2, TTL: 5 * s1,
				AcquiredAt: wall, Deadline: 15 * s1, Remaining: 5 * s1},
			events:    []raftlease.EventType{raftlease.EventAcquired},
			lastToken: 2,
		},
		{
			name:      "held by another holder is refused",
			setup:     func(r *replica) { r.mustOK(r.acquire("a", "h1", 20*s1, 1*s1)) },
			req:       req("a", "h2", 5*s1),
			wantErr:   raftlease.ErrLeaseHeld,
			lastToken: 1,
		},
		{
			name:      "held until one nanosecond after the command's consensus time",
			setup:     func(r *replica) { r.mustOK(r.acquire("a", "h1", 9*s1+1, 1*s1)) },
			req:       req("a", "h2", 5*s1),
			wantErr:   raftlease.ErrLeaseHeld,
			lastToken: 1,
		},
		{
			name:  "expired at exactly its deadline: the vacancy is reported, then the new holder",
			setup: func(r *replica) { r.mustOK(r.acquire("a", "h1", 9*s1, 1*s1)) },
			req:   req("a", "h2", 5*s1),
			want: raftlease.Lease{Name: "a", Holder: "h2", Token: 2, TTL: 5 * s1,
				AcquiredAt: wall, Deadline: 15 * s1, Remaining: 5 * s1},
			events:    []raftlease.EventType{raftlease.EventExpired, raftlease.EventAcquired},
			lastToken: 2,
		},
		{
			name:  "expired lease re-acquired by its old holder gets a new token",
			setup: func(r *replica) { r.mustOK(r.acquire("a", "h1", 1*s1, 1*s1)) },
			req:   req("a", "h1", 5*s1),
			want: raftlease.Lease{Name: "a", Holder: "h1", Token: 2, TTL: 5 * s1,
				AcquiredAt: wall, Deadline: 15 * s1, Remaining: 5 * s1},
			events:    []raftlease.EventType{raftlease.EventExpired, raftlease.EventAcquired},
			lastToken: 2,
		},
		{
			name: "re-acquire by the holder keeps the token and acquired-at, takes the new TTL and metadata",
			setup: func(r *replica) {
				r.mustOK(r.apply(fsm.Acquire(fsm.Stamp{Term: 1, Reading: int64(8 * s1), Wall: 42},
					raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: 5 * s1, Metadata: map[string]string{"old": "1"}})))
			},
			req: raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: 30 * s1, Metadata: md},
			want: raftlease.Lease{Name: "a", Holder: "h1", Token: 1, TTL: 30 * s1, Metadata: md,
				AcquiredAt: time.Unix(0, 42).UTC(), Deadline: 40 * s1, Remaining: 30 * s1},
			events:    []raftlease.EventType{raftlease.EventRenewed},
			lastToken: 1,
		},
		{
			name: "re-acquire without metadata clears it",
			setup: func(r *replica) {
				r.mustOK(r.apply(fsm.Acquire(r.at(8*s1), raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: 5 * s1, Metadata: md})))
			},
			req:       req("a", "h1", 5*s1),
			want:      raftlease.Lease{Name: "a", Holder: "h1", Token: 1, TTL: 5 * s1, Deadline: 15 * s1, Remaining: 5 * s1},
			events:    []raftlease.EventType{raftlease.EventRenewed},
			lastToken: 1,
		},
		{
			name: "token floor above the last token",
			req:  raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: 5 * s1, TokenFloor: 100},
			want: raftlease.Lease{Name: "a", Holder: "h1", Token: 101, TTL: 5 * s1,
				AcquiredAt: wall, Deadline: 15 * s1, Remaining: 5 * s1},
			events:    []raftlease.EventType{raftlease.EventAcquired},
			lastToken: 101,
		},
		{
			name: "token floor equal to the last token",
			setup: func(r *replica) {
				r.mustOK(r.acquire("b", "h1", 5*s1, 1*s1))
				r.mustOK(r.acquire("c", "h1", 5*s1, 1*s1))
			},
			req: raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: 5 * s1, TokenFloor: 2},
			want: raftlease.Lease{Name: "a", Holder: "h1", Token: 3, TTL: 5 * s1,
				AcquiredAt: wall, Deadline: 15 * s1, Remaining: 5 * s1},
			events:    []raftlease.EventType{raftlease.EventAcquired},
			lastToken: 3,
		},
		{
			name: "token floor below the last token does not lower it",
			setup: func(r *replica) {
				r.mustOK(r.apply(fsm.Acquire(r.at(s1), raftlease.AcquireRequest{Name: "b", Holder: "h1", TTL: s1, TokenFloor: 50})))
			},
			req: raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: 5 * s1, TokenFloor: 7},
			want: raftlease.Lease{Name: "a", Holder: "h1", Token: 52, TTL: 5 * s1,
				AcquiredAt: wall, Deadline: 15 * s1, Remaining: 5 * s1},
			events:    []raftlease.EventType{raftlease.EventAcquired},
			lastToken: 52,
		},
		{
			name: "token floor one below the largest token",
			req:  raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: 5 * s1, TokenFloor: math.MaxUint64 - 1},
			want: raftlease.Lease{Name: "a", Holder: "h1", Token: math.MaxUint64, TTL: 5 * s1,
				AcquiredAt: wall, Deadline: 15 * s1, Remaining: 5 * s1},
			events:    []raftlease.EventType{raftlease.EventAcquired},
			lastToken: math.MaxUint64,
		},
		{
			name:    "token floor at the largest token is refused rather than wrapping to 0",
			req:     raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: 5 * s1, TokenFloor: math.MaxUint64},
			wantErr: raftlease.ErrInvalidArgument,
		},
		{
			name: "no token left after the largest was issued",
			setup: func(r *replica) {
				r.mustOK(r.apply(fsm.Acquire(r.at(s1), raftlease.AcquireRequest{Name: "b", Holder: "h1", TTL: s1, TokenFloor: math.MaxUint64 - 1})))
			},
			req:       req("a", "h1", 5*s1),
			wantErr:   raftlease.ErrInvalidArgument,
			lastToken: math.MaxUint64,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReplica(t)
			if tt.setup != nil {
				tt.setup(r)
			}
			cmd := fsm.Acquire(stamp10, tt.req)
			if tt.wantErr != nil {
				res := applyRejected(t, r, cmd, tt.wantErr)
				if errors.Is(tt.wantErr, raftlease.ErrLeaseHeld) {
					var held *raftlease.HeldError
					if !errors.As(res.Err, &held) {
						t.Fatalf("%v is not a *HeldError", res.Err)
					}
					cur, _ := r.get("a")
					if held.Current.Holder != "h1" || held.Current.Token != cur.Token || held.Current.Deadline != cur.Deadline {
						t.Errorf("HeldError.Current = %s, want the current lease %s", formatLease(held.Current), formatLease(cur))
					}
					if want := cur.Deadline - 10*s1; held.Current.Remaining != want {
						t.Errorf("HeldError.Current.Remaining = %v, want %v (measured at the command's consensus time)", held.Current.Remaining, want)
					}
				}
			} else {
				res := r.apply(cmd)
				checkAccepted(t, r, res, tt.want, tt.events...)
				if len(res.Events) == 2 {
					exp := res.Events[0].Lease
					if exp.Token != 1 || exp.Holder != "h1" || exp.Remaining != 0 {
						t.Errorf("expired event carries %s, want the old lease (h1, token 1) with no time remaining", formatLease(exp))
					}
				}
				if r.now() != 10*s1 {
					t.Errorf("consensus time %v after the command, want 10s", r.now())
				}
			}
			if got := r.f.LastToken(); got != tt.lastToken {
				t.Errorf("LastToken = %d, want %d", got, tt.lastToken)
			}
		})
	}
}

func TestRenew(t *testing.T) {
	md1 := map[string]string{"v": "1"}
	md2 := map[string]string{"v": "2", "w": "x"}
	// Every case starts from: a held by h1 under token 1, TTL 5s, deadline
	// 13s, metadata md1.
	base := raftlease.Lease{Name: "a", Holder: "h1", Token: 1, TTL: 5 * s1, Metadata: md1}
	tests := []struct {
		name    string
		setup   func(r *replica)
		req     raftlease.RenewRequest
		at      time.Duration
		want    raftlease.Lease // Deadline, TTL, Metadata, Remaining differ from base
		wantErr error
	}{
		{
			name: "holder with its token before expiry moves the deadline, TTL 0 keeps the TTL, nil metadata keeps it",
			req:  raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1},
			at:   10 * s1,
			want: raftlease.Lease{TTL: 5 * s1, Metadata: md1, Deadline: 15 * s1, Remaining: 5 * s1},
		},
		{
			name: "one nanosecond before the deadline",
			req:  raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1},
			at:   13*s1 - 1,
			want: raftlease.Lease{TTL: 5 * s1, Metadata: md1, Deadline: 18*s1 - 1, Remaining: 5 * s1},
		},
		{
			name: "a new TTL replaces the TTL",
			req:  raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1, TTL: 30 * s1},
			at:   10 * s1,
			want: raftlease.Lease{TTL: 30 * s1, Metadata: md1, Deadline: 40 * s1, Remaining: 30 * s1},
		},
		{
			name: "a shorter TTL may bring the deadline forward",
			req:  raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1, TTL: raftlease.MinTTL},
			at:   10 * s1,
			want: raftlease.Lease{TTL: raftlease.MinTTL, Metadata: md1, Deadline: 10*s1 + raftlease.MinTTL, Remaining: raftlease.MinTTL},
		},
		{
			name: "metadata replaces the metadata",
			req:  raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1, Metadata: md2},
			at:   10 * s1,
			want: raftlease.Lease{TTL: 5 * s1, Metadata: md2, Deadline: 15 * s1, Remaining: 5 * s1},
		},
		{
			name: "empty non-nil metadata clears the metadata",
			req:  raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1, Metadata: map[string]string{}},
			at:   10 * s1,
			want: raftlease.Lease{TTL: 5 * s1, Deadline: 15 * s1, Remaining: 5 * s1},
		},
		{
			name: "a second renewal builds on the first",
			setup: func(r *replica) {
				r.mustOK(r.apply(fsm.Renew(r.at(9*s1), raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1, TTL: 7 * s1, Metadata: md2})))
			},
			req:  raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1},
			at:   10 * s1,
			want: raftlease.Lease{TTL: 7 * s1, Metadata: md2, Deadline: 17 * s1, Remaining: 7 * s1},
		},
		{name: "another holder", req: raftlease.RenewRequest{Name: "a", Holder: "h2", Token: 1}, at: 10 * s1, wantErr: raftlease.ErrNotHolder},
		{name: "another token", req: raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 2}, at: 10 * s1, wantErr: raftlease.ErrNotHolder},
		{name: "at exactly the deadline", req: raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1}, at: 13 * s1, wantErr: raftlease.ErrNotHolder},
		{name: "long after expiry", req: raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1}, at: hour, wantErr: raftlease.ErrNotHolder},
		{name: "a free name", req: raftlease.RenewRequest{Name: "b", Holder: "h1", Token: 1}, at: 10 * s1, wantErr: raftlease.ErrNotHolder},
		{
			name:    "after release",
			setup:   func(r *replica) { r.mustOK(r.release("a", "h1", 1, 9*s1)) },
			req:     raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1},
			at:      10 * s1,
			wantErr: raftlease.ErrNotHolder,
		},
		{
			name:    "the old token after the holder re-acquired an expired lease",
			setup:   func(r *replica) { r.mustOK(r.acquire("a", "h1", 5*s1, 14*s1)) },
			req:     raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1},
			at:      15 * s1,
			wantErr: raftlease.ErrNotHolder,
		},
		{
			name:    "the old token after another holder took the expired lease",
			setup:   func(r *replica) { r.mustOK(r.acquire("a", "h2", 5*s1, 14*s1)) },
			req:     raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1},
			at:      15 * s1,
			wantErr: raftlease.ErrNotHolder,
		},
		{name: "token 0", req: raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 0}, at: 10 * s1, wantErr: raftlease.ErrInvalidArgument},
		{name: "TTL below the minimum", req: raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1, TTL: raftlease.MinTTL - 1}, at: 10 * s1, wantErr: raftlease.ErrInvalidArgument},
		{name: "TTL above the maximum", req: raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1, TTL: raftlease.MaxTTL + 1}, at: 10 * s1, wantErr: raftlease.ErrInvalidArgument},
		{name: "negative TTL", req: raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1, TTL: -s1}, at: 10 * s1, wantErr: raftlease.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReplica(t)
			r.mustOK(r.apply(fsm.Acquire(fsm.Stamp{Term: 1, Reading: int64(8 * s1), Wall: 7},
				raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: 5 * s1, Metadata: md1})))
			if tt.setup != nil {
				tt.setup(r)
			}
			cmd := fsm.Renew(r.at(tt.at), tt.req)
			if tt.wantErr != nil {
				applyRejected(t, r, cmd, tt.wantErr)
				return
			}
			want := base
			want.AcquiredAt = time.Unix(0, 7).UTC()
			want.TTL, want.Metadata, want.Deadline, want.Remaining = tt.want.TTL, tt.want.Metadata, tt.want.Deadline, tt.want.Remaining
			checkAccepted(t, r, r.apply(cmd), want, raftlease.EventRenewed)
			if r.f.LastToken() != 1 {
				t.Errorf("LastToken = %d after a renewal, want 1", r.f.LastToken())
			}
		})
	}
}

// TestRenewNegativeTTLThroughTheLog checks that encoding cannot turn an
// invalid renewal into a valid one: a negative TTL must not become the
// "keep the TTL" zero on its way through the log.
func TestRenewNegativeTTLThroughTheLog(t *testing.T) {
	r := newReplica(t)
	r.mustOK(r.acquire("a", "h1", 5*s1, 0))
	data := fsm.Encode(fsm.Renew(r.at(s1), raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1, TTL: -s1}))
	r.index++
	res, err := r.f.ApplyBytes(r.index, data)
	if err != nil {
		t.Fatalf("ApplyBytes: %v", err)
	}
	if !errors.Is(res.Err, raftlease.ErrInvalidArgument) {
		t.Fatalf("renew with a negative TTL, applied from its encoding: %v, want ErrInvalidArgument", res.Err)
	}
}

func TestRelease(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(r *replica)
		req     raftlease.ReleaseRequest
		at      time.Duration
		wantErr error
	}{
		{name: "by the holder with its token", req: raftlease.ReleaseRequest{Name: "a", Holder: "h1", Token: 1}, at: 2 * s1},
		{name: "one nanosecond before the deadline", req: raftlease.ReleaseRequest{Name: "a", Holder: "h1", Token: 1}, at: 5*s1 - 1},
		{name: "by another holder", req: raftlease.ReleaseRequest{Name: "a", Holder: "h2", Token: 1}, at: 2 * s1, wantErr: raftlease.ErrNotHolder},
		{name: "with another token", req: raftlease.ReleaseRequest{Name: "a", Holder: "h1", Token: 2}, at: 2 * s1, wantErr: raftlease.ErrNotHolder},
		{name: "after expiry", req: raftlease.ReleaseRequest{Name: "a", Holder: "h1", Token: 1}, at: 5 * s1, wantErr: raftlease.ErrNotHolder},
		{name: "a free name", req: raftlease.ReleaseRequest{Name: "b", Holder: "h1", Token: 1}, at: 2 * s1, wantErr: raftlease.ErrNotHolder},
		{
			name:    "twice",
			setup:   func(r *replica) { r.mustOK(r.release("a", "h1", 1, s1)) },
			req:     raftlease.ReleaseRequest{Name: "a", Holder: "h1", Token: 1},
			at:      2 * s1,
			wantErr: raftlease.ErrNotHolder,
		},
		{
			name:    "by the old holder after another took the name",
			setup:   func(r *replica) { r.mustOK(r.acquire("a", "h2", 5*s1, 6*s1)) },
			req:     raftlease.ReleaseRequest{Name: "a", Holder: "h1", Token: 1},
			at:      7 * s1,
			wantErr: raftlease.ErrNotHolder,
		},
		{name: "token 0", req: raftlease.ReleaseRequest{Name: "a", Holder: "h1"}, at: 2 * s1, wantErr: raftlease.ErrInvalidArgument},
		{name: "empty holder", req: raftlease.ReleaseRequest{Name: "a", Token: 1}, at: 2 * s1, wantErr: raftlease.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReplica(t)
			held := r.mustOK(r.acquire("a", "h1", 5*s1, 0)).Lease
			if tt.setup != nil {
				tt.setup(r)
			}
			cmd := fsm.Release(r.at(tt.at), tt.req)
			if tt.wantErr != nil {
				applyRejected(t, r, cmd, tt.wantErr)
				return
			}
			res := r.apply(cmd)
			if res.Err != nil {
				t.Fatalf("release: %v", res.Err)
			}
			if res.Lease.Name != "" {
				t.Errorf("release returned a lease: %s", formatLease(res.Lease))
			}
			if got := eventTypes(res.Events); !slices.Equal(got, []raftlease.EventType{raftlease.EventReleased}) {
				t.Fatalf("events %v, want [released]", got)
			}
			want := held
			want.Remaining = 0
			checkLease(t, "released event's lease", res.Events[0].Lease, want)
			if res.Events[0].Revision != r.index {
				t.Errorf("event revision %d, want %d", res.Events[0].Revision, r.index)
			}
			if l, ok := r.get("a"); ok {
				t.Errorf("Get after release found %s", formatLease(l))
			}
			if r.f.Len() != 0 {
				t.Errorf("Len = %d after release, want 0", r.f.Len())
			}
			// The name is free at once, for anyone, under a new token.
			next := r.mustOK(r.acquire("a", "h2", 5*s1, tt.at))
			if next.Lease.Token != 2 {
				t.Errorf("token after release = %d, want 2", next.Lease.Token)
			}
		})
	}
}

func TestExpire(t *testing.T) {
	a1 := fsm.ExpireTarget{Name: "a", Token: 1}
	b2 := fsm.ExpireTarget{Name: "b", Token: 2}
	tests := []struct {
		name    string
		setup   func(r *replica)
		at      time.Duration
		targets []fsm.ExpireTarget
		removed []string // in event order
		// live is what List returns afterwards, as name:holder:token.
		live []string
	}{
		{name: "due with the right token", at: 5 * s1, targets: []fsm.ExpireTarget{a1}, removed: []string{"a"}, live: []string{"b:h2:2"}},
		{name: "long past due; an untargeted due lease stays", at: hour, targets: []fsm.ExpireTarget{a1}, removed: []string{"a"}, live: []string{"b:h2:2"}},
		{name: "one nanosecond before the deadline", at: 5*s1 - 1, targets: []fsm.ExpireTarget{a1}, live: []string{"a:h1:1", "b:h2:2"}},
		{name: "another token", at: 6 * s1, targets: []fsm.ExpireTarget{{Name: "a", Token: 2}}, live: []string{"a:h1:1", "b:h2:2"}},
		{
			name:    "renewed since the leader looked: the stale expire leaves it",
			setup:   func(r *replica) { r.mustOK(r.renew("a", "h1", 1, 0, 4*s1)) },
			at:      6 * s1,
			targets: []fsm.ExpireTarget{a1},
			live:    []string{"a:h1:1", "b:h2:2"},
		},
		{
			name:    "re-acquired by the holder since: the stale expire leaves it",
			setup:   func(r *replica) { r.mustOK(r.acquire("a", "h1", 5*s1, 4*s1)) },
			at:      6 * s1,
			targets: []fsm.ExpireTarget{a1},
			live:    []string{"a:h1:1", "b:h2:2"},
		},
		{
			name:    "taken by another holder since: the stale expire leaves the new lease",
			setup:   func(r *replica) { r.mustOK(r.acquire("a", "h3", 5*s1, 6*s1)) },
			at:      7 * s1,
			targets: []fsm.ExpireTarget{a1},
			live:    []string{"a:h3:3", "b:h2:2"},
		},
		{
			name:    "already released",
			setup:   func(r *replica) { r.mustOK(r.release("a", "h1", 1, s1)) },
			at:      6 * s1,
			targets: []fsm.ExpireTarget{a1},
			live:    []string{"b:h2:2"},
		},
		{name: "several due, in target order", at: 10 * s1, targets: []fsm.ExpireTarget{b2, {Name: "c", Token: 9}, a1}, removed: []string{"b", "a"}},
		{name: "only the due ones of several", at: 7 * s1, targets: []fsm.ExpireTarget{a1, b2}, removed: []string{"a"}, live: []string{"b:h2:2"}},
		{name: "the same target twice", at: 7 * s1, targets: []fsm.ExpireTarget{a1, a1}, removed: []string{"a"}, live: []string{"b:h2:2"}},
		{name: "no targets", at: 7 * s1, live: []string{"a:h1:1", "b:h2:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReplica(t)
			r.mustOK(r.acquire("a", "h1", 5*s1, 0))  // token 1, deadline 5s
			r.mustOK(r.acquire("b", "h2", 10*s1, 0)) // token 2, deadline 10s
			if tt.setup != nil {
				tt.setup(r)
			}
			res := r.expire(tt.at, tt.targets...)
			if res.Err != nil {
				t.Fatalf("expire: %v", res.Err)
			}
			var removed []string
			for _, e := range res.Events {
				if e.Type != raftlease.EventExpired || e.Revision != r.index || e.Lease.Remaining != 0 {
					t.Errorf("unexpected event %s", formatEvent(e))
				}
				removed = append(removed, e.Lease.Name)
			}
			if !slices.Equal(removed, tt.removed) {
				t.Errorf("removed %v, want %v", removed, tt.removed)
			}
			if res.Expired != len(tt.removed) {
				t.Errorf("Expired = %d, want %d", res.Expired, len(tt.removed))
			}
			// Removal is physical: nothing removed remains in the state.
			var live []string
			for _, l := range listAll(t, r.f) {
				live = append(live, l.Name+":"+l.Holder+":"+itoa(l.Token))
			}
			if !slices.Equal(live, tt.live) {
				t.Errorf("leases left %v, want %v", live, tt.live)
			}
		})
	}
}

// listAll lists every lease in the state, expired or not: it reads at
// consensus time zero, before every deadline (consensus time starts at zero
// and a TTL is positive).
func listAll(t *testing.T, f *fsm.FSM) []raftlease.Lease {
	t.Helper()
	ls, err := f.List("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != f.Len() {
		t.Fatalf("List at time 0 shows %d leases, Len is %d", len(ls), f.Len())
	}
	return ls
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// TestTokensStrictlyIncrease walks one name and several others through
// every way a lease ends (release, expiry removed or not, takeover) and
// restarts, and checks each new holder's token is above every token issued
// before, for any name, and never reused.
func TestTokensStrictlyIncrease(t *testing.T) {
	r := newReplica(t)
	var issued []uint64
	grant := func(res fsm.Result) raftlease.Lease {
		t.Helper()
		r.mustOK(res)
		for _, e := range res.Events {
			if e.Type != raftlease.EventAcquired {
				continue
			}
			if n := len(issued); n > 0 && e.Lease.Token <= issued[n-1] {
				t.Fatalf("token %d issued after %d", e.Lease.Token, issued[n-1])
			}
			issued = append(issued, e.Lease.Token)
			if r.f.LastToken() != e.Lease.Token {
				t.Fatalf("LastToken = %d, just issued %d", r.f.LastToken(), e.Lease.Token)
			}
		}
		return res.Lease
	}
	l := grant(r.acquire("a", "h1", 5*s1, 0))
	grant(r.acquire("b", "h1", 5*s1, 0))
	before := len(issued)
	grant(r.acquire("a", "h1", 5*s1, s1)) // idempotent: no new token
	grant(r.renew("a", "h1", l.Token, 0, 2*s1))
	if len(issued) != before {
		t.Fatalf("re-acquire or renew issued a token: %v", issued)
	}
	r.mustOK(r.release("a", "h1", l.Token, 3*s1))
	l = grant(r.acquire("a", "h1", 5*s1, 3*s1)) // same holder after release
	l = grant(r.acquire("a", "h2", 5*s1, 8*s1)) // takeover of an expired, unremoved lease
	r.expire(20*s1, fsm.ExpireTarget{Name: "a", Token: l.Token})
	l = grant(r.acquire("a", "h1", 5*s1, 20*s1)) // after removal
	grant(r.apply(fsm.Acquire(r.at(21*s1), raftlease.AcquireRequest{Name: "c", Holder: "h3", TTL: s1, TokenFloor: 1000})))
	if issued[len(issued)-1] != 1001 {
		t.Fatalf("token with floor 1000 = %d", issued[len(issued)-1])
	}
	// A restarted replica (restore) and a new leader continue above.
	r = r.clone()
	r.mustOK(r.epoch(2, -hour))
	grant(r.acquire("d", "h4", 5*s1, -hour))
	l = grant(r.acquire("a", "h4", 5*s1, -hour+10*s1))
	grant(r.acquire("a", "h1", 5*s1, -hour+20*s1))
	grant(r.apply(fsm.Acquire(r.at(-hour+30*s1), raftlease.AcquireRequest{Name: "e", Holder: "h3", TTL: s1, TokenFloor: 5})))
	if len(issued) != 10 {
		t.Fatalf("issued %v, want 10 tokens", issued)
	}
	t.Logf("tokens issued: %v", issued)
}

// TestRevisionIsTheApplyIndex: revisions are the log index of the entry,
// including gaps in the indexes the FSM sees (raft's own entries), and all
// commands of a batch share their entry's index.
func TestRevisionIsTheApplyIndex(t *testing.T) {
	f := fsm.New()
	st := func(r time.Duration) fsm.Stamp { return fsm.Stamp{Term: 1, Reading: int64(r)} }
	if res := f.Apply(3, fsm.Epoch(st(0))); res.Err != nil {
		t.Fatal(res.Err)
	}
	res := f.Apply(5, fsm.Acquire(st(s1), raftlease.AcquireRequest{Name: "a", Holder: "h", TTL: 10 * s1}))
	if res.Lease.Revision != 5 || res.Events[0].Revision != 5 || f.Index() != 5 {
		t.Fatalf("acquire at index 5: lease rev %d, event rev %d, Index %d", res.Lease.Revision, res.Events[0].Revision, f.Index())
	}
	res = f.Apply(9, fsm.Renew(st(2*s1), raftlease.RenewRequest{Name: "a", Holder: "h", Token: 1}))
	if res.Lease.Revision != 9 || res.Events[0].Revision != 9 || f.Index() != 9 {
		t.Fatalf("renew at index 9: lease rev %d, event rev %d, Index %d", res.Lease.Revision, res.Events[0].Revision, f.Index())
	}
	// A rejection uses its index but changes no lease.
	res = f.Apply(10, fsm.Renew(st(2*s1), raftlease.RenewRequest{Name: "a", Holder: "x", Token: 1}))
	if res.Err == nil || f.Index() != 10 {
		t.Fatalf("rejected renew at 10: err %v, Index %d", res.Err, f.Index())
	}
	if l, _ := f.Get("a", 2*s1); l.Revision != 9 {
		t.Fatalf("lease revision %d after a rejection, want 9", l.Revision)
	}
	res = f.Apply(12, fsm.Batch(
		fsm.Acquire(st(3*s1), raftlease.AcquireRequest{Name: "b", Holder: "h", TTL: 10 * s1}),
		fsm.Release(st(3*s1), raftlease.ReleaseRequest{Name: "a", Holder: "h", Token: 1}),
		fsm.Acquire(st(3*s1), raftlease.AcquireRequest{Name: "a", Holder: "g", TTL: 10 * s1}),
	))
	if len(res.Events) != 3 {
		t.Fatalf("batch events: %v", eventTypes(res.Events))
	}
	for _, e := range res.Events {
		if e.Revision != 12 {
			t.Errorf("batch event %s has revision %d, want 12", e.Type, e.Revision)
		}
	}
	for _, l := range listAll(t, f) {
		if l.Revision != 12 {
			t.Errorf("lease %s has revision %d, want 12", l.Name, l.Revision)
		}
	}
	if f.Index() != 12 {
		t.Errorf("Index = %d, want 12", f.Index())
	}
}

// TestInvalidInputChangesNothing feeds commands that break each limit of
// the raftlease package. Each is refused with ErrInvalidArgument, changes no
// lease and no token, and leaves the state exactly as a tick with its stamp
// would (its stamp is later than anything applied, so that is checked too).
func TestInvalidInputChangesNothing(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	manyKeys := map[string]string{}
	for i := range raftlease.MaxMetadataKeys + 1 {
		manyKeys["k"+itoa(uint64(i))] = "v"
	}
	bigValues := map[string]string{}
	for i := range raftlease.MaxMetadataSize/raftlease.MaxMetadataValueLen + 1 {
		bigValues["k"+itoa(uint64(i))] = long(raftlease.MaxMetadataValueLen)
	}
	acq := func(mut func(*raftlease.AcquireRequest)) raftlease.AcquireRequest {
		r := raftlease.AcquireRequest{Name: "n", Holder: "h", TTL: 5 * s1}
		mut(&r)
		return r
	}
	acquires := map[string]raftlease.AcquireRequest{
		"empty name":                 acq(func(r *raftlease.AcquireRequest) { r.Name = "" }),
		"name too long":              acq(func(r *raftlease.AcquireRequest) { r.Name = long(raftlease.MaxNameLen + 1) }),
		"name with a space":          acq(func(r *raftlease.AcquireRequest) { r.Name = "a b" }),
		"name with a brace":          acq(func(r *raftlease.AcquireRequest) { r.Name = "a{b}" }),
		"name with a non-ASCII rune": acq(func(r *raftlease.AcquireRequest) { r.Name = "é" }),
		"empty holder":               acq(func(r *raftlease.AcquireRequest) { r.Holder = "" }),
		"holder too long":            acq(func(r *raftlease.AcquireRequest) { r.Holder = long(raftlease.MaxHolderLen + 1) }),
		"holder with a space":        acq(func(r *raftlease.AcquireRequest) { r.Holder = "h 1" }),
		"holder with a newline":      acq(func(r *raftlease.AcquireRequest) { r.Holder = "h\n" }),
		"holder not UTF-8":           acq(func(r *raftlease.AcquireRequest) { r.Holder = "h\xff" }),
		"zero TTL":                   acq(func(r *raftlease.AcquireRequest) { r.TTL = 0 }),
		"negative TTL":               acq(func(r *raftlease.AcquireRequest) { r.TTL = -5 * s1 }),
		"TTL below the minimum":      acq(func(r *raftlease.AcquireRequest) { r.TTL = raftlease.MinTTL - 1 }),
		"TTL above the maximum":      acq(func(r *raftlease.AcquireRequest) { r.TTL = raftlease.MaxTTL + 1 }),
		"too many metadata keys":     acq(func(r *raftlease.AcquireRequest) { r.Metadata = manyKeys }),
		"metadata key too long": acq(func(r *raftlease.AcquireRequest) {
			r.Metadata = map[string]string{long(raftlease.MaxMetadataKeyLen + 1): "v"}
		}),
		"empty metadata key":        acq(func(r *raftlease.AcquireRequest) { r.Metadata = map[string]string{"": "v"} }),
		"metadata key with a space": acq(func(r *raftlease.AcquireRequest) { r.Metadata = map[string]string{"a b": "v"} }),
		"metadata value too long": acq(func(r *raftlease.AcquireRequest) {
			r.Metadata = map[string]string{"k": long(raftlease.MaxMetadataValueLen + 1)}
		}),
		"metadata value with a NUL":  acq(func(r *raftlease.AcquireRequest) { r.Metadata = map[string]string{"k": "a\x00b"} }),
		"metadata value not UTF-8":   acq(func(r *raftlease.AcquireRequest) { r.Metadata = map[string]string{"k": "\xc3"} }),
		"metadata too large in all":  acq(func(r *raftlease.AcquireRequest) { r.Metadata = bigValues }),
		"floor at the largest token": acq(func(r *raftlease.AcquireRequest) { r.TokenFloor = math.MaxUint64 }),
	}
	type tc struct {
		name string
		cmd  func(st fsm.Stamp) fsm.Command
	}
	var tests []tc
	for name, req := range acquires {
		tests = append(tests, tc{"acquire: " + name, func(st fsm.Stamp) fsm.Command { return fsm.Acquire(st, req) }})
		// The same input where the name is held by the same holder (the
		// idempotent path) must be refused too.
		// (The floor does not apply there: no token is issued.)
		if req.Name == "n" && req.Holder == "h" && req.TokenFloor == 0 {
			req := req
			req.Name = "held"
			tests = append(tests, tc{"re-acquire: " + name, func(st fsm.Stamp) fsm.Command { return fsm.Acquire(st, req) }})
		}
	}
	ren := func(mut func(*raftlease.RenewRequest)) func(fsm.Stamp) fsm.Command {
		r := raftlease.RenewRequest{Name: "held", Holder: "h", Token: 1}
		mut(&r)
		return func(st fsm.Stamp) fsm.Command { return fsm.Renew(st, r) }
	}
	rel := func(mut func(*raftlease.ReleaseRequest)) func(fsm.Stamp) fsm.Command {
		r := raftlease.ReleaseRequest{Name: "held", Holder: "h", Token: 1}
		mut(&r)
		return func(st fsm.Stamp) fsm.Command { return fsm.Release(st, r) }
	}
	tests = append(tests,
		tc{"renew: token 0", ren(func(r *raftlease.RenewRequest) { r.Token = 0 })},
		tc{"renew: empty name", ren(func(r *raftlease.RenewRequest) { r.Name = "" })},
		tc{"renew: bad holder", ren(func(r *raftlease.RenewRequest) { r.Holder = "h 1" })},
		tc{"renew: TTL below the minimum", ren(func(r *raftlease.RenewRequest) { r.TTL = raftlease.MinTTL - 1 })},
		tc{"renew: TTL above the maximum", ren(func(r *raftlease.RenewRequest) { r.TTL = raftlease.MaxTTL + 1 })},
		tc{"renew: negative TTL", ren(func(r *raftlease.RenewRequest) { r.TTL = -1 })},
		tc{"renew: metadata too large", ren(func(r *raftlease.RenewRequest) { r.Metadata = bigValues })},
		tc{"renew: too many metadata keys", ren(func(r *raftlease.RenewRequest) { r.Metadata = manyKeys })},
		tc{"release: token 0", rel(func(r *raftlease.ReleaseRequest) { r.Token = 0 })},
		tc{"release: empty holder", rel(func(r *raftlease.ReleaseRequest) { r.Holder = "" })},
		tc{"release: name too long", rel(func(r *raftlease.ReleaseRequest) { r.Name = long(raftlease.MaxNameLen + 1) })},
		tc{"unknown kind", func(st fsm.Stamp) fsm.Command {
			return fsm.Command{Kind: 42, Stamp: st, Name: "n", Holder: "h", TTL: s1}
		}},
		tc{"zero kind", func(st fsm.Stamp) fsm.Command { return fsm.Command{Stamp: st} }},
		tc{"epoch of term 0", func(st fsm.Stamp) fsm.Command { return fsm.Epoch(fsm.Stamp{Reading: st.Reading}) }},
		tc{"epoch of an older term", func(st fsm.Stamp) fsm.Command { return fsm.Epoch(fsm.Stamp{Term: 2, Reading: st.Reading}) }},
	)
	slices.SortFunc(tests, func(a, b tc) int { return strings.Compare(a.name, b.name) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReplica(t)
			r.mustOK(r.epoch(3, 0))
			r.mustOK(r.acquire("held", "h", 5*s1, s1))
			r.mustOK(r.tick(2 * s1))
			applyRejected(t, r, tt.cmd(r.at(3*s1)), raftlease.ErrInvalidArgument)
			// Also inside a batch, next to a valid command that applies.
			r2 := newReplica(t)
			r2.mustOK(r2.epoch(3, 0))
			r2.mustOK(r2.acquire("held", "h", 5*s1, s1))
			res := r2.apply(fsm.Batch(tt.cmd(r2.at(3*s1)), fsm.Tick(r2.at(4*s1))))
			if len(res.Results) != 2 || !errors.Is(res.Results[0].Err, raftlease.ErrInvalidArgument) || res.Results[1].Err != nil {
				t.Fatalf("batch results: %s", formatResult(res, ""))
			}
		})
	}
}

// TestLimitsAreInclusive: input exactly at each raftlease limit applies.
func TestLimitsAreInclusive(t *testing.T) {
	md := map[string]string{}
	for i := range raftlease.MaxMetadataKeys {
		md[strings.Repeat("k", raftlease.MaxMetadataKeyLen-2)+string(rune('A'+i/26))+string(rune('a'+i%26))] = "v"
	}
	tests := map[string]raftlease.AcquireRequest{
		"longest name":     {Name: strings.Repeat("n", raftlease.MaxNameLen), Holder: "h", TTL: s1},
		"longest holder":   {Name: "n", Holder: strings.Repeat("h", raftlease.MaxHolderLen), TTL: s1},
		"shortest TTL":     {Name: "n", Holder: "h", TTL: raftlease.MinTTL},
		"longest TTL":      {Name: "n", Holder: "h", TTL: raftlease.MaxTTL},
		"most keys":        {Name: "n", Holder: "h", TTL: s1, Metadata: md},
		"longest value":    {Name: "n", Holder: "h", TTL: s1, Metadata: map[string]string{"k": strings.Repeat("v", raftlease.MaxMetadataValueLen)}},
		"name alphabet":    {Name: "azAZ09-_.:/@=+", Holder: "h", TTL: s1},
		"unicode holder":   {Name: "n", Holder: "hôte-λ", TTL: s1},
		"metadata unicode": {Name: "n", Holder: "h", TTL: s1, Metadata: map[string]string{"k": "naïve value, with spaces"}},
	}
	for name, req := range tests {
		t.Run(name, func(t *testing.T) {
			r := newReplica(t)
			res := r.mustOK(r.apply(fsm.Acquire(r.at(s1), req)))
			want := raftlease.Lease{Name: req.Name, Holder: req.Holder, Token: 1, TTL: req.TTL, Metadata: req.Metadata,
				Deadline: s1 + req.TTL, Remaining: req.TTL}
			checkAccepted(t, r, res, want, raftlease.EventAcquired)
			// And the state holding it survives a snapshot.
			if c := r.clone(); c.f.Hash() != r.f.Hash() {
				t.Errorf("restored hash differs")
			}
		})
	}
}

func TestBatch(t *testing.T) {
	r := newReplica(t)
	cmds := []fsm.Command{
		fsm.Acquire(r.at(1*s1), raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: 5 * s1}),
		fsm.Acquire(r.at(2*s1), raftlease.AcquireRequest{Name: "a", Holder: "h2", TTL: 5 * s1}),
		fsm.Renew(r.at(3*s1), raftlease.RenewRequest{Name: "a", Holder: "h1", Token: 1, TTL: 10 * s1}),
		fsm.Acquire(r.at(3*s1), raftlease.AcquireRequest{Name: "b", Holder: "h2", TTL: 5 * s1}),
		fsm.Release(r.at(4*s1), raftlease.ReleaseRequest{Name: "a", Holder: "h1", Token: 1}),
		fsm.Batch(fsm.Acquire(r.at(4*s1), raftlease.AcquireRequest{Name: "c", Holder: "h3", TTL: 5 * s1})),
		fsm.Acquire(r.at(4*s1), raftlease.AcquireRequest{Name: "a", Holder: "h2", TTL: 5 * s1}),
		fsm.Expire(r.at(9*s1), []fsm.ExpireTarget{{Name: "b", Token: 2}}),
		fsm.Tick(r.at(9 * s1)),
	}
	res := r.apply(fsm.Batch(cmds...))
	if res.Err != nil {
		t.Fatalf("batch: %v", res.Err)
	}
	type want struct {
		err    error
		token  uint64
		events []raftlease.EventType
	}
	wants := []want{
		{token: 1, events: []raftlease.EventType{raftlease.EventAcquired}},
		{err: raftlease.ErrLeaseHeld},
		{token: 1, events: []raftlease.EventType{raftlease.EventRenewed}},
		{token: 2, events: []raftlease.EventType{raftlease.EventAcquired}},
		{events: []raftlease.EventType{raftlease.EventReleased}},
		{err: raftlease.ErrInvalidArgument},
		{token: 3, events: []raftlease.EventType{raftlease.EventAcquired}},
		{events: []raftlease.EventType{raftlease.EventExpired}},
		{},
	}
	if len(res.Results) != len(wants) {
		t.Fatalf("%d results for %d commands:\n%s", len(res.Results), len(wants), formatResult(res, ""))
	}
	var allEvents []raftlease.Event
	for i, w := range wants {
		got := res.Results[i]
		allEvents = append(allEvents, got.Events...)
		if w.err != nil {
			if !errors.Is(got.Err, w.err) {
				t.Errorf("command %d: error %v, want %v", i, got.Err, w.err)
			}
			continue
		}
		if got.Err != nil {
			t.Errorf("command %d: rejected: %v", i, got.Err)
			continue
		}
		if got.Lease.Token != w.token {
			t.Errorf("command %d: token %d, want %d", i, got.Lease.Token, w.token)
		}
		if ts := eventTypes(got.Events); !slices.Equal(ts, w.events) {
			t.Errorf("command %d: events %v, want %v", i, ts, w.events)
		}
	}
	// The renewal decided at its own stamp (3s) with the new TTL.
	if l := res.Results[2].Lease; l.Deadline != 13*s1 {
		t.Errorf("renew in batch: deadline %v, want 13s", l.Deadline)
	}
	if !reflect.DeepEqual(res.Events, allEvents) {
		t.Errorf("batch events are not the commands' events in order:\n got %v\nwant %v", eventTypes(res.Events), eventTypes(allEvents))
	}
	for _, e := range res.Events {
		if e.Revision != r.index {
			t.Errorf("event %s revision %d, want the batch's index %d", e.Type, e.Revision, r.index)
		}
	}
	if res.Expired != 1 {
		t.Errorf("batch Expired = %d, want 1", res.Expired)
	}
	if _, ok := r.get("c"); ok || r.f.LastToken() != 3 {
		t.Errorf("the nested batch applied something: LastToken %d\n%s", r.f.LastToken(), dump(r.f))
	}
	if r.now() != 9*s1 {
		t.Errorf("consensus time %v after the batch, want 9s", r.now())
	}

	// The same commands one entry each (but the refused nested batch) end
	// in the same leases, up to revisions.
	seq := newReplica(t)
	for _, c := range cmds {
		if c.Kind != fsm.KindBatch {
			seq.apply(c)
		}
	}
	strip := func(ls []raftlease.Lease) []raftlease.Lease {
		for i := range ls {
			ls[i].Revision = 0
		}
		return ls
	}
	if a, b := strip(listAll(t, r.f)), strip(listAll(t, seq.f)); !reflect.DeepEqual(a, b) {
		t.Errorf("batch and sequential application differ:\n%v\n%v", a, b)
	}

	// An empty batch changes nothing but the index.
	twin := r.clone()
	res = r.apply(fsm.Batch())
	twin.apply(noop())
	if res.Err != nil || len(res.Results) != 0 || len(res.Events) != 0 || r.f.Hash() != twin.f.Hash() {
		t.Errorf("empty batch: %+v", res)
	}
}

// TestRejectionsStillMoveTime: a rejected command's stamp is a reading of
// the leader's clock, so it moves consensus time like a tick. This matters
// for failover: candidates retrying an acquire on a held lease are often
// the only traffic while a dead holder's lease runs out, and the leader
// sends no tick while it commits them. If their stamps did not count, each
// new leader would start from the last accepted command and a dead
// holder's lease could outlive any number of TTLs (DESIGN.md "Time" 2).
func TestRejectionsStillMoveTime(t *testing.T) {
	r := newReplica(t) // leader of term 1, clock at 0
	r.mustOK(r.acquire("a", "dead-holder", 10*s1, 0))
	epochReading := time.Duration(0)
	for term := uint64(2); term <= 4; term++ {
		// Two refused retries, 1.5s apart on this leader's clock.
		for i := range time.Duration(2) {
			if res := r.acquire("a", "candidate", 10*s1, epochReading+(i+1)*1500*ms); !errors.Is(res.Err, raftlease.ErrLeaseHeld) {
				t.Fatalf("retry: %v, want ErrLeaseHeld", res.Err)
			}
		}
		epochReading = time.Duration(term) * hour // the next leader's clock
		r.mustOK(r.epoch(term, epochReading))
	}
	// Three leaders saw 3s each of refused retries: 1s of the TTL is left.
	if l, ok := r.get("a"); !ok || l.Remaining != s1 {
		t.Fatalf("after 9s of refused retries across failovers: %s (found %v), want 1s remaining", formatLease(l), ok)
	}
	res := r.mustOK(r.acquire("a", "candidate", 10*s1, epochReading+s1))
	if got := eventTypes(res.Events); res.Lease.Token != 2 || !slices.Equal(got, []raftlease.EventType{raftlease.EventExpired, raftlease.EventAcquired}) {
		t.Fatalf("candidate at the deadline: token %d, events %v", res.Lease.Token, got)
	}
}

func TestEpoch(t *testing.T) {
	r := newReplica(t)
	r.mustOK(r.acquire("a", "h1", 10*s1, s1))
	r.mustOK(r.epoch(5, 100*hour))
	if c := r.f.Clock(); c.Term != 5 || c.EpochReading != int64(100*hour) || c.EpochBase != s1 || c.Now != s1 {
		t.Fatalf("clock after epoch 5: %+v", c)
	}
	for _, term := range []uint64{0, 1, 4} {
		applyRejected(t, r, fsm.Epoch(fsm.Stamp{Term: term, Reading: int64(200 * hour)}), raftlease.ErrInvalidArgument)
	}
	// Another epoch of the current term is accepted (a retried epoch).
	r.mustOK(r.epoch(5, 100*hour+2*s1))
	if c := r.f.Clock(); c.Term != 5 || c.Now != 3*s1 {
		t.Fatalf("clock after a second epoch of term 5: %+v", c)
	}
	r.mustOK(r.epoch(6, -hour))
	if c := r.f.Clock(); c.Term != 6 || c.EpochReading != int64(-hour) || c.EpochBase != 3*s1 || c.Now != 3*s1 {
		t.Fatalf("clock after epoch 6: %+v", c)
	}
}

// TestReadsShareNoMemory: leases returned by reads and results are copies;
// changing them, or the request's metadata after applying it, changes
// nothing in the state.
func TestReadsShareNoMemory(t *testing.T) {
	r := newReplica(t)
	md := map[string]string{"k": "v"}
	res := r.mustOK(r.apply(fsm.Acquire(r.at(0), raftlease.AcquireRequest{Name: "a", Holder: "h", TTL: 5 * s1, Metadata: md})))
	h := r.f.Hash()
	md["k"] = "changed"
	res.Lease.Metadata["k"] = "changed"
	res.Events[0].Lease.Metadata["k"] = "changed"
	l, _ := r.get("a")
	l.Metadata["k"] = "changed"
	ls, _ := r.f.List("", 0)
	ls[0].Metadata["x"] = "y"
	if got, _ := r.get("a"); h != r.f.Hash() || got.Metadata["k"] != "v" || len(got.Metadata) != 1 {
		t.Errorf("changing returned leases changed the state: metadata %v", got.Metadata)
	}
	renewMD := map[string]string{"k": "w"}
	r.mustOK(r.apply(fsm.Renew(r.at(s1), raftlease.RenewRequest{Name: "a", Holder: "h", Token: 1, Metadata: renewMD})))
	renewMD["k"] = "changed"
	if got, _ := r.get("a"); got.Metadata["k"] != "w" || len(got.Metadata) != 1 {
		t.Errorf("metadata %v, want {k=w}", got.Metadata)
	}
}

func TestGetAndList(t *testing.T) {
	r := newReplica(t)
	r.mustOK(r.acquire("svc/b", "h1", 5*s1, 0))
	r.mustOK(r.acquire("svc/a", "h2", 10*s1, 0))
	r.mustOK(r.acquire("other", "h3", 20*s1, 0))
	r.mustOK(r.acquire("svc/c", "h4", 1*s1, 0))

	names := func(ls []raftlease.Lease) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.Name)
		}
		return out
	}
	tests := []struct {
		prefix string
		at     time.Duration
		want   []string
	}{
		{"", 0, []string{"other", "svc/a", "svc/b", "svc/c"}},
		{"svc/", 0, []string{"svc/a", "svc/b", "svc/c"}},
		{"svc/", s1, []string{"svc/a", "svc/b"}},
		{"svc/b", 5*s1 - 1, []string{"svc/b"}},
		{"svc/b", 5 * s1, nil},
		{"", 15 * s1, []string{"other"}},
		{"zzz", 0, nil},
	}
	for _, tt := range tests {
		ls, err := r.f.List(tt.prefix, tt.at)
		if err != nil {
			t.Fatalf("List(%q, %v): %v", tt.prefix, tt.at, err)
		}
		if ls == nil {
			t.Errorf("List(%q, %v) returned nil, want an empty slice", tt.prefix, tt.at)
		}
		if got := names(ls); !slices.Equal(got, tt.want) {
			t.Errorf("List(%q, %v) = %v, want %v", tt.prefix, tt.at, got, tt.want)
		}
		for _, l := range ls {
			if l.Remaining != l.Deadline-tt.at || l.Remaining <= 0 {
				t.Errorf("List at %v: %s", tt.at, formatLease(l))
			}
			if g, err := r.f.Get(l.Name, tt.at); err != nil || !reflect.DeepEqual(g, l) {
				t.Errorf("Get(%q, %v) = %s, %v; List gave %s", l.Name, tt.at, formatLease(g), err, formatLease(l))
			}
		}
	}
	for _, bad := range []string{"", "a b", strings.Repeat("x", raftlease.MaxNameLen+1)} {
		if _, err := r.f.Get(bad, 0); !errors.Is(err, raftlease.ErrInvalidArgument) {
			t.Errorf("Get(%q): %v, want ErrInvalidArgument", bad, err)
		}
	}
	if _, err := r.f.List("a b", 0); !errors.Is(err, raftlease.ErrInvalidArgument) {
		t.Errorf("List with a bad prefix: %v, want ErrInvalidArgument", err)
	}
	if _, err := r.f.Get("svc/c", s1); !errors.Is(err, raftlease.ErrNotFound) {
		t.Errorf("Get of an expired lease: %v, want ErrNotFound", err)
	}
	if _, err := r.f.Get("free", 0); !errors.Is(err, raftlease.ErrNotFound) {
		t.Errorf("Get of a free name: %v, want ErrNotFound", err)
	}

	// Expired and NextDeadline serve the leader's expiry loop.
	if d, ok := r.f.NextDeadline(); !ok || d != s1 {
		t.Errorf("NextDeadline = %v, %v; want 1s", d, ok)
	}
	if got := r.f.Expired(s1-1, 0); len(got) != 0 {
		t.Errorf("Expired before any deadline: %v", got)
	}
	due := r.f.Expired(10*s1, 0)
	want := []fsm.ExpireTarget{{Name: "svc/c", Token: 4}, {Name: "svc/b", Token: 1}, {Name: "svc/a", Token: 2}}
	if !slices.Equal(due, want) {
		t.Errorf("Expired(10s) = %v, want %v (earliest deadline first)", due, want)
	}
	if got := r.f.Expired(10*s1, 2); !slices.Equal(got, want[:2]) {
		t.Errorf("Expired(10s, 2) = %v, want %v", got, want[:2])
	}
	r.expire(10*s1, due...)
	if d, ok := r.f.NextDeadline(); !ok || d != 20*s1 || r.f.Len() != 1 {
		t.Errorf("after expiring: NextDeadline %v %v, Len %d", d, ok, r.f.Len())
	}
	if _, ok := fsm.New().NextDeadline(); ok {
		t.Errorf("NextDeadline of an empty FSM reports a deadline")
	}
}
