package elector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
)

// Options configure an Elector. Start from a timing profile (Balanced,
// FastFailover, LowTraffic), fill in Name and Holder, and add callbacks.
// Validate checks the fields against each other; New refuses options that
// do not pass.
type Options struct {
	// Name is the lease the electors campaign for; every participant of one
	// election uses the same name. It follows raftlease.ValidateName.
	Name string
	// Holder is this participant's id, unique among the participants (a
	// host name and a process id, say). It follows raftlease.ValidateHolder.
	Holder string

	// LeaseDuration is the TTL requested with every acquire and renewal,
	// within [raftlease.MinTTL, raftlease.MaxTTL]. A crashed leader is
	// replaced at most about this long after its last renewal.
	LeaseDuration time.Duration
	// RenewInterval is how often the leader renews, measured from the send
	// time of its last successful renewal. It must be less than
	// LeaseDuration, and leave room for a renewal to land before the holder
	// fences itself (see SafetyMargin).
	RenewInterval time.Duration
	// RetryInterval is the shortest pause between two campaigns, measured
	// from send to send, and how soon a failed store call is retried. While
	// another participant holds the lease, a candidate times its next
	// campaign for when that lease is due to expire (at least RetryInterval
	// and at most LeaseDuration later); its watch makes it campaign at once
	// when the lease is released or expires.
	RetryInterval time.Duration
	// OperationTimeout bounds every store call. It must be less than
	// RenewInterval, so one hanging call never skips a renewal round.
	OperationTimeout time.Duration

	// Metadata is what the leader advertises with its lease (an address,
	// say); observers read it with Leader. Proclaim replaces it. It follows
	// raftlease.ValidateMetadata.
	Metadata map[string]string

	// MaxClockDrift bounds the rate at which this machine's clock may run
	// apart from the store's consensus clock, as a fraction: 0.01 means 1 %.
	// It must lie in [0, 0.5).
	MaxClockDrift float64
	// SafetyMargin is subtracted from the holder-side deadline on top of
	// the drift allowance. It is the time leader work has to notice that
	// its context was cancelled before anyone else can be granted the
	// lease. It must be positive. The holder-side safe window,
	// LeaseDuration×(1−MaxClockDrift) − SafetyMargin, must be longer than
	// RenewInterval + OperationTimeout.
	SafetyMargin time.Duration

	// ReleaseOnStop releases the lease when Run returns or Stop is called
	// while this elector holds it, so the next leader takes over at once
	// instead of after the lease expires.
	ReleaseOnStop bool

	// Clock is the source of time for every timer and deadline of the
	// elector; nil means the system clock.
	Clock raftlease.Clock
	// Logger receives the elector's logs; nil discards them.
	Logger hclog.Logger

	// OnElected, when set, runs in its own goroutine each time this elector
	// becomes leader. Its ctx is cancelled when leadership ends for any
	// reason: a refused renewal, Release, Stop, or the holder-side deadline
	// passing without a successful renewal (even while the store hangs).
	// It should return soon after ctx is done: the next term's OnElected
	// does not start before it returns, and Run and Stop wait for it.
	// Returning early does not give up leadership; call Release for that.
	OnElected func(ctx context.Context)
	// OnDemoted, when set, is called once after each term of leadership
	// has ended and its OnElected has returned. It must not block for long.
	OnDemoted func()
}

// Balanced returns the default profile, for services on one LAN or region:
//
//	LeaseDuration 10s, RenewInterval 3s, RetryInterval 1s,
//	OperationTimeout 2s, MaxClockDrift 1%, SafetyMargin 500ms.
//
// The leader writes one renewal every 3 s and rides out store or network
// trouble of about 6 s (retrying every second) before it fences itself.
// Worst-case failover: 13 s (WorstCaseFailover); a clean Release or Stop
// with ReleaseOnStop hands over within a store round trip.
func Balanced() Options {
	return Options{
		LeaseDuration:    10 * time.Second,
		RenewInterval:    3 * time.Second,
		RetryInterval:    1 * time.Second,
		OperationTimeout: 2 * time.Second,
		MaxClockDrift:    0.01,
		SafetyMargin:     500 * time.Millisecond,
	}
}

// DefaultOptions returns Balanced.
func DefaultOptions() Options { return Balanced() }

// FastFailover returns a profile for work that must not stay leaderless for
// long, with a store close by (same data centre, store round trips well
// under 100 ms):
//
//	LeaseDuration 2s, RenewInterval 500ms, RetryInterval 250ms,
//	OperationTimeout 400ms, MaxClockDrift 1%, SafetyMargin 200ms.
//
// The leader writes two renewals per second, and a stall of its process or
// of the store longer than about 1.3 s (GC pause, VM migration, store
// failover) makes it fence itself, so leadership flaps more easily than
// with Balanced. Worst-case failover: 2.65 s.
func FastFailover() Options {
	return Options{
		LeaseDuration:    2 * time.Second,
		RenewInterval:    500 * time.Millisecond,
		RetryInterval:    250 * time.Millisecond,
		OperationTimeout: 400 * time.Millisecond,
		MaxClockDrift:    0.01,
		SafetyMargin:     200 * time.Millisecond,
	}
}

