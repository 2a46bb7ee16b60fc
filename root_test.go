package raftlease_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
)

func TestErrorKinds(t *testing.T) {
	tests := []struct {
		err       error
		matches   []error
		unmatches []error
		retryable bool
	}{
		{raftlease.ErrNoQuorum, []error{raftlease.ErrNoQuorum, raftlease.ErrUnavailable}, []error{raftlease.ErrNotLeader}, true},
		{raftlease.ErrNotLeader, []error{raftlease.ErrNotLeader, raftlease.ErrUnavailable}, []error{raftlease.ErrNoQuorum}, true},
		{&raftlease.NotLeaderError{LeaderID: "n2"}, []error{raftlease.ErrNotLeader, raftlease.ErrUnavailable}, nil, true},
		{&raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: raftlease.ErrNoQuorum}, []error{raftlease.ErrUnavailable, raftlease.ErrNoQuorum}, []error{raftlease.ErrNotLeader}, true},
		{&raftlease.HeldError{Current: raftlease.Lease{Name: "a"}}, []error{raftlease.ErrLeaseHeld}, []error{raftlease.ErrUnavailable}, false},
		{&raftlease.FieldError{Field: "ttl", Reason: "x"}, []error{raftlease.ErrInvalidArgument}, nil, false},
		{fmt.Errorf("wrapped: %w", raftlease.ErrNotHolder), []error{raftlease.ErrNotHolder}, []error{raftlease.ErrLeaseHeld}, false},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			for _, m := range tt.matches {
				if !errors.Is(tt.err, m) {
					t.Errorf("errors.Is(%v, %v) = false", tt.err, m)
				}
			}
			for _, m := range tt.unmatches {
				if errors.Is(tt.err, m) {
					t.Errorf("errors.Is(%v, %v) = true", tt.err, m)
				}
			}
			if got := raftlease.IsRetryable(tt.err); got != tt.retryable {
				t.Errorf("IsRetryable = %v, want %v", got, tt.retryable)
			}
			if !strings.HasPrefix(tt.err.Error(), "raftlease: ") && !strings.HasPrefix(tt.err.Error(), "wrapped") {
				t.Errorf("message %q lacks the raftlease: prefix", tt.err)
			}
		})
	}
	if got := raftlease.OutcomeOf(&raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied}); got != raftlease.OutcomeNotApplied {
		t.Errorf("OutcomeOf = %v", got)
	}
	if got := raftlease.OutcomeOf(raftlease.ErrNoQuorum); got != raftlease.OutcomeUnknown {
		t.Errorf("OutcomeOf(bare) = %v, want unknown", got)
	}
}

