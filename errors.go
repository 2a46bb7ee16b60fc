package raftlease

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is; stores wrap them with detail.
var (
	// ErrInvalidArgument: the request is malformed or out of bounds. Nothing
	// changed. Retrying the same request fails the same way.
	ErrInvalidArgument = errors.New("raftlease: invalid argument")
	// ErrLeaseHeld: another holder has the lease. *HeldError carries it.
	ErrLeaseHeld = errors.New("raftlease: lease held by another holder")
	// ErrNotHolder: the caller does not hold the lease under that token: the
	// lease is free, expired, held by someone else, or was re-issued.
	ErrNotHolder = errors.New("raftlease: not the holder")
	// ErrNotFound: no live lease has that name.
	ErrNotFound = errors.New("raftlease: lease not found")
	// ErrUnavailable: the store cannot serve the request now (no leader, no
	// quorum, connection lost). It is retryable; see UnavailableError for
	// whether the request may have taken effect.
	ErrUnavailable = errors.New("raftlease: unavailable")
	// ErrNoQuorum: this node cannot reach a quorum. It matches ErrUnavailable.
	ErrNoQuorum error = &kindError{msg: "raftlease: no quorum", parent: ErrUnavailable}
	// ErrNotLeader: this node is not the Raft leader. *NotLeaderError names
	// the leader when known. It matches ErrUnavailable.
	ErrNotLeader error = &kindError{msg: "raftlease: not the leader", parent: ErrUnavailable}
	// ErrClosed: the store or elector has been closed.
	ErrClosed = errors.New("raftlease: closed")
	// ErrCompacted: a watch asked for a revision older than the store retains.
	ErrCompacted = errors.New("raftlease: revision compacted")
	// ErrStaleToken: a fencing check saw a token lower than one already seen.
	ErrStaleToken = errors.New("raftlease: stale fencing token")
)

// kindError is a sentinel that also matches a broader sentinel.
type kindError struct {
	msg    string
	parent error
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.parent }

// HeldError reports that another holder has the lease. It matches
// ErrLeaseHeld.
type HeldError struct {
	// Current is the lease as the store saw it when it refused.
	Current Lease
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("raftlease: lease %q held by %q (token %d)", e.Current.Name, e.Current.Holder, e.Current.Token)
}

func (e *HeldError) Is(target error) bool { return target == ErrLeaseHeld }

// NotLeaderError reports that the node is not the Raft leader. It matches
// ErrNotLeader and ErrUnavailable.
type NotLeaderError struct {
	// LeaderID and LeaderAddr name the leader when this node knows it.
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "raftlease: not the leader (leader unknown)"
	}
	return fmt.Sprintf("raftlease: not the leader (leader is %s at %s)", e.LeaderID, e.LeaderAddr)
}

func (e *NotLeaderError) Is(target error) bool {
	return target == ErrNotLeader || target == ErrUnavailable
}

// Outcome says whether a failed write may have taken effect.
type Outcome uint8

const (
	// OutcomeUnknown: the command may have been applied. Retry only with the
	// same holder (acquire, renew and release are idempotent for a holder).
	OutcomeUnknown Outcome = iota
	// OutcomeNotApplied: the command was certainly never proposed. Retry freely.
	OutcomeNotApplied
)

func (o Outcome) String() string {
	if o == OutcomeNotApplied {
		return "not_applied"
	}
	return "unknown"
}

// UnavailableError wraps a cause of unavailability with the outcome of the
// request. It matches ErrUnavailable and whatever Err matches.
type UnavailableError struct {
	Outcome Outcome
	Err     error
}

func (e *UnavailableError) Error() string {
	msg := "raftlease: unavailable"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("%s (outcome %s)", msg, e.Outcome)
}

func (e *UnavailableError) Unwrap() error        { return e.Err }
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// FieldError is an invalid-argument error about one named field. It matches
// ErrInvalidArgument.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("raftlease: invalid argument: %s: %s", e.Field, e.Reason)
}

func (e *FieldError) Is(target error) bool { return target == ErrInvalidArgument }

// IsRetryable reports whether err is a transient failure (ErrUnavailable and
// its kinds) that a caller may retry. See UnavailableError for when a retry
// of a write is safe.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrUnavailable)
}

// OutcomeOf returns the outcome carried by an unavailable error, and
// OutcomeUnknown when err carries none.
func OutcomeOf(err error) Outcome {
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return ue.Outcome
	}
	return OutcomeUnknown
}