// LowTraffic returns a profile for leadership that rarely needs to move
// (batch schedulers, singletons across regions), with few store writes:
//
//	LeaseDuration 60s, RenewInterval 20s, RetryInterval 5s,
//	OperationTimeout 5s, MaxClockDrift 1%, SafetyMargin 2s.
//
// The leader writes one renewal every 20 s and tolerates store trouble of
// more than half a minute; candidates poll rarely. The price is a slow
// failover after a crash: worst case 70 s.
func LowTraffic() Options {
	return Options{
		LeaseDuration:    60 * time.Second,
		RenewInterval:    20 * time.Second,
		RetryInterval:    5 * time.Second,
		OperationTimeout: 5 * time.Second,
		MaxClockDrift:    0.01,
		SafetyMargin:     2 * time.Second,
	}
}

// WorstCaseFailover returns the longest time from a leader's last
// successful renewal to another candidate holding the lease, when the
// leader crashes or is cut off: LeaseDuration + RetryInterval +
// OperationTimeout. The lease expires at most LeaseDuration after the
// renewal; a candidate learns of it from its watch at once, or at worst at
// its next campaign, at most RetryInterval later, and that campaign takes
// at most OperationTimeout.
//
// A replicated store adds its own pause when its Raft leader changes at
// the same time (at most tick interval + election time; see DESIGN.md,
// "Time" rule 2), since expiry follows the store's consensus clock.
func (o Options) WorstCaseFailover() time.Duration {
	return o.LeaseDuration + o.RetryInterval + o.OperationTimeout
}

// SafeWindow returns how long after sending a successful acquire or renew
// the holder may act as leader: LeaseDuration×(1−MaxClockDrift) −
// SafetyMargin (DESIGN.md, "Time" rule 4).
func (o Options) SafeWindow() time.Duration {
	return safeWindow(o.LeaseDuration, o.MaxClockDrift, o.SafetyMargin)
}

func safeWindow(ttl time.Duration, drift float64, margin time.Duration) time.Duration {
	return time.Duration(float64(ttl)*(1-drift)) - margin
}

// Validate reports every problem with the options, each as a
// *raftlease.FieldError (matching raftlease.ErrInvalidArgument) naming the
// field, joined with errors.Join. It never changes o.
func (o Options) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &raftlease.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if err := raftlease.ValidateName(o.Name); err != nil {
		errs = append(errs, renameField("Name", err))
	}
	if err := raftlease.ValidateHolder(o.Holder); err != nil {
		errs = append(errs, renameField("Holder", err))
	}
	if err := raftlease.ValidateMetadata(o.Metadata); err != nil {
		errs = append(errs, renameField("Metadata", err))
	}

	ttlOK := o.LeaseDuration >= raftlease.MinTTL && o.LeaseDuration <= raftlease.MaxTTL
	if !ttlOK {
		bad("LeaseDuration", "%v is outside [%v, %v]", o.LeaseDuration, raftlease.MinTTL, raftlease.MaxTTL)
	}
	renewOK := o.RenewInterval > 0
	if !renewOK {
		bad("RenewInterval", "must be positive, is %v", o.RenewInterval)
	} else if ttlOK && o.RenewInterval >= o.LeaseDuration {
		renewOK = false
		bad("RenewInterval", "%v must be less than LeaseDuration %v", o.RenewInterval, o.LeaseDuration)
	}
	if o.RetryInterval <= 0 {
		bad("RetryInterval", "must be positive, is %v", o.RetryInterval)
	}
	opOK := o.OperationTimeout > 0
	if !opOK {
		bad("OperationTimeout", "must be positive, is %v", o.OperationTimeout)
	} else if o.RenewInterval > 0 && o.OperationTimeout >= o.RenewInterval {
		opOK = false
		bad("OperationTimeout", "%v must be less than RenewInterval %v", o.OperationTimeout, o.RenewInterval)
	}
	driftOK := !math.IsNaN(o.MaxClockDrift) && o.MaxClockDrift >= 0 && o.MaxClockDrift < 0.5
	if !driftOK {
		bad("MaxClockDrift", "%v is outside [0, 0.5)", o.MaxClockDrift)
	}
	marginOK := o.SafetyMargin > 0
	if !marginOK {
		bad("SafetyMargin", "must be positive (it is the time leader work has to stop), is %v", o.SafetyMargin)
	}
	if ttlOK && renewOK && opOK && driftOK && marginOK {
		if w, need := o.SafeWindow(), o.RenewInterval+o.OperationTimeout; w <= need {
			bad("LeaseDuration", "the holder-side safe window LeaseDuration×(1−MaxClockDrift)−SafetyMargin = %v "+
				"must be longer than RenewInterval+OperationTimeout = %v, so that a renewal can land before the holder fences itself", w, need)
		}
	}
	return errors.Join(errs...)
}

// renameField turns a root validation error about a request field into one
// about an Options field.
func renameField(field string, err error) error {
	var fe *raftlease.FieldError
	if !errors.As(err, &fe) {
		return fmt.Errorf("%s: %w", field, err)
	}
	reason := fe.Reason
	if fe.Field != "name" && fe.Field != "holder" && fe.Field != "metadata" {
		reason = fe.Field + " " + reason
	}
	return &raftlease.FieldError{Field: field, Reason: reason}
}