func TestValidateRequests(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	manyKeys := map[string]string{}
	for i := range raftlease.MaxMetadataKeys + 1 {
		manyKeys[fmt.Sprintf("k%d", i)] = "v"
	}
	bigValues := map[string]string{}
	for i := range 5 {
		bigValues[fmt.Sprintf("k%d", i)] = long(raftlease.MaxMetadataValueLen)
	}
	ok := raftlease.AcquireRequest{Name: "svc/leader", Holder: "host-1:42", TTL: time.Second, Metadata: map[string]string{"addr": "10.0.0.1:80"}}
	tests := []struct {
		name  string
		edit  func(*raftlease.AcquireRequest)
		field string // "" means valid
	}{
		{"valid", func(*raftlease.AcquireRequest) {}, ""},
		{"name at limit", func(r *raftlease.AcquireRequest) { r.Name = long(raftlease.MaxNameLen) }, ""},
		{"empty name", func(r *raftlease.AcquireRequest) { r.Name = "" }, "name"},
		{"long name", func(r *raftlease.AcquireRequest) { r.Name = long(raftlease.MaxNameLen + 1) }, "name"},
		{"space in name", func(r *raftlease.AcquireRequest) { r.Name = "a b" }, "name"},
		{"brace in name", func(r *raftlease.AcquireRequest) { r.Name = "a{b}" }, "name"},
		{"unicode name", func(r *raftlease.AcquireRequest) { r.Name = "café" }, "name"},
		{"empty holder", func(r *raftlease.AcquireRequest) { r.Holder = "" }, "holder"},
		{"holder with newline", func(r *raftlease.AcquireRequest) { r.Holder = "a\nb" }, "holder"},
		{"long holder", func(r *raftlease.AcquireRequest) { r.Holder = long(raftlease.MaxHolderLen + 1) }, "holder"},
		{"unicode holder", func(r *raftlease.AcquireRequest) { r.Holder = "nœud-1" }, ""},
		{"ttl too small", func(r *raftlease.AcquireRequest) { r.TTL = raftlease.MinTTL - 1 }, "ttl"},
		{"ttl too large", func(r *raftlease.AcquireRequest) { r.TTL = raftlease.MaxTTL + 1 }, "ttl"},
		{"ttl min", func(r *raftlease.AcquireRequest) { r.TTL = raftlease.MinTTL }, ""},
		{"ttl max", func(r *raftlease.AcquireRequest) { r.TTL = raftlease.MaxTTL }, ""},
		{"too many keys", func(r *raftlease.AcquireRequest) { r.Metadata = manyKeys }, "metadata"},
		{"empty key", func(r *raftlease.AcquireRequest) { r.Metadata = map[string]string{"": "v"} }, "metadata key"},
		{"long value", func(r *raftlease.AcquireRequest) {
			r.Metadata = map[string]string{"k": long(raftlease.MaxMetadataValueLen + 1)}
		}, "metadata[k]"},
		{"control in value", func(r *raftlease.AcquireRequest) { r.Metadata = map[string]string{"k": "a\x00b"} }, "metadata[k]"},
		{"total too big", func(r *raftlease.AcquireRequest) { r.Metadata = bigValues }, "metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.edit(&r)
			err := r.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, raftlease.ErrInvalidArgument) {
				t.Fatalf("error %v does not match ErrInvalidArgument", err)
			}
			var fe *raftlease.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("error %v does not name field %q", err, tt.field)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := raftlease.RenewRequest{Name: "", Holder: "", Token: 0, TTL: time.Nanosecond}.Validate()
	for _, field := range []string{"name", "holder", "token", "ttl"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error %q does not mention %s", err, field)
		}
	}
	if err := (raftlease.RenewRequest{Name: "a", Holder: "h", Token: 1}).Validate(); err != nil {
		t.Errorf("renew without TTL or metadata: %v", err)
	}
	if err := (raftlease.ReleaseRequest{Name: "a", Holder: "h"}).Validate(); !errors.Is(err, raftlease.ErrInvalidArgument) {
		t.Errorf("release with token 0: %v", err)
	}
}

func TestWatchRequest(t *testing.T) {
	if err := (raftlease.WatchRequest{Name: "a", Prefix: "a"}).Validate(); !errors.Is(err, raftlease.ErrInvalidArgument) {
		t.Errorf("name and prefix together: %v", err)
	}
	if err := (raftlease.WatchRequest{}).Validate(); err != nil {
		t.Errorf("empty watch request: %v", err)
	}
	byName := raftlease.WatchRequest{Name: "svc"}
	byPrefix := raftlease.WatchRequest{Prefix: "svc"}
	for _, c := range []struct {
		req  raftlease.WatchRequest
		name string
		want bool
	}{
		{byName, "svc", true}, {byName, "svc2", false}, {byPrefix, "svc2", true},
		{byPrefix, "sv", false}, {raftlease.WatchRequest{}, "anything", true},
	} {
		if got := c.req.Matches(c.name); got != c.want {
			t.Errorf("%+v.Matches(%q) = %v, want %v", c.req, c.name, got, c.want)
		}
	}
}

func TestEventTypeString(t *testing.T) {
	for typ, want := range map[raftlease.EventType]string{
		raftlease.EventAcquired: "acquired", raftlease.EventRenewed: "renewed", raftlease.EventReleased: "released",
		raftlease.EventExpired: "expired", raftlease.EventCompacted: "compacted", 0: "unknown", 99: "unknown",
	} {
		if got := typ.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", typ, got, want)
		}
	}
}

func TestLeaseCloneSharesNothing(t *testing.T) {
	l := raftlease.Lease{Metadata: map[string]string{"a": "1"}}
	c := l.Clone()
	c.Metadata["a"] = "2"
	if l.Metadata["a"] != "1" {
		t.Fatal("Clone shares metadata")
	}
}
