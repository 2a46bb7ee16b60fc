package history

import (
	"context"
	"errors"

	"github.com/raftlease/raftlease"
)

// Result is the completion of an operation, as Pending.Complete records it.
type Result struct {
	Outcome Outcome
	Code    string
	Lease   *LeaseResult
	Error   string
}

// ResultOf classifies what a raftlease.Store call returned, following the
// rules of the root errors.go:
//
//   - nil: OK, with the lease (none for release, which returns no lease);
//   - ErrLeaseHeld: Refused lease_held, with the current lease of a
//     *HeldError; ErrNotHolder: Refused not_holder; ErrNotFound: Refused
//     not_found;
//   - ErrInvalidArgument: Failed invalid_argument;
//   - ErrUnavailable whose OutcomeOf is OutcomeNotApplied: Failed
//     not_applied; any other ErrUnavailable: Ambiguous unknown;
//   - a context deadline or cancellation: Ambiguous timeout;
//   - anything else (connection reset, EOF, 500): Ambiguous error.
//
// When in doubt it says Ambiguous, which no checker can turn into a false
// violation.
func ResultOf(lease raftlease.Lease, err error) Result {
	if err == nil {
		r := Result{Outcome: OK}
		if lease.Holder != "" || lease.Token != 0 {
			r.Lease = leaseResult(lease)
		}
		return r
	}
	r := Result{Error: err.Error()}
	var held *raftlease.HeldError
	switch {
	case errors.Is(err, raftlease.ErrLeaseHeld):
		r.Outcome, r.Code = Refused, CodeLeaseHeld
		if errors.As(err, &held) {
			r.Lease = leaseResult(held.Current)
		}
	case errors.Is(err, raftlease.ErrNotHolder):
		r.Outcome, r.Code = Refused, CodeNotHolder
	case errors.Is(err, raftlease.ErrNotFound):
		r.Outcome, r.Code = Refused, CodeNotFound
	case errors.Is(err, raftlease.ErrInvalidArgument):
		r.Outcome, r.Code = Failed, CodeInvalidArgument
	case errors.Is(err, raftlease.ErrUnavailable) && raftlease.OutcomeOf(err) == raftlease.OutcomeNotApplied:
		r.Outcome, r.Code = Failed, CodeNotApplied
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		r.Outcome, r.Code = Ambiguous, CodeTimeout
	case errors.Is(err, raftlease.ErrUnavailable):
		r.Outcome, r.Code = Ambiguous, CodeUnknown
	default:
		r.Outcome, r.Code = Ambiguous, CodeError
	}
	return r
}

func leaseResult(l raftlease.Lease) *LeaseResult {
	return &LeaseResult{Holder: l.Holder, Token: l.Token, Revision: l.Revision, TTLNs: int64(l.TTL)}
}
